#pragma once
// The one comparison every conformance test makes: run a scenario's C++
// translation on a fresh loop and compare its trace with the lines Node v20
// printed (tests/conformance/expected/NAME.expected).

#include "support.hpp"

#include <string>

namespace phaseloop::test {

/// Builds a Loop, runs `scenario(loop)` (which returns the printed trace) and
/// checks it line by line against NAME.expected; the loop must end not alive.
template <class Loop, class Scenario>
void check_scenario(const std::string& name, Scenario scenario) {
  INFO("scenario " << name);
  Loop loop;
  const trace got = scenario(loop);
  const trace want = expected_trace(name);
  REQUIRE_FALSE(want.empty());
  CHECK(got == want);
  CHECK_FALSE(loop.alive());
}

}  // namespace phaseloop::test
