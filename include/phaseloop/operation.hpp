#pragma once
// The I/O operation record every backend works on (DESIGN §1). Handles own
// their operations; a backend never allocates or owns user memory.

#include <phaseloop/detail/intrusive_list.hpp>

#include <chrono>
#include <cstdint>
#include <system_error>

namespace phaseloop {

/// An OS descriptor: a file descriptor on POSIX, a SOCKET or HANDLE value on Windows.
using native_handle = std::intptr_t;

/// Readiness events, combinable with `|`.
enum io_events : unsigned { readable = 1u, writable = 2u, hangup = 4u, io_error = 8u };

/// What an operation asks of the backend.
enum class op_kind : std::uint8_t {
  poll,  ///< report readiness (`events`) of a descriptor the user reads and writes,
         ///< every time it happens, until cancelled
};

/// An I/O request submitted to a backend and completed in the poll phase.
struct operation : detail::list_hook {
  op_kind kind = op_kind::poll;
  native_handle fd = -1;
  unsigned events = 0;      ///< poll: the events asked for
  unsigned revents = 0;     ///< poll: the events that happened
  std::error_code error;    ///< operation_canceled after cancel(), or the system error
  void (*complete)(operation&) = nullptr;  ///< run by the loop for each completion
  void* user = nullptr;                    ///< the owner of the operation
  bool submitted = false;                  ///< backend-private: registered with the backend
};

/// Completed operations, handed from the backend to the loop in FIFO order.
using op_queue = detail::intrusive_list<operation>;

/// Infinite poll timeout.
inline constexpr std::chrono::milliseconds infinite_timeout{-1};

}  // namespace phaseloop
