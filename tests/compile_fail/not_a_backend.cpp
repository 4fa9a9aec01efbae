// A type that is no backend at all: basic_loop names phaseloop::backend.
#include <phaseloop/phaseloop.hpp>

struct not_a_backend {};

int main() {
  phaseloop::basic_loop<not_a_backend, phaseloop::heap_timers, phaseloop::inline_executor> loop;
  return loop.run() ? 1 : 0;
}
