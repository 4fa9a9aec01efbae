#pragma once
// What every test includes: phaseloop through its umbrella header (or the
// generated single header), Catch2, and the loop types the suites run on.

#if defined(PHASELOOP_TEST_SINGLE_HEADER)
#include <phaseloop.hpp>
#else
#include <phaseloop/phaseloop.hpp>
#endif

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace phaseloop::test {

/// A trace of printed lines, as the conformance scenarios print them.
using trace = std::vector<std::string>;

}  // namespace phaseloop::test
