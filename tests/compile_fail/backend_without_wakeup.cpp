// A backend missing one member of the contract (a thread-safe wakeup) is no
// backend either: the concept checks every member, not only the type's shape.
#include <phaseloop/phaseloop.hpp>

struct backend_without_wakeup : phaseloop::mock_backend {
  void wakeup() = delete;
};

int main() {
  phaseloop::basic_loop<backend_without_wakeup, phaseloop::heap_timers, phaseloop::inline_executor> loop;
  return loop.run() ? 1 : 0;
}
