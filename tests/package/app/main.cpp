// The program every consumer project in tests/package builds: it runs a tiny
// loop and checks Node's order (sync code, nextTick, microtask, immediate,
// then timers by due time), so a consumer that compiles and links but gets a
// broken phaseloop still fails.
#if defined(PHASELOOP_CONSUMER_SINGLE_HEADER)
#include <phaseloop.hpp>
#else
#include <phaseloop/phaseloop.hpp>
#endif

#include <chrono>
#include <cstdio>
#include <string>

namespace {

template <class Loop>
std::string trace_of(Loop& loop) {
  using namespace std::chrono_literals;
  std::string trace;
  // Timers set from the check phase, so the order does not depend on how
  // fast the machine is, on a real clock as on the mock one.
  loop.set_immediate([&] {
    trace += " immediate";
    loop.set_timeout([&] { trace += " timeout(1ms)"; }, 1ms);
    loop.set_timeout([&] { trace += " timeout(2ms)"; }, 2ms);
  });
  loop.queue_microtask([&] { trace += " microtask"; });
  loop.next_tick([&] { trace += " tick"; });
  trace += "sync";
  loop.run();
  return trace;
}

}  // namespace

int main() {
  const std::string expected = "sync tick microtask immediate timeout(1ms) timeout(2ms)";
  int failures = 0;
  auto check = [&](const char* which, const std::string& got) {
    const bool ok = got == expected;
    std::printf("phaseloop %d.%d.%d %s: %s%s\n", phaseloop::version.major, phaseloop::version.minor,
                phaseloop::version.patch, which, got.c_str(), ok ? "" : "  <-- wrong order");
    failures += ok ? 0 : 1;
  };

  phaseloop::basic_loop<phaseloop::mock_backend, phaseloop::heap_timers, phaseloop::inline_executor>
      virtual_time;
  check("mock backend", trace_of(virtual_time));
#if defined(PHASELOOP_HAS_DEFAULT_BACKEND)
  phaseloop::loop native;
  check("default backend", trace_of(native));
#endif
  return failures == 0 ? 0 : 1;
}
