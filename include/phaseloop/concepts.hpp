#pragma once
// The three policies of basic_loop, as concepts: a wrong policy fails at the
// basic_loop line with the concept's name.

#include <phaseloop/inbox.hpp>
#include <phaseloop/operation.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <system_error>
#include <type_traits>

namespace phaseloop {

/// Orders timers by due time, ties in the order they were inserted (Node's
/// order: the loop inserts a timer each time it is set, refreshed or
/// re-armed). Each store names the `node` its timers carry: the loop's timer
/// record derives from it, so a store keeps exactly the links and keys it
/// needs inside the record (a heap's position, a wheel's list links) and
/// the record stays small.
template <class S>
concept timer_store = std::default_initializable<S> &&
                      requires(S& s, const S& cs, typename S::node& n, std::uint64_t time) {
                        /// n is not in the store; it fires once the loop time reaches `time` (its due time).
                        s.insert(n, time);
                        s.erase(n);  ///< n is in the store
                        /// Removes and returns the earliest timer with due <= time, or nullptr.
                        { s.pop_expired(time) } -> std::same_as<typename S::node*>;
                        /// The earliest due time, or UINT64_MAX when the store is empty.
                        { s.next_due() } -> std::same_as<std::uint64_t>;
                        { cs.size() } -> std::convertible_to<std::size_t>;
                      };

/// Owns the clock, waits for I/O, performs or submits operations, wakes from
/// other threads (docs/design.md §1.1 has the whole contract).
///
/// A backend declares two facts as constants, so handles and fs choose their
/// path at compile time: `completion_based` (the kernel performs operations:
/// io_uring, IOCP; or the backend performs them on readiness: epoll, kqueue,
/// poll) and `supports(kind)`.
template <class B>
concept backend = std::default_initializable<B> &&
                  requires {
                    { std::bool_constant<B::completion_based>{} };
                    { std::bool_constant<B::supports(op_kind::poll)>{} };
                  } &&
                  requires(B& b, const B& cb, operation& op, std::chrono::milliseconds timeout,
                           op_queue& completed, native_handle fd) {
                    /// Monotonic loop clock in milliseconds (virtual on the mock).
                    { cb.now() } -> std::same_as<std::chrono::milliseconds>;
                    /// High-resolution clock for metrics.
                    { cb.hrtime() } -> std::same_as<std::chrono::nanoseconds>;
                    /// Start an operation. An error means it was not started
                    /// (operation_not_supported for a kind the backend lacks). On
                    /// success its state is `submitted`, or `completed` when it
                    /// finished during submit (the loop then delivers it).
                    { b.submit(op) } -> std::same_as<std::error_code>;
                    /// Cancel a submitted operation. true: the backend let go of it
                    /// at once and will not complete it (the loop delivers its final
                    /// completion, operation_canceled); false: it completes once more
                    /// later, and its memory stays in use until then.
                    { b.cancel(op) } -> std::same_as<bool>;
                    /// Wait up to timeout (infinite_timeout: no limit, 0: just look;
                    /// never blocks while completions are ready); append completions
                    /// to `completed`.
                    b.poll(timeout, completed);
                    /// Thread-safe: make a blocked poll return.
                    b.wakeup();
                    /// Close a descriptor, forgetting what the backend registered for
                    /// it first (a reused descriptor number then starts clean). Every
                    /// operation on it must be completed or cancelled.
                    { b.close(fd) } -> std::same_as<std::error_code>;
                  };

/// One readiness report from a poller.
struct poll_event {
  int fd = -1;
  io_events events = io_events::none;
};

/// A readiness poller under the shared reactor (detail/reactor.hpp): epoll,
/// kqueue, poll(2). The reactor keeps the operations, the per-descriptor
/// queues and the interest each descriptor needs; the poller only registers
/// interest and waits. Interest is level-triggered.
template <class P>
concept poller = std::default_initializable<P> &&
                 requires(P& p, int fd, io_events interest, std::chrono::milliseconds timeout,
                          poll_event* out, std::size_t capacity) {
                   /// Register fd, not registered yet, for `interest` (an error: it
                   /// cannot be watched, such as a regular file on epoll).
                   { p.add(fd, interest) } -> std::same_as<std::error_code>;
                   /// Change a registered descriptor's interest (to a non-empty set).
                   { p.modify(fd, interest) } -> std::same_as<std::error_code>;
                   /// Stop watching fd (called before it is closed, so a reused
                   /// number starts clean).
                   p.remove(fd);
                   /// Wait up to timeout; fill at most `capacity` reports, wakeups
                   /// drained and not reported; returns how many.
                   { p.wait(timeout, out, capacity) } -> std::same_as<std::size_t>;
                   /// Thread-safe: make a blocked wait return.
                   p.wake();
                 };

/// Options an executor is built with.
struct executor_options {
  /// Worker threads; 0 means PHASELOOP_THREADPOOL_SIZE from the environment, or 4.
  std::size_t threads = 0;
};

/// Runs blocking work off the loop thread (or inline) and hands each finished
/// request to the loop's inbox.
template <class E>
concept executor = std::constructible_from<E, inbox&, const executor_options&> &&
                   requires(E& e, work_request& r) {
                     /// Run r.work, then inbox.deliver(r). Never runs r before submit returns
                     /// on another thread's behalf; delivery is always asynchronous.
                     e.submit(r);
                     /// {} when r was dequeued before it ran (the loop then delivers it
                     /// as cancelled); device_or_resource_busy when it runs or ran.
                     { e.cancel(r) } -> std::same_as<std::error_code>;
                   };

}  // namespace phaseloop
