// phaseloop: Node's event loop for C++20.
// The one source of the library's version: CMake, pkg-config, the vcpkg port
// and the Conan recipe all read these three numbers.
#pragma once

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
