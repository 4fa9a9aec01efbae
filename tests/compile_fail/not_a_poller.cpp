// The shared readiness reactor over a type that is no poller: it names
// phaseloop::poller.
#include <phaseloop/phaseloop.hpp>

struct not_a_poller {};

int main() {
  phaseloop::detail::reactor<not_a_poller> reactor;
  (void)reactor;
  return 0;
}
