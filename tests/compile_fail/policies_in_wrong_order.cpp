// The policies in the wrong order (timer store first): the first one checked,
// the backend, is rejected by name.
#include <phaseloop/phaseloop.hpp>

int main() {
  phaseloop::basic_loop<phaseloop::heap_timers, phaseloop::mock_backend, phaseloop::inline_executor> loop;
  return loop.run() ? 1 : 0;
}
