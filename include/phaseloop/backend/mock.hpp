#pragma once
// mock_backend: virtual time and scripted I/O for tests, including users'
// own. When the loop would block, the virtual clock jumps to the next timer
// instead of sleeping, so an hour of timers runs in microseconds. Tests can
// also move the clock by hand and inject readiness on fake descriptors, and
// make cancellation asynchronous, as a completion backend's (io_uring, IOCP).

#include <phaseloop/concepts.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace phaseloop {

class mock_backend {
 public:
  mock_backend() = default;
  mock_backend(const mock_backend&) = delete;
  mock_backend& operator=(const mock_backend&) = delete;

  // --- the backend contract ---------------------------------------------

  [[nodiscard]] std::chrono::milliseconds now() const noexcept {
    std::lock_guard lock(mutex_);
    return now_;
  }
  /// Virtual nanoseconds; wraps past 2^63 ns (about 2^43 ms of virtual
  /// uptime), which is harmless because only differences are used.
  [[nodiscard]] std::chrono::nanoseconds hrtime() const noexcept {
    const auto ms = static_cast<std::uint64_t>(now().count());
    return std::chrono::nanoseconds(static_cast<std::int64_t>(ms * 1000000u));
  }

  std::error_code submit(operation& op) {
    if (op.kind != op_kind::poll) return std::make_error_code(std::errc::operation_not_supported);
    if (op.fd < 0) return std::make_error_code(std::errc::bad_file_descriptor);
    std::lock_guard lock(mutex_);
    auto [it, inserted] = ops_.try_emplace(op.fd, &op);
    if (!inserted && it->second != &op) return std::make_error_code(std::errc::device_or_resource_busy);
    op.submitted = true;
    return {};
  }

  bool cancel(operation& op) {
    std::lock_guard lock(mutex_);
    const bool was_submitted = op.submitted;
    if (was_submitted) ops_.erase(op.fd);
    op.submitted = false;
    if (!async_cancel_ || !was_submitted) return true;
    cancelled_.push_back(&op);  // completes with operation_canceled at the next poll
    return false;
  }

  void poll(std::chrono::milliseconds timeout, op_queue& completed) {
    std::unique_lock lock(mutex_);
    ++polls_;
    if (ready_.empty() && !woken_ && cancelled_.empty()) {
      if (timeout > std::chrono::milliseconds::zero()) {
        if (auto_advance_) now_ += timeout;
      } else if (timeout < std::chrono::milliseconds::zero()) {
        // Nothing can happen but a wakeup from another thread: wait for it.
        wakeup_cv_.wait(lock, [&] { return woken_ || !ready_.empty() || !cancelled_.empty(); });
      }
    }
    woken_ = false;
    for (operation* op : std::exchange(cancelled_, {})) {
      // Exactly one more completion: if one is still queued, it becomes it.
      op->revents = 0;
      op->error = std::make_error_code(std::errc::operation_canceled);
      if (!op->linked) completed.push_back(*op);
    }
    for (auto [fd, events] : std::exchange(ready_, {})) {
      auto it = ops_.find(fd);
      if (it == ops_.end()) continue;
      operation& op = *it->second;
      const unsigned got = events & (op.events | hangup | io_error);
      if (got == 0) continue;
      if (op.linked) {
        op.revents |= got;
      } else {
        op.revents = got;
        op.error = {};
        completed.push_back(op);
      }
    }
  }

  void wakeup() {
    {
      std::lock_guard lock(mutex_);
      woken_ = true;
    }
    wakeup_cv_.notify_one();
  }

  // --- what tests drive -------------------------------------------------

  /// Move the virtual clock forward.
  void advance(std::chrono::milliseconds by) {
    std::lock_guard lock(mutex_);
    if (by > std::chrono::milliseconds::zero()) now_ += by;
  }

  /// Set the virtual clock; it never moves backwards.
  void set_time(std::chrono::milliseconds to) {
    std::lock_guard lock(mutex_);
    if (to > now_) now_ = to;
  }

  /// Whether a blocking poll jumps the clock to its timeout (default) or
  /// returns at once, leaving time to the test.
  void set_auto_advance(bool on) {
    std::lock_guard lock(mutex_);
    auto_advance_ = on;
  }

  /// Whether cancel() lets go of an operation at once (the default, as epoll
  /// and poll do) or, as io_uring and IOCP do, keeps it until the next poll
  /// completes it with operation_canceled.
  void set_async_cancel(bool on) {
    std::lock_guard lock(mutex_);
    async_cancel_ = on;
  }

  /// Make `fd` report `events` at the next poll (thread-safe).
  void inject(native_handle fd, unsigned events) {
    {
      std::lock_guard lock(mutex_);
      ready_.emplace_back(fd, events);
    }
    wakeup_cv_.notify_one();
  }

  /// Whether an operation is submitted on `fd`.
  [[nodiscard]] bool watching(native_handle fd) const {
    std::lock_guard lock(mutex_);
    return ops_.contains(fd);
  }

  /// How many times the loop polled.
  [[nodiscard]] std::uint64_t polls() const {
    std::lock_guard lock(mutex_);
    return polls_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable wakeup_cv_;
  std::chrono::milliseconds now_{0};
  std::unordered_map<native_handle, operation*> ops_;
  std::vector<std::pair<native_handle, unsigned>> ready_;
  std::vector<operation*> cancelled_;
  std::uint64_t polls_ = 0;
  bool woken_ = false;
  bool auto_advance_ = true;
  bool async_cancel_ = false;
};

static_assert(backend<mock_backend>);

}  // namespace phaseloop
