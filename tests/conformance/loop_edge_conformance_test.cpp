// C++ translations of the conformance scenarios about where Node 20 (libuv
// >= 1.45) runs timers: once before the first iteration, then at the end of
// every iteration, after the close phase and right before the liveness
// check. Run on the mock backend (virtual time) and on every real backend.
// phaseloop: portable (mock backend and inline executor only; built for Windows too)

#include "conformance.hpp"

#include <chrono>
#include <string>
#include <type_traits>

namespace {

using namespace phaseloop::test;

// "Busy" for `ms`: the mock's virtual clock moves; a real backend spins.
template <class Loop>
void busy(Loop& loop, std::chrono::milliseconds ms) {
  if constexpr (std::is_same_v<typename Loop::backend_type, phaseloop::mock_backend>) {
    loop.backend().advance(ms);
  } else {
    const auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < ms) {
    }
  }
}

// 21: an unref'd immediate queued by the last timer does not keep the loop
// alive, so it never runs.
template <class Loop>
trace scenario_21(Loop& loop) {
  trace out;
  loop.set_timeout([&] {
    out.push_back("timeout");
    loop.set_immediate([&] { out.push_back("unref immediate"); }).unref();
  }, 10ms);
  loop.run();
  out.push_back("exit");
  return out;
}

// 22: an unref'd timer that came due while an immediate kept the CPU busy
// fires at the end of that iteration, before the loop finds nothing alive.
template <class Loop>
trace scenario_22(Loop& loop) {
  trace out;
  loop.set_timeout([&] { out.push_back("unref timeout 50ms"); }, 50ms).unref();
  loop.set_immediate([&] {
    out.push_back("immediate busy 60ms");
    busy(loop, 60ms);
  });
  loop.run();
  out.push_back("exit");
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("conformance: timers run at the end of each iteration, as in Node 20",
                   "[conformance][loop-correctness]", PHASELOOP_TEST_ALL_LOOPS) {
  check_scenario<TestType>("21_unref_immediate_from_last_timer", scenario_21<TestType>);
  check_scenario<TestType>("22_unref_timer_due_after_busy_immediate", scenario_22<TestType>);
}
