#pragma once
// kqueue_backend: the readiness backend of macOS and the BSDs, the shared
// reactor (detail/reactor.hpp) over kqueue. One EVFILT_READ and one
// EVFILT_WRITE filter per descriptor, each registered only while that
// direction is wanted (level-triggered, as the reactor's poller contract
// says: a paused reader must not lose readiness it did not consume). Interest
// changes are batched into the changelist of the next kevent call, so a
// change costs no system call of its own; registering a new descriptor and
// deleting one are applied at once (the first so an unwatchable descriptor
// fails at submit, the second because the reactor closes the descriptor
// right after: a registration left behind swallows events for a reused
// number, and libkqueue, unlike the BSD kernels, never drops it by itself).
// Cross-thread wakeups trigger an EVFILT_USER event registered with EV_CLEAR,
// so it re-arms itself without a further call (a pipe where EVFILT_USER is
// missing, as on OpenBSD).
//
// Built where <sys/event.h> exists: Apple and the BSDs, or any other POSIX
// system (Linux) with PHASELOOP_WITH_KQUEUE defined and libkqueue's headers
// and library in the build; PHASELOOP_HAS_KQUEUE_BACKEND then says so.

// The library's headers guard their own platform code, so they are included
// outside the platform guard (and the single header inlines each once).
#include <phaseloop/concepts.hpp>
#include <phaseloop/detail/posix/socket.hpp>
#include <phaseloop/detail/posix/system.hpp>
#include <phaseloop/detail/reactor.hpp>

#if !defined(_WIN32) &&                                                                                      \
    (defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) ||             \
     defined(__DragonFly__) || defined(PHASELOOP_WITH_KQUEUE))

#define PHASELOOP_HAS_KQUEUE_BACKEND 1

#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <optional>
#include <utility>
#include <system_error>
#include <vector>

namespace phaseloop {

/// kqueue as a poller: EVFILT_READ/EVFILT_WRITE per direction, changes batched
/// into the next kevent call, EV_DELETE applied before the reactor closes a
/// descriptor, an EVFILT_USER wakeup.
class kqueue_poller {
 public:
  kqueue_poller() {
    kq_ = ::kqueue();
    if (kq_ < 0) throw std::system_error(errno, std::system_category(), "kqueue");
    // kqueue(2) takes no close-on-exec flag everywhere (FreeBSD 14's kqueuex does).
    (void)::fcntl(kq_, F_SETFD, FD_CLOEXEC);
    changes_.reserve(64);
    receipts_.reserve(64);
#if defined(EVFILT_USER)
    struct kevent ev = change(wake_ident, EVFILT_USER, EV_ADD | EV_CLEAR, 0);
    if (::kevent(kq_, &ev, 1, nullptr, 0, nullptr) < 0) {
      const int error = errno;
      (void)::close(kq_);
      throw std::system_error(error, std::system_category(), "kevent(EVFILT_USER)");
    }
#else
    int fds[2];
    if (std::error_code ec = detail::posix::open_pipe(fds)) {
      (void)::close(kq_);
      throw std::system_error(ec, "pipe");
    }
    wake_read_ = fds[0];
    wake_write_ = fds[1];
    struct kevent ev = change(static_cast<std::uintptr_t>(wake_read_), EVFILT_READ, EV_ADD, 0);
    if (::kevent(kq_, &ev, 1, nullptr, 0, nullptr) < 0) {
      const int error = errno;
      (void)::close(wake_read_);
      (void)::close(wake_write_);
      (void)::close(kq_);
      throw std::system_error(error, std::system_category(), "kevent(wakeup pipe)");
    }
#endif
  }
  kqueue_poller(const kqueue_poller&) = delete;
  kqueue_poller& operator=(const kqueue_poller&) = delete;
  ~kqueue_poller() {
#if !defined(EVFILT_USER)
    (void)::close(wake_read_);
    (void)::close(wake_write_);
#endif
    (void)::close(kq_);
  }

  /// Registers fd at once (an error: it cannot be watched), applying the
  /// changes batched so far in the same call.
  std::error_code add(int fd, io_events interest) {
    if (fd < 0 || fd == kq_ || fd == wake_read_ || fd == wake_write_)
      return std::make_error_code(std::errc::bad_file_descriptor);
    const auto index = static_cast<std::size_t>(fd);
    if (index >= filters_.size()) filters_.resize(index + 1 > 2 * filters_.size() ? index + 1 : 2 * filters_.size());
    stage(fd, interest);
    std::error_code ec = apply_now(fd);
    if (ec && filters_[index] != 0) {
      // One direction registered, the other refused: take back the first.
      stage(fd, io_events::none);
      (void)apply_now(-1);
    }
    return ec;
  }

  /// Records the new interest for the next kevent call (no system call).
  std::error_code modify(int fd, io_events interest) {
    if (fd < 0 || static_cast<std::size_t>(fd) >= filters_.size()) return add(fd, interest);
    stage(fd, interest);
    return {};
  }

  /// Deletes fd's filters at once: the reactor closes the descriptor next.
  void remove(int fd) noexcept {
    if (fd < 0 || static_cast<std::size_t>(fd) >= filters_.size() || filters_[static_cast<std::size_t>(fd)] == 0)
      return;
    stage(fd, io_events::none);
    (void)apply_now(-1);
  }

  /// One kevent call: the batched changes in, up to `capacity` reports out.
  std::size_t wait(std::chrono::milliseconds timeout, poll_event* out, std::size_t capacity) {
    std::size_t count = 0;
    // Changes refused while applied early (with another descriptor's add or
    // remove) are reported first, and the wait does not block behind them.
    while (!refused_.empty() && count < capacity) {
      out[count++] = refused_.back();
      refused_.pop_back();
      timeout = std::chrono::milliseconds::zero();
    }
    if (count == capacity) return count;
    // A change refused in the wait's own call needs a slot of the event list;
    // more changes than slots go in a call of their own first.
    if (changes_.size() > max_events) (void)apply_now(-1);
    timespec ts{};
    timespec* limit = nullptr;
    if (timeout >= std::chrono::milliseconds::zero()) {
      ts.tv_sec = detail::posix::sys_cast<std::time_t>(timeout.count() / 1000);
      ts.tv_nsec = detail::posix::sys_cast<long>((timeout.count() % 1000) * 1000000);
      limit = &ts;
    }
#if defined(LIBKQUEUE)
    socket_errors_.clear();
#endif
    const std::size_t room = capacity - count < max_events ? capacity - count : max_events;
    const int n = ::kevent(kq_, changes_.data(), static_cast<int>(changes_.size()), events_, static_cast<int>(room),
                           limit);
    changes_.clear();  // applied, even when the wait itself was interrupted
    for (int i = 0; i < n; ++i) {
      const struct kevent& ev = events_[i];
      if ((ev.flags & EV_ERROR) != 0) {
        if (std::optional<poll_event> report = refusal(ev)) out[count++] = *report;
        continue;
      }
#if defined(EVFILT_USER)
      if (ev.filter == EVFILT_USER) continue;  // the wakeup; EV_CLEAR re-armed it
#else
      if (ev.filter == EVFILT_READ && ev.ident == static_cast<std::uintptr_t>(wake_read_)) {
        char drained[64];
        while (::read(wake_read_, drained, sizeof drained) > 0) {}
        continue;
      }
#endif
      io_events events = ev.filter == EVFILT_WRITE ? io_events::writable : io_events::readable;
      if ((ev.flags & EV_EOF) != 0) {
        events |= io_events::hangup;
        if (ev.fflags != 0) {
          events |= io_events::error;  // the socket's pending error
#if defined(LIBKQUEUE)
          socket_errors_.emplace_back(static_cast<int>(ev.ident), detail::posix::sys_cast<int>(ev.fflags));
#endif
        }
      }
      out[count++] = poll_event{static_cast<int>(ev.ident), events};
    }
    return count;
  }

  /// Thread-safe: triggers the EVFILT_USER event (or writes the pipe).
  void wake() noexcept {
#if defined(EVFILT_USER)
    struct kevent ev = change(wake_ident, EVFILT_USER, 0, NOTE_TRIGGER);
    (void)::kevent(kq_, &ev, 1, nullptr, 0, nullptr);
#else
    const char one = 1;
    [[maybe_unused]] auto r = ::write(wake_write_, &one, 1);
#endif
  }

  /// The kqueue descriptor.
  [[nodiscard]] int native_handle() const noexcept { return kq_; }

#if defined(LIBKQUEUE)
  /// libkqueue only: (descriptor, errno) of the reports of the last wait that
  /// carried a socket error, which libkqueue took from the socket.
  [[nodiscard]] const std::vector<std::pair<int, int>>& socket_errors() const noexcept { return socket_errors_; }
#endif

 private:
  static constexpr std::size_t max_events = 256;
  static constexpr std::uintptr_t wake_ident = 0;  // EVFILT_USER idents are not descriptors
  static constexpr std::uint8_t read_bit = 1;
  static constexpr std::uint8_t write_bit = 2;

  static struct kevent change(std::uintptr_t ident, int filter, unsigned flags, unsigned fflags) noexcept {
    struct kevent ev {};  // udata stays null: a pointer on most systems, an integer on older NetBSD
    ev.ident = ident;
    ev.filter = detail::posix::sys_cast<decltype(ev.filter)>(filter);
    ev.flags = detail::posix::sys_cast<decltype(ev.flags)>(flags);
    ev.fflags = detail::posix::sys_cast<decltype(ev.fflags)>(fflags);
    return ev;
  }

  // Batch the filter additions and deletions that take fd from what it has to `interest`.
  void stage(int fd, io_events interest) {
    std::uint8_t& has = filters_[static_cast<std::size_t>(fd)];
    std::uint8_t want = 0;
    if (any(interest & io_events::readable)) want = static_cast<std::uint8_t>(want | read_bit);
    if (any(interest & io_events::writable)) want = static_cast<std::uint8_t>(want | write_bit);
    const auto ident = static_cast<std::uintptr_t>(fd);
    const auto one = [&](std::uint8_t bit, int filter) {
      if ((want & bit) != 0 && (has & bit) == 0) changes_.push_back(change(ident, filter, EV_ADD, 0));
      if ((want & bit) == 0 && (has & bit) != 0) changes_.push_back(change(ident, filter, EV_DELETE, 0));
    };
    one(read_bit, EVFILT_READ);
    one(write_bit, EVFILT_WRITE);
    has = want;
  }

  // Apply the batched changes now, each with EV_RECEIPT into a list exactly
  // as long as the changes: every entry comes back as a receipt, and no
  // pending event is drained (BSD returns after receipts; libkqueue scans
  // only the room left). Returns the error of descriptor `fd`'s changes;
  // others' refusals are reported by the next wait.
  std::error_code apply_now(int fd) {
    std::error_code result;
    if (changes_.empty()) return result;
    for (struct kevent& ev : changes_) ev.flags = detail::posix::sys_cast<decltype(ev.flags)>(ev.flags | EV_RECEIPT);
    receipts_.resize(changes_.size());
    const int n = ::kevent(kq_, changes_.data(), static_cast<int>(changes_.size()), receipts_.data(),
                           static_cast<int>(receipts_.size()), nullptr);
    if (n < 0) {
      result = detail::posix::errno_code();
      if (fd >= 0) filters_[static_cast<std::size_t>(fd)] = 0;
    }
    for (int i = 0; i < n; ++i) {
      const struct kevent& ev = receipts_[static_cast<std::size_t>(i)];
      if ((ev.flags & EV_ERROR) == 0 || ev.data == 0) continue;
      if (fd >= 0 && ev.ident == static_cast<std::uintptr_t>(fd)) {
        (void)refusal(ev);
        if ((ev.flags & EV_DELETE) == 0 && !result) result = detail::posix::errno_code(detail::posix::sys_cast<int>(ev.data));
      } else if (std::optional<poll_event> report = refusal(ev)) {
        refused_.push_back(*report);
      }
    }
    changes_.clear();
    return result;
  }

  // A change the kernel refused: the filter is not registered. A refused
  // deletion is nothing to report (the descriptor was already gone); a
  // refused addition becomes an error report, so the descriptor's operations
  // are tried and fail with their own error instead of waiting forever.
  std::optional<poll_event> refusal(const struct kevent& ev) noexcept {
    if (ev.data == 0 || (ev.filter != EVFILT_READ && ev.filter != EVFILT_WRITE)) return std::nullopt;
    const auto fd = static_cast<std::size_t>(ev.ident);
    if (fd < filters_.size() && (ev.flags & EV_DELETE) == 0)
      filters_[fd] = static_cast<std::uint8_t>(filters_[fd] & ~(ev.filter == EVFILT_READ ? read_bit : write_bit));
    if ((ev.flags & EV_DELETE) != 0) return std::nullopt;
    return poll_event{static_cast<int>(ev.ident), io_events::error};
  }

  int kq_ = -1;
  int wake_read_ = -1;  // the wakeup pipe where there is no EVFILT_USER
  int wake_write_ = -1;
  std::vector<std::uint8_t> filters_;     // per descriptor: read_bit, write_bit as registered
  std::vector<struct kevent> changes_;    // batched for the next kevent call
  std::vector<struct kevent> receipts_;   // apply_now's receipts
  std::vector<poll_event> refused_;       // refusals found by apply_now, for the next wait
#if defined(LIBKQUEUE)
  std::vector<std::pair<int, int>> socket_errors_;
#endif
  struct kevent events_[max_events];
};

static_assert(poller<kqueue_poller>);

/// The reactor over kqueue: the default backend on macOS and the BSDs.
class kqueue_backend : public detail::reactor<kqueue_poller> {
#if defined(LIBKQUEUE)
 public:
  /// libkqueue reads a socket's pending error (SO_ERROR, which clears it) to
  /// fill in the event's fflags, where the BSD kernels leave it in place: a
  /// refused connect would then complete without error and a reset read as
  /// end of stream. The errors its reports carried are put back here.
  void poll(std::chrono::milliseconds timeout, op_queue& completed) {
    op_queue fresh;
    detail::reactor<kqueue_poller>::poll(timeout, fresh);
    if (!poller().socket_errors().empty()) {
      fresh.for_each_safe([&](operation& op) {
        if (op.error) return;
        const bool eof = (op.kind == op_kind::read || op.kind == op_kind::recv) && op.transferred == 0;
        if (op.kind != op_kind::connect && !eof) return;
        for (const auto& [fd, error] : poller().socket_errors())
          if (static_cast<native_handle>(fd) == op.fd) op.error = detail::posix::errno_code(error);
      });
    }
    completed.splice_back(fresh);
  }
#endif
};

static_assert(backend<kqueue_backend>);

}  // namespace phaseloop

#endif  // kqueue
