#pragma once
// The POSIX system-call layer every module shares: one errno-to-error_code,
// one EINTR rule, one owning descriptor type.

#if !defined(_WIN32)

#include <cerrno>
#include <system_error>
#include <type_traits>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

namespace phaseloop::detail::posix {

/// errno (or `e`) as an error_code in the system category, which on POSIX
/// compares equal to the std::errc values.
inline std::error_code errno_code(int e = errno) noexcept { return {e, std::system_category()}; }

/// An intended conversion to or from an integer typedef of the system
/// (socklen_t, nfds_t, time_t, off_t, mode_t, dev_t), whose width and
/// signedness differ between systems: the very type on one (where a
/// static_cast would be useless: g++ -Wuseless-cast), a narrowing or a change
/// of sign on another. The caller guarantees the value fits.
template <class To, class From>
constexpr To sys_cast(From value) noexcept {
  static_assert(std::is_integral_v<To> && std::is_integral_v<From>, "sys_cast converts integers");
  return static_cast<To>(value);
}

/// Whether errno says "try again later" (EAGAIN or EWOULDBLOCK).
inline bool would_block(int e) noexcept {
#if defined(EWOULDBLOCK) && EWOULDBLOCK != EAGAIN
  return e == EAGAIN || e == EWOULDBLOCK;
#else
  return e == EAGAIN;
#endif
}

/// The EINTR rule: a call interrupted by a signal is retried, every call but
/// close() (on Linux the descriptor is gone after an interrupted close; see
/// close_fd).
template <class F>
auto retry(F&& call) noexcept(noexcept(call())) {
  decltype(call()) r;
  do {
    r = call();
  } while (r < 0 && errno == EINTR);
  return r;
}

/// close(2), never retried: on Linux and the BSDs the descriptor is released
/// even when close reports EINTR, and retrying could close a reused number.
inline std::error_code close_fd(int fd) noexcept {
  if (::close(fd) != 0 && errno != EINTR) return errno_code();
  return {};
}

/// Whether fd names an open descriptor (one fcntl, no side effect).
inline bool is_open(int fd) noexcept { return fd >= 0 && ::fcntl(fd, F_GETFD) != -1; }

/// Set O_NONBLOCK and FD_CLOEXEC on a descriptor this process made without them.
inline std::error_code set_nonblocking_cloexec(int fd) noexcept {
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return errno_code();
  const int fdfl = ::fcntl(fd, F_GETFD);
  if (fdfl < 0 || ::fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0) return errno_code();
  return {};
}

/// An owned descriptor: closed when destroyed.
class unique_fd {
 public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] explicit operator bool() const noexcept { return fd_ >= 0; }
  /// Give up ownership.
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) (void)close_fd(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace phaseloop::detail::posix

#endif  // !_WIN32
