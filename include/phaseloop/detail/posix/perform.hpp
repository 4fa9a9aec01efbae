#pragma once
// The perform step of every socket and stream operation kind on POSIX
// readiness backends (detail/reactor.hpp): the non-blocking system call an
// operation makes once at submit (writes, connect, shutdown) and again each
// time its descriptor is ready.

#include <phaseloop/detail/posix/socket.hpp>
#include <phaseloop/detail/posix/system.hpp>
#include <phaseloop/operation.hpp>

#if !defined(_WIN32)

#include <climits>
#include <cstddef>
#include <cstdint>
#include <system_error>

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

namespace phaseloop::detail::posix {

/// What one perform step achieved.
enum class perform_result : std::uint8_t {
  not_done,        ///< would block: wait for readiness
  done,            ///< complete; the descriptor may have more
  done_exhausted,  ///< complete, and the descriptor has nothing more for now (a short read)
};

/// Which readiness of its descriptor an operation waits for: a poll waits
/// for the events it names, socket reads and writes for one direction; the
/// rest (shutdown, the file kinds) never wait for readiness.
enum class readiness_side : std::uint8_t { poll, read, write, none };

constexpr readiness_side side_of(op_kind kind) noexcept {
  switch (kind) {
    case op_kind::poll: return readiness_side::poll;
    case op_kind::accept:
    case op_kind::read:
    case op_kind::recv:
    case op_kind::recvfrom: return readiness_side::read;
    case op_kind::connect:
    case op_kind::write:
    case op_kind::send:
    case op_kind::sendto: return readiness_side::write;
    case op_kind::shutdown:
    case op_kind::file_open:
    case op_kind::file_close:
    case op_kind::file_read:
    case op_kind::file_write:
    case op_kind::file_fsync:
    case op_kind::file_stat: break;
  }
  return readiness_side::none;
}

/// poll(2)'s revents (also io_uring's poll completions) as io_events.
constexpr io_events events_from_poll(unsigned revents) noexcept {
  io_events events = io_events::none;
  if (revents & (POLLIN | POLLPRI)) events |= io_events::readable;
  if (revents & POLLOUT) events |= io_events::writable;
#if defined(POLLRDHUP)
  if (revents & (POLLHUP | POLLRDHUP)) events |= io_events::hangup;
#else
  if (revents & POLLHUP) events |= io_events::hangup;
#endif
  if (revents & (POLLERR | POLLNVAL)) events |= io_events::error;
  return events;
}

/// The operation's backend bit: connect() was called and is in progress.
inline constexpr std::uint8_t connect_started = 0x10;

/// How many buffers one gather call takes (the rest go in the next call).
inline constexpr std::uint32_t max_iov =
#if defined(IOV_MAX)
    IOV_MAX < 1024 ? IOV_MAX : 1024;
#else
    1024;
#endif

/// The iovecs for op.buffers past op.transferred bytes, in a caller array.
inline int gather(const operation& op, iovec* out, std::uint32_t capacity) noexcept {
  std::size_t skip = op.transferred;
  int n = 0;
  for (std::uint32_t i = 0; i < op.buffer_count && static_cast<std::uint32_t>(n) < capacity; ++i) {
    const io_buffer& b = op.buffers[i];
    if (skip >= b.size) {
      skip -= b.size;
      continue;
    }
    out[n].iov_base = static_cast<char*>(b.data) + skip;
    out[n].iov_len = b.size - skip;
    skip = 0;
    ++n;
  }
  return n;
}

inline perform_result finish_with(operation& op, std::error_code ec) noexcept {
  op.error = ec;
  return perform_result::done;
}

/// A read-side result: n bytes (0 = end), or an error in errno.
inline perform_result finish_read(operation& op, ssize_t n, std::size_t capacity) noexcept {
  if (n < 0) {
    if (would_block(errno)) return perform_result::not_done;
    return finish_with(op, errno_code());
  }
  op.transferred = static_cast<std::size_t>(n);
  op.received = op.buffer_count != 0 ? op.buffers[0].data : nullptr;
  op.error = {};
  return static_cast<std::size_t>(n) < capacity || n == 0 ? perform_result::done_exhausted
                                                         : perform_result::done;
}

/// A write-side result: all of the buffers written completes the operation;
/// a partial write keeps it waiting for writability with its progress in
/// `transferred`, so no byte is lost or reordered.
inline perform_result finish_write(operation& op, ssize_t n) noexcept {
  if (n < 0) {
    if (would_block(errno)) return perform_result::not_done;
    return finish_with(op, errno_code());
  }
  op.transferred += static_cast<std::size_t>(n);
  if (op.transferred < op.buffer_bytes()) return perform_result::not_done;
  op.error = {};
  return perform_result::done;
}

/// One perform step of a readiness operation (not op_kind::poll).
inline perform_result perform(operation& op) noexcept {
  const int fd = static_cast<int>(op.fd);
  switch (op.kind) {
    case op_kind::read: {
      iovec iov[64];
      const int n = gather(op, iov, 64);
      const ssize_t r = retry([&] { return ::readv(fd, iov, n); });
      return finish_read(op, r, op.buffer_bytes());
    }
    case op_kind::recv:
    case op_kind::recvfrom: {
      iovec iov[64];
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<decltype(msg.msg_iovlen)>(gather(op, iov, 64));
      if (op.kind == op_kind::recvfrom) {
        msg.msg_name = op.address;
        msg.msg_namelen = sys_cast<socklen_t>(op.address_length);
      }
      const int flags = op.kind == op_kind::recv ? op.msg_flags : 0;
      const ssize_t r = retry([&] { return ::recvmsg(fd, &msg, flags); });
      if (op.kind == op_kind::recv) return finish_read(op, r, op.buffer_bytes());
      if (r < 0) {
        if (would_block(errno)) return perform_result::not_done;
        return finish_with(op, errno_code());
      }
      // One datagram per call: the socket may hold more, whatever the size.
      op.transferred = static_cast<std::size_t>(r);
      op.received = op.buffer_count != 0 ? op.buffers[0].data : nullptr;
      op.address_length = sys_cast<std::uint32_t>(msg.msg_namelen);
      op.msg_flags = msg.msg_flags;
      op.error = {};
      return perform_result::done;
    }
    case op_kind::write: {
      iovec iov[max_iov];
      const int n = gather(op, iov, max_iov);
      return finish_write(op, retry([&] { return ::writev(fd, iov, n); }));
    }
    case op_kind::send:
    case op_kind::sendto: {
      iovec iov[max_iov];
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<decltype(msg.msg_iovlen)>(gather(op, iov, max_iov));
      if (op.kind == op_kind::sendto && op.address != nullptr) {
        msg.msg_name = op.address;
        msg.msg_namelen = sys_cast<socklen_t>(op.address_length);
      }
      const ssize_t r = retry([&] { return ::sendmsg(fd, &msg, op.msg_flags | no_sigpipe_flag); });
      if (op.kind == op_kind::sendto) {  // a datagram goes whole or not at all
        if (r < 0) {
          if (would_block(errno)) return perform_result::not_done;
          return finish_with(op, errno_code());
        }
        op.transferred = static_cast<std::size_t>(r);
        op.error = {};
        return perform_result::done;
      }
      return finish_write(op, r);
    }
    case op_kind::accept: {
      socklen_t length = sys_cast<socklen_t>(op.address_length);
      int s = -1;
      const std::error_code ec =
          accept_socket(fd, static_cast<sockaddr*>(op.address), op.address != nullptr ? &length : nullptr, s);
      if (ec) {
        if (would_block(ec.value())) return perform_result::not_done;
        // The connection went away while queued: not this listener's error.
        if (ec == std::errc::connection_aborted) return perform_result::not_done;
        return finish_with(op, ec);
      }
      op.accepted = s;
      op.address_length = op.address != nullptr ? sys_cast<std::uint32_t>(length) : 0;
      op.error = {};
      return perform_result::done;
    }
    case op_kind::connect: {
      if ((op.flags & connect_started) == 0) {
        op.flags = static_cast<std::uint8_t>(op.flags | connect_started);
        if (::connect(fd, static_cast<const sockaddr*>(op.address), sys_cast<socklen_t>(op.address_length)) == 0)
          return finish_with(op, {});
        // EINTR: the connection goes on asynchronously, as with EINPROGRESS.
        if (errno == EINPROGRESS || errno == EINTR) return perform_result::not_done;
        return finish_with(op, errno_code());
      }
      return finish_with(op, socket_error(fd));
    }
    case op_kind::shutdown:
      if (::shutdown(fd, op.msg_flags) != 0) return finish_with(op, errno_code());
      return finish_with(op, {});
    case op_kind::poll:  // the reactor reports readiness itself, it never performs a watch
    case op_kind::file_open:
    case op_kind::file_close:
    case op_kind::file_read:
    case op_kind::file_write:
    case op_kind::file_fsync:
    case op_kind::file_stat:
      break;
  }
  return finish_with(op, std::make_error_code(std::errc::operation_not_supported));
}

}  // namespace phaseloop::detail::posix

#endif  // !_WIN32
