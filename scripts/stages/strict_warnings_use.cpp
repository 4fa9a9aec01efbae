// Instantiates what a user's first program instantiates, for
// scripts/stages/15-strict-warnings.sh: templates only warn once they are
// instantiated, so including the headers is not enough. Compiled with
// -fsyntax-only under the strict g++ and clang flags, never run; it must
// itself be warning-free under them.
//
// PHASELOOP_STRICT_SINGLE_HEADER: #include <phaseloop.hpp> (single_include,
// or a fresh amalgamation) instead of <phaseloop/phaseloop.hpp>.

#if defined(PHASELOOP_STRICT_SINGLE_HEADER)
#include <phaseloop.hpp>
#else
#include <phaseloop/phaseloop.hpp>
#endif

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
namespace pl = phaseloop;

namespace {

template <class Loop>
pl::promise<int> answer_later(Loop& loop) {  // an async function
  co_await loop.delay(1ms);
  const int base = co_await loop.resolved(40);
  co_await loop.immediate();
  co_return base + 2;
}

template <class Loop>
pl::promise<void> stat_and_read(Loop& loop, std::string path) {
  try {
    const pl::fs::stats st = co_await pl::fs::promises::stat(loop, path);
    std::string data = co_await pl::fs::promises::read_file(loop, path);
    co_await pl::fs::promises::write_file(loop, path + ".copy", std::move(data));
    co_await pl::fs::promises::unlink(loop, path + ".copy");
    (void)st;
  } catch (const std::system_error& e) {
    (void)e.code();
  }
}

template <class Loop>
void timers_and_ticks(Loop& loop) {
  int count = 0;
  auto t = loop.set_timeout([&count] { ++count; }, 10ms);
  auto i = loop.set_interval([&count] { ++count; }, std::chrono::microseconds(1500));
  loop.set_timeout([&loop, i] { loop.clear_interval(i); }, 1s).unref();
  loop.set_timeout([] {}, std::chrono::duration<double>(0.25));
  t.refresh();
  auto im = loop.set_immediate([&count] { ++count; });
  loop.clear_immediate(im);
  loop.set_immediate([&count] { ++count; });
  loop.next_tick([&count] { ++count; });
  loop.queue_microtask([&count] { ++count; });
  loop.clear_timeout(t);
  auto idle = loop.make_idle();
  auto check = loop.make_check();
  (void)idle;
  (void)check;
  (void)loop.now();
  (void)loop.metrics();
}

template <class Loop>
void promises(Loop& loop) {
  loop.resolved(1)
      .then([](int& v) { return v + 1; })
      .then([](int& v) { return std::to_string(v); })
      .then([](std::string& s) { return s.size(); })
      .catch_([](std::exception_ptr) { return std::size_t{0}; })
      .finally([] {})
      .then([](std::size_t&) {});
  auto [p, r] = loop.template make_promise<std::string>();
  p.then([](std::string& s) { return s.size(); }, [](std::exception_ptr) { return std::size_t{0}; });
  r.resolve(std::string("resolved"));
  loop.template rejected<int>(std::make_error_code(std::errc::timed_out)).catch_([](std::exception_ptr) { return 0; });
  pl::all(loop, std::vector{answer_later(loop), answer_later(loop)}).then([](std::vector<int>& v) {
    return v.size();
  });
  pl::all(answer_later(loop), loop.delay(2ms, std::string("late"))).then([](auto&) {});
  pl::all_settled(loop, std::vector{answer_later(loop)}).then([](auto&) {});
  pl::race(loop, std::vector{answer_later(loop), loop.delay(1ms, 7)}).then([](int&) {});
  pl::any(loop, std::vector{answer_later(loop)}).then([](int&) {});
  stat_and_read(loop, "/etc/hostname");
}

template <class Loop>
void work_fs_dns(Loop& loop) {
  auto w = loop.queue_work([] {}, [](std::error_code) {});
  (void)loop.cancel(w);
  pl::fs::read_file(loop, "/etc/hostname", [](std::error_code, std::string) {});
  pl::fs::read_file<std::vector<std::byte>>(loop, "/etc/hostname", [](std::error_code, std::vector<std::byte>) {});
  pl::fs::write_file(loop, "/tmp/phaseloop-strict", std::string("x"), [](std::error_code) {});
  pl::fs::stat(loop, "/", [](std::error_code, pl::fs::stats) {});
  pl::fs::open(loop, "/etc/hostname", "r", [&loop](std::error_code, pl::fs::file_descriptor fd) {
    pl::fs::close(loop, fd, [](std::error_code) {});
  });
  pl::fs::readdir(loop, "/", [](std::error_code, std::vector<pl::fs::dirent>) {});
  pl::fs::mkdir(loop, "/tmp/phaseloop-strict-dir", {.recursive = true}, [](std::error_code) {});
  pl::fs::rm(loop, "/tmp/phaseloop-strict-dir", {.recursive = true, .force = true}, [](std::error_code) {});
  pl::fs::promises::readdir(loop, "/").then([](std::vector<pl::fs::dirent>&) {});
  pl::fs::promises::mkdtemp(loop, "/tmp/phaseloop-").then([](std::string&) {});
  pl::dns::lookup(loop, "localhost", [](std::error_code, std::vector<pl::dns::lookup_address>) {});
  pl::dns::lookup(loop, "localhost", {.family = 4, .all = true},
                  [](std::error_code, std::vector<pl::dns::lookup_address>) {});
  pl::dns::promises::lookup(loop, "localhost").then([](std::vector<pl::dns::lookup_address>&) {});
}

template <class Loop>
void sockets(Loop& loop) {
  auto server = pl::net::create_server(loop, [](pl::net::socket s) {
    s.on_data([s](std::span<const std::byte> bytes) mutable {
      if (!s.write(bytes)) s.pause();
    });
    s.on_drain([s]() mutable { s.resume(); });
    s.on_end([s]() mutable { s.end(); });
    s.on_error([](std::error_code) {});
  });
  server.on_connection([](pl::net::socket s) { s.end("bye\n"); });
  server.on_error([](std::error_code) {});
  if (server.listen(0, "127.0.0.1")) return;
  const std::uint16_t port = server.local_address().port();
  auto by_address = pl::net::connect(loop, server.local_address(), {.timeout = 5s, .no_delay = true});
  by_address.on_connect([by_address]() mutable {
    by_address.write("hello");
    by_address.write(std::string_view("world"), [](std::error_code) {});
    by_address.end();
  });
  by_address.on_data([](std::span<const std::byte>) {});
  by_address.on_close([&server](bool) { server.close(); });
  by_address.set_timeout(100ms).on_timeout([by_address]() mutable { by_address.destroy(); });
  auto by_host = pl::net::connect(loop, "localhost", port);
  by_host.on_error([](std::error_code) {}).on_close([](bool) {});
  (void)by_host.set_no_delay();
  (void)by_host.set_keep_alive(true, 30s);
  (void)by_host.remote_address().to_string();
  server.accept().then([](pl::net::socket& s) { s.destroy(); });
}

template <class Loop>
void poll_handle(Loop& loop, pl::native_handle fd) {
  auto watch = loop.make_poll(fd);
  (void)watch.start(pl::io_events::readable | pl::io_events::writable, [&watch](std::error_code ec, pl::io_events got) {
    if (ec || pl::any(got & pl::io_events::hangup)) watch.stop();
  });
  watch.unref();
}

// Code written once against a type-erased loop reference.
void through_any_loop(pl::any_loop loop) {
  auto t = loop.set_timeout([] {}, std::chrono::seconds(1));
  t.unref().ref();
  loop.set_interval([loop](pl::any_loop::timer_handle& self) mutable { loop.clear_interval(self); },
                    std::chrono::milliseconds(5));
  auto i = loop.set_immediate([] {});
  loop.clear_immediate(i);
  loop.next_tick([] {});
  loop.queue_microtask([] {});
  loop.post([] {});
  auto w = loop.queue_work([] {}, [](std::error_code) {});
  (void)loop.cancel(w);
  (void)loop.delay(std::chrono::milliseconds(1), 3);
  (void)loop.rejected<int>(std::make_error_code(std::errc::timed_out));
  (void)loop.now();
}

template <class Loop>
void cancellation(Loop& loop) {
  pl::abort_controller controller;
  auto timeout = pl::abort_signal::timeout(loop, std::chrono::seconds(1));
  auto either = pl::abort_signal::any({controller.signal(), timeout});
  (void)pl::delay(loop, std::chrono::milliseconds(5), either);
  (void)pl::delay(loop, std::chrono::milliseconds(5), 1, either);
  (void)pl::immediate(loop, either);
  (void)pl::work(loop, [] { return 2; }, either);
  (void)pl::abortable(loop.delay(std::chrono::milliseconds(1)), either, [] {});
  auto sub = either.on_abort([] {});
  controller.abort();
  sub.reset();
}

template <class Loop>
void everything(Loop& loop) {
  cancellation(loop);
  timers_and_ticks(loop);
  promises(loop);
  work_fs_dns(loop);
  through_any_loop(loop);
  sockets(loop);
  poll_handle(loop, 0);
  (void)loop.alive();
  loop.run(pl::run_mode::nowait);
  loop.run();
  loop.stop();
}

}  // namespace

int main() {
  pl::test_loop virtual_time;
  everything(virtual_time);
  pl::basic_loop<pl::mock_backend, pl::wheel_timers, pl::inline_executor> virtual_wheel;
  everything(virtual_wheel);
#if defined(PHASELOOP_HAS_DEFAULT_BACKEND)
  pl::loop native;
  everything(native);
  pl::basic_loop<pl::default_backend, pl::wheel_timers, pl::thread_pool_executor> native_wheel;
  everything(native_wheel);
#endif
#if !defined(_WIN32)
  pl::basic_loop<pl::poll_backend, pl::heap_timers, pl::thread_pool_executor> polled;
  everything(polled);
  pl::basic_loop<pl::poll_backend, pl::wheel_timers, pl::inline_executor> polled_wheel;
  everything(polled_wheel);
#endif
}
