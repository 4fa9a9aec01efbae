// C++ translations of the conformance scenarios with sockets (15, 16): on
// the mock's virtual network and on every real backend, the same lines
// Node v20 printed.

#include "conformance.hpp"

#include <string>
#include <system_error>

namespace {

using namespace phaseloop;
using namespace phaseloop::test;

std::string text(std::span<const std::byte> d) { return {reinterpret_cast<const char*>(d.data()), d.size()}; }

// 15: a destroyed socket's handle closes in the close phase: an immediate
// queued in the same poll-phase callback runs first.
//   const server = net.createServer((s) => s.on('error', () => {}));
//   server.listen(0, '127.0.0.1', () => {
//     const c = net.connect(server.address().port, '127.0.0.1', () => {
//       console.log('connected');
//       c.on('close', () => { console.log('close'); server.close(); });
//       c.destroy();
//       setImmediate(() => console.log('immediate'));
//       process.nextTick(() => console.log('tick'));
//     });
//   });
template <class Loop>
trace scenario_15(Loop& loop) {
  trace out;
  auto server = net::create_server(loop, [](net::socket s) { s.on_error([](std::error_code) {}); });
  REQUIRE_FALSE(server.listen(0, "127.0.0.1"));
  auto c = net::connect(loop, "127.0.0.1", server.local_address().port());
  c.on_connect([&, c]() mutable {
    out.push_back("connected");
    c.on_close([&](bool) {
      out.push_back("close");
      server.close();
    });
    c.destroy();
    loop.set_immediate([&] { out.push_back("immediate"); });
    loop.next_tick([&] { out.push_back("tick"); });
  });
  loop.run();
  return out;
}

// 16: a TCP echo on loopback: events arrive in causal order.
//   const server = net.createServer((sock) => {
//     sock.on('data', (d) => { console.log('server got', d.toString()); sock.end(d); });
//     sock.on('close', () => { console.log('server side closed'); server.close(() => console.log('server closed')); });
//   });
//   server.listen(0, '127.0.0.1', () => {
//     const c = net.connect(server.address().port, '127.0.0.1', () => { console.log('client connected'); c.write('ping'); });
//     c.on('data', (d) => console.log('client got', d.toString()));
//     c.on('end', () => console.log('client end'));
//     c.on('close', () => console.log('client closed'));
//   });
template <class Loop>
trace scenario_16(Loop& loop) {
  trace out;
  net::server server(loop);
  server.on_connection([&](net::socket sock) {
    sock.on_data([&, sock](std::span<const std::byte> d) mutable {
      out.push_back("server got " + text(d));
      sock.end(text(d));
    });
    sock.on_close([&](bool) {
      out.push_back("server side closed");
      server.close([&] { out.push_back("server closed"); });
    });
  });
  REQUIRE_FALSE(server.listen(0, "127.0.0.1"));
  auto c = net::connect(loop, "127.0.0.1", server.local_address().port());
  c.on_connect([&, c]() mutable {
    out.push_back("client connected");
    c.write("ping");
  });
  c.on_data([&](std::span<const std::byte> d) { out.push_back("client got " + text(d)); });
  c.on_end([&] { out.push_back("client end"); });
  c.on_close([&](bool) { out.push_back("client closed"); });
  loop.run();
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("conformance: sockets close in the close phase and echo in causal order, as in Node",
                   "[conformance][net]", PHASELOOP_TEST_IO_LOOPS) {
  check_scenario<TestType>("15_close_callbacks_phase", scenario_15<TestType>);
  check_scenario<TestType>("16_tcp_echo", scenario_16<TestType>);
}
