// echo_server: a TCP echo server with phaseloop::net (Node's net.createServer).
//
//   echo_server 7000     echo every byte back on 127.0.0.1:7000 until killed;
//                        try it: printf 'hello\n' | socat -t1 - TCP:127.0.0.1:7000
//   echo_server          self-check: serve on a free port, echo a message to a
//                        client in the same loop, then exit (0 when it came back)
//
// Each connection writes back what it reads. A write queue over its high-water
// mark pauses reading until it drains, so a peer that sends without reading
// cannot grow the server's memory. When the peer ends its side the socket ends
// its own once the echoes went (Node's default, allowHalfOpen false) and closes.

#include <phaseloop/phaseloop.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace net = phaseloop::net;
using namespace std::chrono_literals;

namespace {

/// An echo server listening on 127.0.0.1:port (0: a free port).
net::server start_echo_server(phaseloop::loop& loop, std::uint16_t port, std::error_code& ec) {
  auto server = net::create_server(loop, [](net::socket s) {
    s.on_data([s](std::span<const std::byte> bytes) mutable {
      if (!s.write(bytes)) s.pause();  // the peer reads slower than it sends
    });
    s.on_drain([s]() mutable { s.resume(); });
    s.on_error([](std::error_code e) { std::fprintf(stderr, "echo_server: connection: %s\n", e.message().c_str()); });
  });
  ec = server.listen(port, "127.0.0.1");
  return server;
}

/// Echo one message through the server to a client on the same loop.
int self_check() {
  phaseloop::loop loop;
  std::error_code ec;
  auto server = start_echo_server(loop, 0, ec);
  if (ec) {
    std::fprintf(stderr, "echo_server: listen: %s\n", ec.message().c_str());
    return 1;
  }
  const std::string message = "Hello, echo!\n";
  std::string received;
  auto client = net::connect(loop, server.local_address());
  client.on_connect([client, &message]() mutable {
    client.write(message);
    client.end();  // the server ends its side in turn, after the echo
  });
  client.on_data([&](std::span<const std::byte> bytes) {
    received.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  });
  client.on_error([](std::error_code e) { std::fprintf(stderr, "echo_server: client: %s\n", e.message().c_str()); });
  client.on_close([&](bool) { server.close(); });  // nothing is left: run() returns
  loop.set_timeout([&] { loop.stop(); }, 10s).unref();  // a safety net, should it hang
  loop.run();

  if (received != message) {
    std::fprintf(stderr, "echo_server: sent %zu bytes, got back %zu different ones\n", message.size(), received.size());
    return 1;
  }
  std::printf("echo_server: echoed %zu bytes\n", received.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return self_check();
  const std::string_view arg = argv[1];
  std::uint16_t port = 0;
  const auto [end, parse_error] = std::from_chars(arg.data(), arg.data() + arg.size(), port);
  if (argc > 2 || parse_error != std::errc{} || end != arg.data() + arg.size()) {
    std::fprintf(stderr, "usage: echo_server [PORT]\n");
    return 2;
  }
  phaseloop::loop loop;
  std::error_code ec;
  auto server = start_echo_server(loop, port, ec);
  if (ec) {
    std::fprintf(stderr, "echo_server: listen on 127.0.0.1:%u: %s\n", unsigned{port}, ec.message().c_str());
    return 1;
  }
  std::printf("echo_server: listening on %s\n", server.local_address().to_string().c_str());
  std::fflush(stdout);
  loop.run();  // until killed
}
