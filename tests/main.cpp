// The one Catch2 main shared by every test file.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#if !defined(_WIN32)
#include <csignal>
#include <cstring>
#include <unistd.h>

namespace {

// A test that hangs fails on its own, naming itself, instead of running the
// whole suite into CI's time limit: every test case gets a generous alarm.
char current_test[512];
std::size_t current_test_length = 0;

extern "C" void phaseloop_test_watchdog(int) {
  constexpr char head[] = "\nphaseloop_tests watchdog: test case still running after its time limit: ";
  (void)!::write(2, head, sizeof head - 1);
  (void)!::write(2, current_test, current_test_length);
  (void)!::write(2, "\n", 1);
  ::_exit(124);
}

struct watchdog : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(Catch::TestCaseInfo const& info) override {
    current_test_length = std::min(info.name.size(), sizeof current_test);
    std::memcpy(current_test, info.name.data(), current_test_length);
    std::signal(SIGALRM, phaseloop_test_watchdog);
    ::alarm(240);
  }
  void testCaseEnded(Catch::TestCaseStats const&) override { ::alarm(0); }
};

}  // namespace

CATCH_REGISTER_LISTENER(watchdog)
#endif
