// Testing your own code with phaseloop's mock backend: virtual time jumps to
// the next timer instead of sleeping, so an hour of timers runs at once.
// phaseloop: portable (mock backend and inline executor only; built for Windows too)
#include <phaseloop/phaseloop.hpp>

#include <cstdio>

using namespace std::chrono_literals;

// Code under test: retries with exponential back-off until `attempt` succeeds.
template <class Loop, class Attempt>
void retry_with_backoff(Loop& loop, Attempt attempt, std::chrono::milliseconds delay, int left) {
  if (attempt() || left == 0) return;
  loop.set_timeout([&loop, attempt, delay, left] { retry_with_backoff(loop, attempt, delay * 2, left - 1); },
                   delay);
}

int main() {
  phaseloop::test_loop loop;  // mock backend: virtual clock starting at 0
  int calls = 0;
  retry_with_backoff(loop, [&] {
    std::printf("attempt %d at t=%lld ms\n", ++calls, static_cast<long long>(loop.now().count()));
    return calls == 12;
  }, 1000ms, 20);
  loop.run();  // about 34 virtual minutes, no real waiting
  std::printf("succeeded after %d attempts, virtual time %lld ms\n", calls,
              static_cast<long long>(loop.now().count()));
  return calls == 12 && loop.now() == 2047000ms ? 0 : 1;
}
