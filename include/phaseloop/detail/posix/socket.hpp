#pragma once
// Non-blocking socket calls with the portable alternative to each Linux-only
// flag: SOCK_NONBLOCK/SOCK_CLOEXEC and accept4 where they exist, fcntl
// elsewhere; MSG_NOSIGNAL where it exists, SO_NOSIGPIPE on Apple.

#include <phaseloop/detail/posix/system.hpp>

#if !defined(_WIN32)

#include <system_error>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

namespace phaseloop::detail::posix {

/// Flags for send/sendmsg that keep a write to a closed peer from raising SIGPIPE.
#if defined(MSG_NOSIGNAL)
inline constexpr int no_sigpipe_flag = MSG_NOSIGNAL;
#else
inline constexpr int no_sigpipe_flag = 0;  // SO_NOSIGPIPE is set on every socket instead
#endif

/// Make a socket non-blocking and close-on-exec where the flags could not be
/// passed at creation, and keep it from raising SIGPIPE where only a socket
/// option can.
inline std::error_code prepare_socket(int fd, bool flags_done) noexcept {
  if (!flags_done)
    if (std::error_code ec = set_nonblocking_cloexec(fd)) return ec;
#if defined(SO_NOSIGPIPE)
  const int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one) != 0) return errno_code();
#endif
  return {};
}

/// socket(2), non-blocking and close-on-exec.
inline std::error_code open_socket(int domain, int type, int protocol, int& out) noexcept {
  out = -1;
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  const int fd = ::socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  const bool flags_done = true;
#else
  const int fd = ::socket(domain, type, protocol);
  const bool flags_done = false;
#endif
  if (fd < 0) return errno_code();
  if (std::error_code ec = prepare_socket(fd, flags_done)) {
    (void)close_fd(fd);
    return ec;
  }
  out = fd;
  return {};
}

/// accept(2): the new descriptor non-blocking and close-on-exec. EAGAIN is
/// returned as is (the caller waits for readiness); EINTR is retried.
inline std::error_code accept_socket(int fd, sockaddr* address, socklen_t* length, int& out) noexcept {
  out = -1;
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
  const int s = retry([&] { return ::accept4(fd, address, length, SOCK_NONBLOCK | SOCK_CLOEXEC); });
  const bool flags_done = true;
#else
  const int s = retry([&] { return ::accept(fd, address, length); });
  const bool flags_done = false;
#endif
  if (s < 0) return errno_code();
  if (std::error_code ec = prepare_socket(s, flags_done)) {
    (void)close_fd(s);
    return ec;
  }
  out = s;
  return {};
}

/// socketpair(2), both ends non-blocking and close-on-exec.
inline std::error_code open_socketpair(int domain, int type, int (&out)[2]) noexcept {
  out[0] = out[1] = -1;
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  if (::socketpair(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, out) != 0) return errno_code();
  const bool flags_done = true;
#else
  if (::socketpair(domain, type, 0, out) != 0) return errno_code();
  const bool flags_done = false;
#endif
  for (int fd : out) {
    if (std::error_code ec = prepare_socket(fd, flags_done)) {
      (void)close_fd(out[0]);
      (void)close_fd(out[1]);
      out[0] = out[1] = -1;
      return ec;
    }
  }
  return {};
}

/// pipe(2), both ends non-blocking and close-on-exec ([0] reads, [1] writes).
inline std::error_code open_pipe(int (&out)[2]) noexcept {
  out[0] = out[1] = -1;
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
  if (::pipe2(out, O_NONBLOCK | O_CLOEXEC) != 0) return errno_code();
#else
  if (::pipe(out) != 0) return errno_code();
  for (int fd : out) {
    if (std::error_code ec = set_nonblocking_cloexec(fd)) {
      (void)close_fd(out[0]);
      (void)close_fd(out[1]);
      out[0] = out[1] = -1;
      return ec;
    }
  }
#endif
  return {};
}

/// The pending error of a socket (SO_ERROR), as a connect finishes.
inline std::error_code socket_error(int fd) noexcept {
  int value = 0;
  socklen_t length = sizeof value;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) != 0) return errno_code();
  return value != 0 ? errno_code(value) : std::error_code{};
}

}  // namespace phaseloop::detail::posix

#endif  // !_WIN32
