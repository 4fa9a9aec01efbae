// An executor that cannot be built from the loop's inbox and options, nor
// submit or cancel work: basic_loop names phaseloop::executor.
#include <phaseloop/phaseloop.hpp>

struct not_an_executor {};

int main() {
  phaseloop::basic_loop<phaseloop::mock_backend, phaseloop::heap_timers, not_an_executor> loop;
  return loop.run() ? 1 : 0;
}
