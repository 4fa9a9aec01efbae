#pragma once
// reactor<Poller>: the one implementation of the backend contract for every
// readiness poller (epoll, kqueue, poll(2)); see docs/design.md §1.1.
//
// Per descriptor it keeps a reader queue, a writer queue and at most one
// poll operation, and the interest those need. Interest changes are
// recorded and flushed once before each wait, so an interest that went away
// and came back within an iteration (a read completed, and its callback
// started the next one) costs no system call. Each operation's perform step
// (detail/posix/perform.hpp) runs once at submit where it can succeed at once
// (a write to an idle socket goes straight out; a read after a read that
// filled its buffer) and again when its descriptor is ready; a short read
// marks the descriptor exhausted until the next readiness report, so no read
// is made that must fail with EAGAIN.

// The library's headers guard their own platform code, so they are included
// outside the platform guard (and the single header inlines each once).
#include <phaseloop/concepts.hpp>
#include <phaseloop/detail/ms_clock.hpp>
#include <phaseloop/detail/posix/perform.hpp>
#include <phaseloop/detail/posix/system.hpp>

#if !defined(_WIN32)

#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <system_error>
#include <vector>

#include <time.h>

namespace phaseloop::detail {

/// CLOCK_MONOTONIC in milliseconds; cheap between boundaries on Linux.
#if defined(__linux__)
using reactor_clock = monotonic_ms_clock;
#else
struct reactor_clock {
  [[nodiscard]] std::uint64_t now_ms() const noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000u;
  }
};
#endif

/// CLOCK_MONOTONIC in nanoseconds (process.hrtime's clock).
inline std::chrono::nanoseconds monotonic_hrtime() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

template <poller Poller>
class reactor {
 public:
  static constexpr bool completion_based = false;
  /// Socket and stream kinds; file operations go to the executor.
  static constexpr bool supports(op_kind kind) noexcept {
    return static_cast<unsigned>(kind) <= static_cast<unsigned>(op_kind::shutdown);
  }

  reactor() = default;
  reactor(const reactor&) = delete;
  reactor& operator=(const reactor&) = delete;

  [[nodiscard]] std::chrono::milliseconds now() const noexcept {
    return std::chrono::milliseconds(static_cast<std::int64_t>(clock_.now_ms()));
  }

  [[nodiscard]] std::chrono::nanoseconds hrtime() const noexcept { return monotonic_hrtime(); }

  std::error_code submit(operation& op) {
    if (!supports(op.kind)) return std::make_error_code(std::errc::operation_not_supported);
    if (op.fd < 0 || op.fd > INT_MAX) return std::make_error_code(std::errc::bad_file_descriptor);
    const int fd = static_cast<int>(op.fd);
    descriptor* d = find_or_grow(fd);
    if (d == nullptr) return std::make_error_code(std::errc::bad_file_descriptor);
    op.flags = static_cast<std::uint8_t>(op.flags & ~(op_flag::more | posix::connect_started));

    switch (posix::side_of(op.kind)) {
      case side::poll: {
        const io_events rw = io_events::readable | io_events::writable;
        if (!any(op.events) || any(op.events & ~rw)) return std::make_error_code(std::errc::invalid_argument);
        if (d->poll_op != nullptr && d->poll_op != &op)
          return std::make_error_code(std::errc::device_or_resource_busy);
        if (std::error_code ec = want(fd, *d, wanted(*d) | op.events)) return ec;
        d->poll_op = &op;
        op.state = op_state::submitted;
        return {};
      }
      case side::read: {
        if (d->readers.empty() && d->read_ready) {
          const posix::perform_result r = posix::perform(op);
          if (r != posix::perform_result::not_done) {
            // An error says nothing is ready (accept's EMFILE comes whether
            // or not a connection waits): wait for readiness next time.
            d->read_ready = r == posix::perform_result::done && !op.error;
            op.state = op_state::completed;
            return {};
          }
          d->read_ready = false;
        }
        if (std::error_code ec = want(fd, *d, wanted(*d) | io_events::readable)) return ec;
        d->readers.push_back(op);
        op.state = op_state::submitted;
        return {};
      }
      case side::write: {
        if (d->writers.empty() && d->write_ready) {
          if (posix::perform(op) != posix::perform_result::not_done) {
            op.state = op_state::completed;
            return {};
          }
          d->write_ready = false;
        }
        if (std::error_code ec = want(fd, *d, wanted(*d) | io_events::writable)) {
          if (op.transferred == 0 && (op.flags & posix::connect_started) == 0) return ec;
          op.error = ec;  // it made progress: finish it with the error instead
          op.state = op_state::completed;
          return {};
        }
        d->writers.push_back(op);
        op.state = op_state::submitted;
        return {};
      }
      case side::none:
        (void)posix::perform(op);
        op.state = op_state::completed;
        return {};
    }
    return std::make_error_code(std::errc::operation_not_supported);
  }

  bool cancel(operation& op) {
    if (!op.in_flight() || op.fd < 0 || static_cast<std::size_t>(op.fd) >= fds_.size()) return true;
    const int fd = static_cast<int>(op.fd);
    descriptor& d = fds_[static_cast<std::size_t>(fd)];
    switch (posix::side_of(op.kind)) {
      case side::poll:
        if (d.poll_op == &op) {
          d.poll_op = nullptr;
          // The user may close the descriptor as soon as stop() returns:
          // forget it now, so a reused number starts clean.
          if (wanted(d) == io_events::none) unregister(fd, d);
          else note_change(fd, d);
        }
        break;
      case side::read:
        if (!op.linked) break;  // a submitted reader is in its queue until it completes
        d.readers.remove(op);
        note_change(fd, d);
        break;
      case side::write:
        if (!op.linked) break;
        d.writers.remove(op);
        note_change(fd, d);
        break;
      case side::none:
        break;
    }
    return true;
  }

  void poll(std::chrono::milliseconds timeout, op_queue& completed) {
    flush_changes(completed);
    if (!failed_.empty()) {
      completed.splice_back(failed_);
      timeout = std::chrono::milliseconds::zero();
    }
    if (timeout == std::chrono::milliseconds::zero() && registered_ == 0) return;
    const std::size_t n = poller_.wait(timeout, events_, max_events);
    for (std::size_t i = 0; i < n; ++i) dispatch(events_[i], completed);
  }

  void wakeup() noexcept { poller_.wake(); }

  std::error_code close(native_handle handle) {
    if (handle < 0 || handle > INT_MAX) return std::make_error_code(std::errc::bad_file_descriptor);
    const int fd = static_cast<int>(handle);
    if (static_cast<std::size_t>(fd) < fds_.size()) {
      descriptor& d = fds_[static_cast<std::size_t>(fd)];
      // Operations left on a descriptor closed under them fail, never hang.
      fail_all(d, std::make_error_code(std::errc::bad_file_descriptor), failed_);
      unregister(fd, d);
      d.read_ready = false;
      d.write_ready = true;
    }
    return posix::close_fd(fd);
  }

  /// Descriptors registered with the poller (its own wakeup descriptor aside).
  [[nodiscard]] std::size_t watched() const noexcept { return registered_; }

  Poller& poller() noexcept { return poller_; }

 private:
  using side = posix::readiness_side;

  struct descriptor {
    op_queue readers;
    op_queue writers;
    operation* poll_op = nullptr;
    io_events registered = io_events::none;  // what the poller watches for
    bool in_poller = false;
    bool changed = false;      // listed in changes_
    bool read_ready = false;   // a read may succeed without waiting (the last one filled its buffer)
    bool write_ready = true;   // a write may go out without waiting
  };

  static io_events wanted(const descriptor& d) noexcept {
    io_events e = d.poll_op != nullptr ? d.poll_op->events : io_events::none;
    if (!d.readers.empty()) e |= io_events::readable;
    if (!d.writers.empty()) e |= io_events::writable;
    return e;
  }

  descriptor* find_or_grow(int fd) {
    const auto index = static_cast<std::size_t>(fd);
    if (index < fds_.size()) return &fds_[index];
    // Validate before sizing the table for it: a bogus huge number must not
    // allocate a table entry per number below it.
    if (!posix::is_open(fd)) return nullptr;
    std::size_t size = fds_.size() < 64 ? 64 : fds_.size();
    while (size <= index) size *= 2;
    fds_.resize(size);
    return &fds_[index];
  }

  // The descriptor needs `interest` from now on: registered at once when the
  // poller does not know it yet (so an unwatchable descriptor fails at
  // submit), otherwise recorded for the flush before the next wait.
  std::error_code want(int fd, descriptor& d, io_events interest) {
    if (!d.in_poller) {
      if (std::error_code ec = poller_.add(fd, interest)) return ec;
      d.in_poller = true;
      d.registered = interest;
      ++registered_;
      return {};
    }
    if (interest != d.registered) note_change(fd, d);
    return {};
  }

  void note_change(int fd, descriptor& d) {
    if (d.changed) return;
    d.changed = true;
    changes_.push_back(fd);
  }

  void unregister(int fd, descriptor& d) noexcept {
    if (d.in_poller) {
      poller_.remove(fd);
      d.in_poller = false;
      --registered_;
    }
    d.registered = io_events::none;
  }

  void flush_changes(op_queue& completed) {
    for (const int fd : changes_) {
      descriptor& d = fds_[static_cast<std::size_t>(fd)];
      d.changed = false;
      const io_events w = wanted(d);
      if (w == d.registered) continue;
      if (w == io_events::none) {
        // Not modified to nothing: epoll would still report hangups and errors.
        unregister(fd, d);
        continue;
      }
      std::error_code ec;
      if (d.in_poller) {
        ec = poller_.modify(fd, w);
      } else if (!(ec = poller_.add(fd, w))) {
        d.in_poller = true;
        ++registered_;
      }
      if (ec) {
        fail_all(d, ec, completed);
        unregister(fd, d);
        continue;
      }
      d.registered = w;
    }
    changes_.clear();
  }

  static void finish(operation& op, op_queue& completed) noexcept {
    op.state = op_state::completed;
    op.flags = static_cast<std::uint8_t>(op.flags & ~op_flag::more);
    completed.push_back(op);
  }

  static void fail_all(descriptor& d, std::error_code ec, op_queue& completed) noexcept {
    for (op_queue* q : {&d.readers, &d.writers}) {
      while (operation* op = q->pop_front()) {
        op->error = ec;
        finish(*op, completed);
      }
    }
    if (operation* op = d.poll_op) {
      d.poll_op = nullptr;
      op->error = ec;
      op->revents = io_events::none;
      if (op->linked) {  // its last report is queued: it becomes the final completion
        op->state = op_state::completed;
        op->flags = static_cast<std::uint8_t>(op->flags & ~op_flag::more);
      } else {
        finish(*op, completed);
      }
    }
  }

  // Perform the queue's operations in order while they complete; returns
  // whether the descriptor may still be ready for more.
  static bool run_queue(op_queue& queue, bool ready, op_queue& completed) noexcept {
    while (operation* op = queue.front()) {
      const posix::perform_result r = posix::perform(*op);
      if (r == posix::perform_result::not_done) return false;
      queue.remove(*op);
      finish(*op, completed);
      if (r == posix::perform_result::done_exhausted || op->error) return false;
      ready = true;
    }
    return ready;
  }

  void dispatch(const poll_event& ev, op_queue& completed) {
    const auto index = static_cast<std::size_t>(ev.fd);
    if (index >= fds_.size()) return;
    descriptor& d = fds_[index];
    if (!d.in_poller) return;
    if (wanted(d) == io_events::none) {  // a hangup or error nobody asked about
      unregister(ev.fd, d);
      return;
    }
    const io_events broken = io_events::hangup | io_events::error;
    if (any(ev.events & (io_events::readable | broken)) && !d.readers.empty()) {
      d.read_ready = run_queue(d.readers, d.read_ready, completed);
      if (d.readers.empty()) note_change(ev.fd, d);
    }
    if (any(ev.events & (io_events::writable | broken))) {
      if (d.writers.empty()) {
        d.write_ready = true;
      } else {
        d.write_ready = run_queue(d.writers, true, completed);
        if (d.writers.empty()) note_change(ev.fd, d);
      }
    }
    if (operation* op = d.poll_op) {
      const io_events got = ev.events & (op->events | broken);
      if (!any(got)) return;
      if (op->linked) {  // its last report has not run yet: widen it
        op->revents |= got;
        return;
      }
      op->revents = got;
      op->error = {};
      op->flags = static_cast<std::uint8_t>(op->flags | op_flag::more);
      completed.push_back(*op);
    }
  }

  static constexpr std::size_t max_events = 256;

  Poller poller_;
  reactor_clock clock_;
  std::vector<descriptor> fds_;
  std::vector<int> changes_;
  op_queue failed_;  // failed outside a poll (a descriptor closed under its operations)
  std::size_t registered_ = 0;
  poll_event events_[max_events];
};

}  // namespace phaseloop::detail

#endif  // !_WIN32
