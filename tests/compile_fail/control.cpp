// Control: the same loop as the other sources with correct policies must
// compile, so a wrong include path or a broken header fails the suite instead
// of passing every compile-failure test for the wrong reason.
#include <phaseloop/phaseloop.hpp>

int main() {
  phaseloop::basic_loop<phaseloop::mock_backend, phaseloop::heap_timers, phaseloop::inline_executor> loop;
  phaseloop::basic_loop<phaseloop::mock_backend, phaseloop::wheel_timers, phaseloop::thread_pool_executor> pooled;
  loop.set_timeout([] {}, std::chrono::milliseconds(1));
  return loop.run() || pooled.run() ? 1 : 0;
}
