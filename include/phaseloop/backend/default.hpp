#pragma once
// The one place that picks the platform's native backend (libxev's way):
// epoll on Linux, kqueue on macOS and the BSDs. IOCP (Windows) joins here as
// it lands; PHASELOOP_HAS_DEFAULT_BACKEND says whether this platform has one.
// (kqueue over libkqueue on Linux, PHASELOOP_WITH_KQUEUE, is an extra backend
// there, never the default.)

// Each backend header guards its own platform code.
#include <phaseloop/backend/kqueue.hpp>

#if defined(__linux__)
#include <phaseloop/backend/epoll.hpp>
namespace phaseloop {
/// The platform's native backend: epoll on Linux.
using default_backend = epoll_backend;
}  // namespace phaseloop
#define PHASELOOP_HAS_DEFAULT_BACKEND 1
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || \
    defined(__DragonFly__)
namespace phaseloop {
/// The platform's native backend: kqueue on macOS and the BSDs.
using default_backend = kqueue_backend;
}  // namespace phaseloop
#define PHASELOOP_HAS_DEFAULT_BACKEND 1
#endif
