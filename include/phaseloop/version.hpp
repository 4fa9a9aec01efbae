// phaseloop: Node's event loop for C++20.
// The one source of the library's version: CMake, pkg-config, the vcpkg port
// and the Conan recipe all read these three numbers.
#pragma once

// phaseloop needs C++20 (concepts, coroutines, <span>): say so once, first,
// instead of hundreds of errors about them. Every public header includes this
// one before anything else. MSVC reports the real standard in _MSVC_LANG
// (__cplusplus stays 199711L without /Zc:__cplusplus).
#if defined(_MSVC_LANG) && _MSVC_LANG > __cplusplus
#define PHASELOOP_CPLUSPLUS _MSVC_LANG
#else
#define PHASELOOP_CPLUSPLUS __cplusplus
#endif
#if PHASELOOP_CPLUSPLUS < 202002L
#error "phaseloop needs C++20: compile with -std=c++20 (MSVC: /std:c++20) or newer; GCC 12, Clang 14 or newer"
// GCC and Clang go on after #error; a missing header is fatal, so the
// compilation stops here, with the message above as its first diagnostic.
#define PHASELOOP_DETAIL_STOP <phaseloop: compilation stopped: C++20 is required (see the error above)>
#include PHASELOOP_DETAIL_STOP
#endif

#define PHASELOOP_VERSION_MAJOR 0
#define PHASELOOP_VERSION_MINOR 1
#define PHASELOOP_VERSION_PATCH 0

/// The version as one integer, MAJOR * 10000 + MINOR * 100 + PATCH.
#define PHASELOOP_VERSION \
  (PHASELOOP_VERSION_MAJOR * 10000 + PHASELOOP_VERSION_MINOR * 100 + PHASELOOP_VERSION_PATCH)

namespace phaseloop {
/// The library's version, for run-time checks.
struct version_info {
  int major;
  int minor;
  int patch;
};
inline constexpr version_info version{PHASELOOP_VERSION_MAJOR, PHASELOOP_VERSION_MINOR,
                                      PHASELOOP_VERSION_PATCH};
}  // namespace phaseloop
