#pragma once
// epoll_backend: Linux readiness backend. CLOCK_MONOTONIC time (read cheaply
// between millisecond boundaries, see detail/ms_clock.hpp), epoll_wait
// with the loop's timeout, an eventfd for cross-thread wakeups. When nothing
// but the wakeup descriptor is registered, a non-blocking poll makes no
// system call at all (the loop checks its inbox flag itself).

#if defined(__linux__)

#include <phaseloop/concepts.hpp>
#include <phaseloop/detail/ms_clock.hpp>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <system_error>
#include <vector>

namespace phaseloop {

class epoll_backend {
 public:
  epoll_backend() {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) throw std::system_error(errno, std::system_category(), "epoll_create1");
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) {
      const int error = errno;
      ::close(epoll_fd_);
      throw std::system_error(error, std::system_category(), "eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_fd_;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  }
  epoll_backend(const epoll_backend&) = delete;
  epoll_backend& operator=(const epoll_backend&) = delete;
  ~epoll_backend() {
    ::close(wake_fd_);
    ::close(epoll_fd_);
  }

  [[nodiscard]] std::chrono::milliseconds now() const noexcept {
    return std::chrono::milliseconds(static_cast<std::int64_t>(clock_.now_ms()));
  }

  [[nodiscard]] std::chrono::nanoseconds hrtime() const noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::chrono::nanoseconds(static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec);
  }

  std::error_code submit(operation& op) {
    if (op.kind != op_kind::poll) return std::make_error_code(std::errc::operation_not_supported);
    if (op.fd < 0 || op.fd == wake_fd_ || op.fd == epoll_fd_ || op.fd > INT_MAX)
      return std::make_error_code(std::errc::bad_file_descriptor);
    const auto fd = static_cast<std::size_t>(op.fd);
    if (fd >= fds_.size()) fds_.resize(fd + 1);
    fd_state& state = fds_[fd];
    if (state.poll_op != nullptr && state.poll_op != &op)
      return std::make_error_code(std::errc::device_or_resource_busy);

    epoll_event ev{};
    ev.events = to_epoll(op.events);
    ev.data.fd = static_cast<int>(op.fd);
    const bool registered = state.poll_op != nullptr || op.submitted;
    if (::epoll_ctl(epoll_fd_, registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, ev.data.fd, &ev) != 0) {
      const int error = errno;
      if (!(registered && error == ENOENT) ||
          ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, ev.data.fd, &ev) != 0)
        return {error, std::system_category()};
    }
    if (!op.submitted) ++watched_;
    op.submitted = true;
    state.poll_op = &op;
    return {};
  }

  bool cancel(operation& op) {
    if (!op.submitted) return true;
    fd_state& state = fds_[static_cast<std::size_t>(op.fd)];
    if (state.poll_op == &op) {
      epoll_event ev{};
      // Fails harmlessly when the user already closed the descriptor.
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, static_cast<int>(op.fd), &ev);
      state.poll_op = nullptr;
    }
    op.submitted = false;
    --watched_;
    return true;
  }

  void poll(std::chrono::milliseconds timeout, op_queue& completed) {
    if (timeout == std::chrono::milliseconds::zero() && watched_ == 0) return;
    int wait_ms = -1;
    if (timeout >= std::chrono::milliseconds::zero())
      wait_ms = timeout.count() > INT_MAX ? INT_MAX : static_cast<int>(timeout.count());
    const int n = ::epoll_wait(epoll_fd_, events_, max_events, wait_ms);
    for (int i = 0; i < n; ++i) {
      const int fd = events_[i].data.fd;
      if (fd == wake_fd_) {
        std::uint64_t drained = 0;
        [[maybe_unused]] auto r = ::read(wake_fd_, &drained, sizeof drained);
        continue;
      }
      if (static_cast<std::size_t>(fd) >= fds_.size()) continue;
      operation* op = fds_[static_cast<std::size_t>(fd)].poll_op;
      if (op == nullptr) continue;
      const unsigned got = from_epoll(events_[i].events) & (op->events | hangup | io_error);
      if (got == 0) continue;
      if (op->linked) {
        op->revents |= got;
      } else {
        op->revents = got;
        op->error = {};
        completed.push_back(*op);
      }
    }
  }

  void wakeup() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_fd_, &one, sizeof one);
  }

  /// Descriptors registered besides the wakeup eventfd.
  [[nodiscard]] std::size_t watched() const noexcept { return watched_; }

 private:
  struct fd_state {
    operation* poll_op = nullptr;
  };
  static constexpr int max_events = 1024;

  static std::uint32_t to_epoll(unsigned events) noexcept {
    std::uint32_t e = 0;
    if (events & readable) e |= EPOLLIN;
    if (events & writable) e |= EPOLLOUT;
    return e;
  }
  static unsigned from_epoll(std::uint32_t e) noexcept {
    unsigned events = 0;
    if (e & (EPOLLIN | EPOLLPRI)) events |= readable;
    if (e & EPOLLOUT) events |= writable;
    if (e & (EPOLLHUP | EPOLLRDHUP)) events |= hangup;
    if (e & EPOLLERR) events |= io_error;
    return events;
  }

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  detail::monotonic_ms_clock clock_;
  std::size_t watched_ = 0;
  std::vector<fd_state> fds_;
  epoll_event events_[max_events];
};

static_assert(backend<epoll_backend>);

}  // namespace phaseloop

#endif  // __linux__
