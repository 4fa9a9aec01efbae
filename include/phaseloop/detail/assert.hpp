#pragma once
// PHASELOOP_ASSERT(condition, message): catches a contract violation that
// cannot become an error code (a handle of one loop given to another, run()
// re-entered, a null callback). On unless NDEBUG is defined; define
// PHASELOOP_ASSERTS to 1 or 0 to force it on or off. A failed assertion
// prints what was violated and where, then aborts.

#include <cstdio>
#include <cstdlib>

#if !defined(PHASELOOP_ASSERTS)
#if defined(NDEBUG)
#define PHASELOOP_ASSERTS 0
#else
#define PHASELOOP_ASSERTS 1
#endif
#endif

namespace phaseloop::detail {
[[noreturn]] inline void assertion_failed(const char* condition, const char* message, const char* file,
                                          int line) noexcept {
  std::fprintf(stderr, "phaseloop: %s\n  precondition `%s` failed at %s:%d\n", message, condition, file, line);
  std::fflush(stderr);
  std::abort();
}
}  // namespace phaseloop::detail

#if PHASELOOP_ASSERTS
#define PHASELOOP_ASSERT(condition, message) \
  ((condition) ? static_cast<void>(0)        \
               : ::phaseloop::detail::assertion_failed(#condition, message, __FILE__, __LINE__))
#else
#define PHASELOOP_ASSERT(condition, message) static_cast<void>(0)
#endif
