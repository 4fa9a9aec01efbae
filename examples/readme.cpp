// The example README.md opens with (a test keeps the two identical).
#include <phaseloop/phaseloop.hpp>
#include <cstdio>
using namespace std::chrono_literals;

int main() {
  phaseloop::loop loop;
  loop.set_timeout([] { std::puts("4. timeout, in the timers phase"); }, 10ms);
  loop.set_immediate([] { std::puts("3. immediate, in the check phase"); });
  loop.queue_microtask([] { std::puts("2. microtask, after every nextTick"); });
  loop.next_tick([] { std::puts("1. nextTick, before any microtask"); });
  std::puts("0. synchronous code first");
  loop.run();  // returns when nothing keeps the loop alive
}
