// A timer store without insert, erase, pop_expired, next_due and size:
// basic_loop names phaseloop::timer_store.
#include <phaseloop/phaseloop.hpp>

struct not_a_timer_store {
  struct node {};
};

int main() {
  phaseloop::basic_loop<phaseloop::mock_backend, not_a_timer_store, phaseloop::inline_executor> loop;
  return loop.run() ? 1 : 0;
}
