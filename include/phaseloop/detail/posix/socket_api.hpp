#pragma once
// The system's socket calls as the table the net modules use on every real
// POSIX backend (epoll, poll, kqueue, io_uring).

#include <phaseloop/detail/posix/perform.hpp>
#include <phaseloop/detail/posix/socket.hpp>
#include <phaseloop/detail/posix/system.hpp>
#include <phaseloop/detail/socket_api.hpp>

#if !defined(_WIN32)

#include <cerrno>
#include <climits>
#include <system_error>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace phaseloop::detail::posix {

inline int as_fd(native_handle fd) noexcept { return fd >= 0 && fd <= INT_MAX ? static_cast<int>(fd) : -1; }

/// The system's socket calls.
inline constexpr socket_api system_socket_api{
      [](void*, int family, int type, int protocol, native_handle& out) {
        int fd = -1;
        std::error_code ec = open_socket(family, type, protocol, fd);
        out = fd;
        return ec;
      },
      [](void*, native_handle fd, const void* address, std::uint32_t length) -> std::error_code {
        if (::bind(as_fd(fd), static_cast<const sockaddr*>(address), sys_cast<socklen_t>(length)) != 0)
          return errno_code();
        return {};
      },
      [](void*, native_handle fd, int backlog) -> std::error_code {
        if (::listen(as_fd(fd), backlog) != 0) return errno_code();
        return {};
      },
      [](void*, native_handle fd, bool peer, void* address, std::uint32_t& length) -> std::error_code {
        auto len = sys_cast<socklen_t>(length);
        const int r = peer ? ::getpeername(as_fd(fd), static_cast<sockaddr*>(address), &len)
                           : ::getsockname(as_fd(fd), static_cast<sockaddr*>(address), &len);
        if (r != 0) return errno_code();
        length = sys_cast<std::uint32_t>(len);
        return {};
      },
      [](void*, native_handle fd, int level, int option, const void* value, std::uint32_t length) -> std::error_code {
        if (::setsockopt(as_fd(fd), level, option, value, sys_cast<socklen_t>(length)) != 0) return errno_code();
        return {};
      },
      [](void*, native_handle fd, const io_buffer* buffers, std::uint32_t count, bool socket,
         std::size_t& written) -> std::error_code {
        written = 0;
        iovec iov[64];
        const std::uint32_t n = count < 64 ? count : 64;
        for (std::uint32_t i = 0; i < n; ++i) iov[i] = iovec{buffers[i].data, buffers[i].size};
        ssize_t r;
        if (socket) {
          msghdr msg{};
          msg.msg_iov = iov;
          msg.msg_iovlen = static_cast<decltype(msg.msg_iovlen)>(n);
          r = retry([&] { return ::sendmsg(as_fd(fd), &msg, no_sigpipe_flag); });
        } else {
          r = retry([&] { return ::writev(as_fd(fd), iov, static_cast<int>(n)); });
        }
        if (r < 0) return errno_code();
        written = static_cast<std::size_t>(r);
        return {};
      },
      [](void*, native_handle listener, native_handle& reserve) {
        // libuv's EMFILE trick: free the spare descriptor, accept and close
        // what is pending until the listener is drained, take the spare back.
        if (reserve < 0) return;
        (void)close_fd(as_fd(reserve));
        reserve = invalid_handle;
        for (;;) {
          int s = -1;
          if (accept_socket(as_fd(listener), nullptr, nullptr, s)) break;
          (void)close_fd(s);
        }
        const int spare = ::open("/", O_RDONLY | O_CLOEXEC);
        reserve = spare;
      },
      [](void*) -> native_handle { return ::open("/", O_RDONLY | O_CLOEXEC); },
      [](void*, native_handle fd) -> std::error_code {
        // Only O_NONBLOCK: the descriptor may be a standard stream children inherit.
        const int fl = ::fcntl(as_fd(fd), F_GETFL);
        if (fl < 0) return errno_code();
        if ((fl & O_NONBLOCK) == 0 && ::fcntl(as_fd(fd), F_SETFL, fl | O_NONBLOCK) < 0) return errno_code();
        return {};
      },
};

}  // namespace phaseloop::detail::posix

#endif  // !_WIN32
