// C++ translations of the conformance scenarios with a file read (04, 17):
// the read completes on the executor and its callback runs in the poll
// phase. They must print Node's lines on every real backend, with the
// thread-pool executor and with the inline executor.

#include "conformance.hpp"

#if !defined(_WIN32) && defined(__linux__)

#include <string>
#include <system_error>

namespace {

using namespace phaseloop;
using namespace phaseloop::test;

// 04: inside an I/O callback (poll phase) setImmediate always runs before setTimeout(0).
//   fs.readFile(__filename, () => {
//     setTimeout(() => console.log('timeout'), 0);
//     setImmediate(() => console.log('immediate'));
//   });
template <class Loop>
trace scenario_04(Loop& loop) {
  trace out;
  fs::read_file(loop, __FILE__, [&](std::error_code, std::string) {
    loop.set_timeout([&] { out.push_back("timeout"); }, 0ms);
    loop.set_immediate([&] { out.push_back("immediate"); });
  });
  loop.run();
  return out;
}

// 17: the read's callback runs in the poll phase, then ticks, then the
// promise job, then the immediate, then the timer on the next iteration.
//   fs.readFile(__filename, 'utf8', (err, data) => {
//     console.log('read', err === null, data.length > 0);
//     setTimeout(() => console.log('timeout'), 0);
//     setImmediate(() => console.log('immediate'));
//     process.nextTick(() => console.log('tick'));
//     Promise.resolve().then(() => console.log('promise'));
//   });
template <class Loop>
trace scenario_17(Loop& loop) {
  trace out;
  fs::read_file(loop, __FILE__, [&](std::error_code err, std::string data) {
    out.push_back(std::string("read ") + (!err ? "true" : "false") + " " +
                  (!data.empty() ? "true" : "false"));
    loop.set_timeout([&] { out.push_back("timeout"); }, 0ms);
    loop.set_immediate([&] { out.push_back("immediate"); });
    loop.next_tick([&] { out.push_back("tick"); });
    loop.resolved().then([&] { out.push_back("promise"); });
  });
  loop.run();
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("conformance: a file read completes in the poll phase, as in Node",
                   "[conformance][fs][executor]", PHASELOOP_TEST_EXECUTOR_LOOPS) {
  check_scenario<TestType>("04_seed_immediate_before_timeout_in_io", scenario_04<TestType>);
  check_scenario<TestType>("17_fs_read_then_phases", scenario_17<TestType>);
}

#endif
