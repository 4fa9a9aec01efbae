#pragma once
// The I/O request every backend works on (docs/design.md §1.1). A handle owns
// its operations and keeps each one, with its buffers and address, alive
// until the operation's final completion; a backend never allocates or owns
// user memory.
//
// The contract every backend keeps:
//   - submit() either fails (the operation was not started and is untouched)
//     or takes the operation: it is then `submitted`, or already `completed`
//     when it could finish during submit (a readiness backend writes to an
//     idle socket at once); the loop delivers that completion later, never
//     from inside submit().
//   - A started operation completes exactly once finally. After cancel() it
//     completes once more, with operation_canceled (or with its result, if
//     that won the race), and its buffers stay in use until then.
//   - A completion that is not the last one of a multishot operation (a poll
//     operation's readiness reports, io_uring's multishot accept) carries
//     op_flag::more; the operation stays submitted.

#include <phaseloop/detail/intrusive_list.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <system_error>

namespace phaseloop {

/// An OS descriptor: a file descriptor on POSIX, a SOCKET or HANDLE value on Windows.
using native_handle = std::intptr_t;

/// No descriptor.
inline constexpr native_handle invalid_handle = -1;

/// Readiness events, combinable with `|`.
enum class io_events : unsigned {
  none = 0,
  readable = 1u,
  writable = 2u,
  hangup = 4u,  ///< the peer closed its end (reported with readable)
  error = 8u,   ///< an error is pending on the descriptor
};

constexpr io_events operator|(io_events a, io_events b) noexcept {
  return static_cast<io_events>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
constexpr io_events operator&(io_events a, io_events b) noexcept {
  return static_cast<io_events>(static_cast<unsigned>(a) & static_cast<unsigned>(b));
}
constexpr io_events operator~(io_events a) noexcept {
  return static_cast<io_events>(~static_cast<unsigned>(a) & 15u);
}
constexpr io_events& operator|=(io_events& a, io_events b) noexcept { return a = a | b; }
constexpr io_events& operator&=(io_events& a, io_events b) noexcept { return a = a & b; }
/// Whether any of the events is set.
constexpr bool any(io_events e) noexcept { return e != io_events::none; }

/// What an operation asks of the backend.
enum class op_kind : std::uint8_t {
  poll,      ///< report readiness (`events`) of a descriptor the user reads and writes
             ///< itself, every time it happens, until cancelled (multishot by nature)
  accept,    ///< accept a connection: `accepted`, peer address in `address`
  connect,   ///< connect a socket to `address`
  read,      ///< read(v) into `buffers` (pipes, files, ttys): `transferred`, 0 at end of file
  write,     ///< write(v) all of `buffers`
  recv,      ///< recvmsg into `buffers` (stream sockets): `transferred`, 0 at end of stream
  send,      ///< sendmsg all of `buffers`, never raising SIGPIPE
  recvfrom,  ///< receive one datagram into `buffers`, the sender into `address`
  sendto,    ///< send one datagram from `buffers` to `address` (none: the connected peer)
  shutdown,  ///< shut down the sending side (`msg_flags` holds SHUT_WR or SHUT_RDWR)
  // File operations a completion backend may run itself (io_uring); on other
  // backends fs runs them on the executor.
  file_open,   ///< openat(`address` as a NUL-terminated path, `msg_flags` flags, `offset` mode)
  file_close,  ///< close `fd`
  file_read,   ///< pread into `buffers` at `offset` (-1: the current position)
  file_write,  ///< pwrite from `buffers` at `offset` (-1: the current position)
  file_fsync,  ///< fsync (`msg_flags` 1: fdatasync)
  file_stat,   ///< statx of the path in `address` (or `fd` with an empty path) into buffers[0]
};

/// How many operation kinds exist (for tables indexed by kind).
inline constexpr std::size_t op_kind_count = static_cast<std::size_t>(op_kind::file_stat) + 1;

/// Where an operation is in its life.
enum class op_state : std::uint8_t {
  idle,        ///< not started (or given back after its final completion)
  submitted,   ///< the backend owns it
  cancelling,  ///< cancel() asked; the backend still owns it until its final completion
  completed,   ///< finally completed; its completion is queued or has run
};

/// Operation flags.
struct op_flag {
  static constexpr std::uint8_t multishot = 1;  ///< ask for many completions (a backend may ignore it)
  static constexpr std::uint8_t more = 2;       ///< set by the backend: not the last completion
  /// Ask: a receive may land in a buffer the backend picks from its own pool
  /// (io_uring's provided buffers) instead of `buffers` (a backend may ignore it).
  static constexpr std::uint8_t select_buffer = 4;
  /// Set by the backend on a completion whose bytes are in its own buffer
  /// (`received`); that buffer stays valid until the backend's next poll.
  static constexpr std::uint8_t provided_buffer = 8;
  static constexpr std::uint8_t backend_bits = 0xf0;  ///< reserved for the backend's own state
};

/// One buffer of a scatter read or a gather write; laid out as POSIX's iovec.
struct io_buffer {
  void* data = nullptr;
  std::size_t size = 0;
};

struct handle_record;  // handle.hpp

/// An I/O request submitted to a backend and completed in the poll phase.
struct operation : detail::list_hook {
  /// Bytes reserved for the backend's per-operation data (IOCP's OVERLAPPED,
  /// io_uring's msghdr); each backend checks with static_assert that it fits.
  static constexpr std::size_t scratch_size = 64;

  op_kind kind = op_kind::poll;
  op_state state = op_state::idle;
  std::uint8_t flags = 0;
  io_events events = io_events::none;   ///< poll: the events asked for
  io_events revents = io_events::none;  ///< poll: the events that happened
  native_handle fd = invalid_handle;
  io_buffer* buffers = nullptr;  ///< read/write/recv/send/recvfrom/sendto/file_*: the buffers
  std::uint32_t buffer_count = 0;
  std::uint32_t address_length = 0;  ///< in: bytes at `address` (its capacity for accept/recvfrom); out: used
  void* address = nullptr;           ///< a sockaddr (connect, sendto, accept, recvfrom) or a path
  int msg_flags = 0;                 ///< send/recv flags, shutdown's `how`, open flags; recvfrom: out MSG_TRUNC
  std::int64_t offset = -1;          ///< file operations: position (-1: current), open's mode
  std::size_t transferred = 0;       ///< bytes read or written
  /// read/recv/recvfrom with one buffer: where the bytes are (buffers[0], or
  /// the backend's own buffer with op_flag::provided_buffer), `transferred` long.
  const void* received = nullptr;
  native_handle accepted = invalid_handle;  ///< accept: the new descriptor (owned by the handle after completion)
  std::error_code error;             ///< the system error, or operation_canceled
  void (*complete)(operation&) = nullptr;  ///< run by the loop for each completion
  void* user = nullptr;                    ///< the owner's own pointer
  handle_record* owner = nullptr;          ///< the handle whose close waits for this operation (may be null)
  alignas(8) unsigned char scratch[scratch_size];  ///< backend-private

  /// Whether the backend still owns the operation.
  [[nodiscard]] bool in_flight() const noexcept {
    return state == op_state::submitted || state == op_state::cancelling;
  }
  /// Whether this completion is not the operation's last.
  [[nodiscard]] bool more() const noexcept { return (flags & op_flag::more) != 0; }
  /// Total bytes in `buffers`.
  [[nodiscard]] std::size_t buffer_bytes() const noexcept {
    std::size_t n = 0;
    for (std::uint32_t i = 0; i < buffer_count; ++i) n += buffers[i].size;
    return n;
  }
  /// Ready the operation for another submit: results cleared, request kept.
  void reset_results() noexcept {
    state = op_state::idle;
    flags = static_cast<std::uint8_t>(flags & (op_flag::multishot | op_flag::select_buffer));
    revents = io_events::none;
    transferred = 0;
    received = nullptr;
    accepted = invalid_handle;
    error = {};
  }
};

/// Completed operations, handed from the backend to the loop in FIFO order.
using op_queue = detail::intrusive_list<operation>;

/// Infinite poll timeout.
inline constexpr std::chrono::milliseconds infinite_timeout{-1};

}  // namespace phaseloop
