// Conan's check that the package works: a loop on virtual time runs a timer.
#include <phaseloop/phaseloop.hpp>

#include <chrono>
#include <cstdio>

int main() {
  using namespace std::chrono_literals;
  phaseloop::test_loop loop;
  bool fired = false;
  loop.set_timeout([&] { fired = true; }, 10ms);
  loop.run();
  std::printf("phaseloop %d.%d.%d: timer %s\n", phaseloop::version.major, phaseloop::version.minor,
              phaseloop::version.patch, fired ? "fired" : "did not fire");
  return fired ? 0 : 1;
}
