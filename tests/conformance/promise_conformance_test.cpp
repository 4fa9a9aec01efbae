// C++ translations of the conformance scenarios about promises and async
// functions (01, 02, 19): each prints (into a trace) what the Node program
// prints; the trace must equal the .expected lines Node v20 printed, on the
// mock backend and on every real backend.
// phaseloop: portable (mock backend and inline executor only; built for Windows too)

#include "conformance.hpp"

#include <string>

namespace {

using namespace phaseloop::test;
using phaseloop::promise;

// 01: a timer callback, a promise executor and a then-chain: synchronous code
// first, then the whole microtask queue, then the timers phase.
template <class Loop>
trace scenario_01(Loop& loop) {
  trace out;
  loop.set_timeout([&] { out.push_back("macro3"); }, 0ms);
  promise<int>(loop, [&](auto resolve) {
    resolve(1);
    out.push_back("macro1");
  })
      .then([&] { out.push_back("micro1"); })
      .then([&] { out.push_back("micro2"); });
  out.push_back("macro2");
  loop.run();
  return out;
}

// 02: async/await ordering (modern semantics): awaiting an already settled
// promise resumes after one microtask, before a then-callback queued later.
template <class Loop>
trace scenario_02(Loop& loop) {
  trace out;
  out.push_back("script start");
  auto async2 = [&]() -> promise<void> {
    out.push_back("async2 end");
    co_return;
  };
  auto async1 = [&]() -> promise<void> {
    co_await async2();
    out.push_back("async1 end");
  };
  async1();
  loop.set_timeout([&] { out.push_back("setTimeout"); }, 0ms);
  promise<void>(loop, [&](auto resolve) {
    out.push_back("Promise");
    resolve();
  })
      .then([&] { out.push_back("promise1"); })
      .then([&] { out.push_back("promise2"); });
  out.push_back("script end");
  loop.run();
  return out;
}

// 19: two then-chains interleave one step per microtask.
template <class Loop>
trace scenario_19(Loop& loop) {
  trace out;
  loop.resolved()
      .then([&] { out.push_back("a1"); })
      .then([&] { out.push_back("a2"); })
      .then([&] { out.push_back("a3"); });
  loop.resolved()
      .then([&] { out.push_back("b1"); })
      .then([&] { out.push_back("b2"); })
      .then([&] { out.push_back("b3"); });
  loop.run();
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("conformance: promises and async functions print what Node prints", "[conformance][promise]",
                   PHASELOOP_TEST_ALL_LOOPS) {
  check_scenario<TestType>("01_seed_macro_micro", scenario_01<TestType>);
  check_scenario<TestType>("02_seed_async_await", scenario_02<TestType>);
  check_scenario<TestType>("19_then_chain_interleave", scenario_19<TestType>);
}
