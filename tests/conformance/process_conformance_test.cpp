// C++ translations of the conformance scenarios with a child process and a
// signal: on every real backend, the same lines Node v20 printed.

#include "conformance.hpp"
#include "posix.hpp"

// POSIX modules, tested on Linux's real loops for now.
#if defined(__linux__)

#include <string>

#include <signal.h>
#include <unistd.h>

namespace {

using namespace phaseloop;
using namespace phaseloop::test;

// Node prints a missing exit code or signal as null.
std::string or_null(int value, bool present) { return present ? std::to_string(value) : "null"; }

// child_spawn_echo_exit: data, then exit 3, then close.
//   const c = spawn('sh', ['-c', 'echo hi; exit 3']);
//   c.stdout.on('data', (d) => console.log('data', d.toString().trim()));
//   c.on('exit', (code, signal) => console.log('exit', code, signal));
//   c.on('close', (code, signal) => console.log('close', code, signal));
template <class Loop>
trace child_spawn_echo_exit(Loop& loop) {
  trace out;
  auto c = child_process::spawn(loop, sh("echo hi; exit 3"));
  c.stdout_pipe().on_data([&](std::span<const std::byte> d) {
    std::string s(reinterpret_cast<const char*>(d.data()), d.size());
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    out.push_back("data " + s);
  });
  auto line = [&out](const char* what, int code, int signo) {
    out.push_back(std::string(what) + " " + or_null(code, signo == 0) + " " + (signo == 0 ? "null" : std::to_string(signo)));
  };
  c.on_exit([line](int code, int signo) { line("exit", code, signo); });
  c.on_close([line](int code, int signo) { line("close", code, signo); });
  loop.run();
  return out;
}

// signal_self_after_ticks: a signal the process sends itself is delivered
// after the current callback's ticks and microtasks.
//   const keep = setTimeout(() => console.log('never'), 10000);
//   const onSignal = () => { console.log('signal'); process.removeListener('SIGUSR2', onSignal); clearTimeout(keep); };
//   process.on('SIGUSR2', onSignal);
//   setTimeout(() => {
//     console.log('timeout');
//     process.kill(process.pid, 'SIGUSR2');
//     process.nextTick(() => console.log('tick'));
//     Promise.resolve().then(() => console.log('microtask'));
//     console.log('after kill');
//   }, 1);
template <class Loop>
trace signal_self_after_ticks(Loop& loop) {
  trace out;
  auto keep = loop.set_timeout([&] { out.push_back("never"); }, 10000ms);
  signal_handle h(loop);
  REQUIRE_FALSE(h.start(SIGUSR2, [&](int) {
    out.push_back("signal");
    h.close();
    loop.clear_timeout(keep);
  }));
  h.unref();  // Node's signal handles do not hold the loop
  loop.set_timeout([&] {
    out.push_back("timeout");
    raise_self(SIGUSR2);
    loop.next_tick([&] { out.push_back("tick"); });
    loop.resolved().then([&] { out.push_back("microtask"); });
    out.push_back("after kill");
  }, 1ms);
  loop.run();
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("conformance: a child's data, exit and close, and a signal after ticks, as in Node",
                   "[conformance][child][signal]", PHASELOOP_TEST_REAL_IO_LOOPS) {
  check_scenario<TestType>("child_spawn_echo_exit", child_spawn_echo_exit<TestType>);
  check_scenario<TestType>("signal_self_after_ticks", signal_self_after_ticks<TestType>);
}

#endif  // __linux__
