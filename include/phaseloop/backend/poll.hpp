#pragma once
// poll_backend: the shared reactor (detail/reactor.hpp) over poll(2), for
// POSIX systems with neither epoll nor kqueue, and as a portable reference.
// Interest changes cost no system call (the pollfd array is edited in
// place); each wait passes the whole array, so it suits loops with modest
// numbers of descriptors.

#include <phaseloop/concepts.hpp>
#include <phaseloop/detail/posix/perform.hpp>
#include <phaseloop/detail/posix/socket.hpp>
#include <phaseloop/detail/posix/system.hpp>
#include <phaseloop/detail/reactor.hpp>

#if !defined(_WIN32)

#include <poll.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <system_error>
#include <vector>

namespace phaseloop {

/// poll(2) as a poller.
class poll_poller {
 public:
  poll_poller() {
#if defined(__linux__)
    wake_read_ = wake_write_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_read_ < 0) throw std::system_error(errno, std::system_category(), "eventfd");
#else
    int fds[2];
    if (std::error_code ec = detail::posix::open_pipe(fds)) throw std::system_error(ec, "pipe");
    wake_read_ = fds[0];
    wake_write_ = fds[1];
#endif
    fds_.push_back(pollfd{wake_read_, POLLIN, 0});
  }
  poll_poller(const poll_poller&) = delete;
  poll_poller& operator=(const poll_poller&) = delete;
  ~poll_poller() {
    ::close(wake_read_);
    if (wake_write_ != wake_read_) ::close(wake_write_);
  }

  std::error_code add(int fd, io_events interest) {
    if (fd == wake_read_ || fd == wake_write_) return std::make_error_code(std::errc::bad_file_descriptor);
    if (!detail::posix::is_open(fd)) return std::make_error_code(std::errc::bad_file_descriptor);
    const auto index = static_cast<std::size_t>(fd);
    if (index >= slot_.size()) slot_.resize(index + 1 > 2 * slot_.size() ? index + 1 : 2 * slot_.size(), npos);
    if (slot_[index] == npos) {
      slot_[index] = fds_.size();
      fds_.push_back(pollfd{fd, 0, 0});
    }
    fds_[slot_[index]].events = to_poll(interest);
    return {};
  }

  std::error_code modify(int fd, io_events interest) {
    const auto index = static_cast<std::size_t>(fd);
    if (index >= slot_.size() || slot_[index] == npos) return add(fd, interest);
    fds_[slot_[index]].events = to_poll(interest);
    return {};
  }

  void remove(int fd) noexcept {
    const auto index = static_cast<std::size_t>(fd);
    if (index >= slot_.size() || slot_[index] == npos) return;
    const std::size_t at = slot_[index];
    slot_[index] = npos;
    if (at + 1 != fds_.size()) {
      fds_[at] = fds_.back();
      slot_[static_cast<std::size_t>(fds_[at].fd)] = at;
    }
    fds_.pop_back();
  }

  std::size_t wait(std::chrono::milliseconds timeout, poll_event* out, std::size_t capacity) {
    int wait_ms = -1;
    if (timeout >= std::chrono::milliseconds::zero())
      wait_ms = timeout.count() > INT_MAX ? INT_MAX : static_cast<int>(timeout.count());
    int n = ::poll(fds_.data(), detail::posix::sys_cast<nfds_t>(fds_.size()), wait_ms);
    std::size_t count = 0;
    for (std::size_t i = 0; i < fds_.size() && n > 0; ++i) {
      pollfd& p = fds_[i];
      if (p.revents == 0) continue;
      --n;
      const short got = p.revents;
      p.revents = 0;
      if (p.fd == wake_read_) {
        std::uint64_t drained[4];
        while (::read(wake_read_, drained, sizeof drained) > 0) {}
        continue;
      }
      if (count < capacity) out[count++] = poll_event{p.fd, detail::posix::events_from_poll(static_cast<unsigned>(static_cast<unsigned short>(got)))};
    }
    return count;
  }

  void wake() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_write_, &one, wake_write_ == wake_read_ ? sizeof one : 1);
  }

 private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  static short to_poll(io_events interest) noexcept {
    short e = 0;
    if (any(interest & io_events::readable)) e = static_cast<short>(e | POLLIN);
    if (any(interest & io_events::writable)) e = static_cast<short>(e | POLLOUT);
    return e;
  }

  int wake_read_ = -1;
  int wake_write_ = -1;
  std::vector<pollfd> fds_;
  std::vector<std::size_t> slot_;  // descriptor -> index in fds_
};

static_assert(poller<poll_poller>);

/// The reactor over poll(2).
class poll_backend : public detail::reactor<poll_poller> {};

static_assert(backend<poll_backend>);

}  // namespace phaseloop

#endif  // !_WIN32
