#pragma once
// epoll_backend: Linux's readiness backend, the shared reactor
// (detail/reactor.hpp) over epoll. CLOCK_MONOTONIC time, read cheaply between
// millisecond boundaries (detail/ms_clock.hpp); an eventfd for cross-thread
// wakeups. When no descriptor is registered but the wakeup's, a non-blocking
// poll makes no system call at all (the loop checks its inbox flag itself).

#include <phaseloop/concepts.hpp>
#include <phaseloop/detail/posix/system.hpp>
#include <phaseloop/detail/reactor.hpp>

#if defined(__linux__)

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <system_error>

namespace phaseloop {

/// epoll as a poller: level-triggered interest, one epoll_ctl per change.
class epoll_poller {
 public:
  epoll_poller() {
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
  epoll_poller(const epoll_poller&) = delete;
  epoll_poller& operator=(const epoll_poller&) = delete;
  ~epoll_poller() {
    ::close(wake_fd_);
    ::close(epoll_fd_);
  }

  std::error_code add(int fd, io_events interest) noexcept {
    if (fd == wake_fd_ || fd == epoll_fd_) return std::make_error_code(std::errc::bad_file_descriptor);
    if (ctl(EPOLL_CTL_ADD, fd, interest) == 0) return {};
    // Registered behind the reactor's back (the number was closed and reused
    // while a duplicate kept the old file in the set): take it over.
    if (errno == EEXIST && ctl(EPOLL_CTL_MOD, fd, interest) == 0) return {};
    return detail::posix::errno_code();
  }

  std::error_code modify(int fd, io_events interest) noexcept {
    if (ctl(EPOLL_CTL_MOD, fd, interest) == 0) return {};
    if (errno == ENOENT && ctl(EPOLL_CTL_ADD, fd, interest) == 0) return {};
    return detail::posix::errno_code();
  }

  void remove(int fd) noexcept {
    epoll_event ev{};
    (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, &ev);  // fails harmlessly once the fd is closed
  }

  std::size_t wait(std::chrono::milliseconds timeout, poll_event* out, std::size_t capacity) noexcept {
    int wait_ms = -1;
    if (timeout >= std::chrono::milliseconds::zero())
      wait_ms = timeout.count() > INT_MAX ? INT_MAX : static_cast<int>(timeout.count());
    const int max = static_cast<int>(capacity < max_events ? capacity : max_events);
    const int n = ::epoll_wait(epoll_fd_, events_, max, wait_ms);
    std::size_t count = 0;
    for (int i = 0; i < n; ++i) {
      const int fd = events_[i].data.fd;
      if (fd == wake_fd_) {
        std::uint64_t drained = 0;
        [[maybe_unused]] auto r = ::read(wake_fd_, &drained, sizeof drained);
        continue;
      }
      out[count++] = poll_event{fd, from_epoll(events_[i].events)};
    }
    return count;
  }

  void wake() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_fd_, &one, sizeof one);
  }

 private:
  static constexpr int max_events = 256;

  int ctl(int op, int fd, io_events interest) noexcept {
    epoll_event ev{};
    if (any(interest & io_events::readable)) ev.events |= EPOLLIN;
    if (any(interest & io_events::writable)) ev.events |= EPOLLOUT;
    ev.data.fd = fd;
    return ::epoll_ctl(epoll_fd_, op, fd, &ev);
  }

  static io_events from_epoll(std::uint32_t e) noexcept {
    io_events events = io_events::none;
    if (e & (EPOLLIN | EPOLLPRI)) events |= io_events::readable;
    if (e & EPOLLOUT) events |= io_events::writable;
    if (e & (EPOLLHUP | EPOLLRDHUP)) events |= io_events::hangup;
    if (e & EPOLLERR) events |= io_events::error;
    return events;
  }

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  epoll_event events_[max_events];
};

static_assert(poller<epoll_poller>);

/// The reactor over epoll: Linux's default backend.
class epoll_backend : public detail::reactor<epoll_poller> {};

static_assert(backend<epoll_backend>);

}  // namespace phaseloop

#endif  // __linux__
