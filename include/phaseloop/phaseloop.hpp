#pragma once
// phaseloop: Node.js's event loop for C++20, header-only.
// The umbrella header: every module, and the default loop types.

#include <phaseloop/version.hpp>
#include <phaseloop/fwd.hpp>
#include <phaseloop/concepts.hpp>
#include <phaseloop/loop_core.hpp>
#include <phaseloop/handle.hpp>
#include <phaseloop/phase_handles.hpp>
#include <phaseloop/poll.hpp>
#include <phaseloop/timers.hpp>
#include <phaseloop/loop.hpp>
#include <phaseloop/promise.hpp>
#include <phaseloop/any_loop.hpp>
#include <phaseloop/abort.hpp>
#include <phaseloop/use_promise.hpp>
#include <phaseloop/timers/heap.hpp>
#include <phaseloop/timers/wheel.hpp>
#include <phaseloop/backend/mock.hpp>
#include <phaseloop/backend/epoll.hpp>
#include <phaseloop/backend/poll.hpp>
#include <phaseloop/backend/io_uring.hpp>
#include <phaseloop/backend/kqueue.hpp>
#include <phaseloop/backend/default.hpp>
#include <phaseloop/executor/inline.hpp>
#include <phaseloop/executor/thread_pool.hpp>
#include <phaseloop/fs.hpp>
#include <phaseloop/dns.hpp>
#include <phaseloop/net.hpp>
#include <phaseloop/dgram.hpp>
#include <phaseloop/signal.hpp>
#include <phaseloop/child_process.hpp>

namespace phaseloop {

#if defined(PHASELOOP_HAS_DEFAULT_BACKEND)
/// The loop most programs want: the native backend, the heap timer store.
using loop = basic_loop<default_backend, heap_timers, thread_pool_executor>;
#endif

/// A loop for unit tests: virtual time, instant and deterministic.
using test_loop = basic_loop<mock_backend, heap_timers, inline_executor>;

}  // namespace phaseloop
