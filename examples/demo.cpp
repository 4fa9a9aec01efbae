// phaseloop's demo: Node's ordering of ticks, microtasks, timers and immediates.
#include <phaseloop/phaseloop.hpp>

#include <cstdio>

using namespace std::chrono_literals;

int main() {
  phaseloop::loop loop;
  int n = 0;
  phaseloop::loop::timer_handle every_10ms;
  every_10ms = loop.set_interval([&] {
    std::printf("interval %d\n", ++n);
    if (n == 3) loop.clear_interval(every_10ms);
  }, 10ms);
  loop.set_timeout([&] {
    std::puts("timeout 5ms");
    loop.set_immediate([] { std::puts("immediate: the check phase comes before the next timers phase"); });
    loop.set_timeout([] { std::puts("timeout set from a timer: the next iteration at the earliest"); }, 0ms);
    loop.next_tick([] { std::puts("nextTick after the timer callback"); });
  }, 5ms);
  loop.queue_microtask([] { std::puts("microtask: after every nextTick"); });
  loop.next_tick([] { std::puts("nextTick: first, before any microtask"); });
  std::puts("main: synchronous code runs first");
  loop.run();
  std::puts("loop done: nothing keeps it alive");
}
