#pragma once
// The one place that picks the platform's native backend (libxev's way):
// epoll on Linux. kqueue (macOS, the BSDs) and IOCP (Windows) join here as
// they land; PHASELOOP_HAS_DEFAULT_BACKEND says whether this platform has one.

#if defined(__linux__)
#include <phaseloop/backend/epoll.hpp>
namespace phaseloop {
/// The platform's native backend: epoll on Linux.
using default_backend = epoll_backend;
}  // namespace phaseloop
#define PHASELOOP_HAS_DEFAULT_BACKEND 1
#endif
