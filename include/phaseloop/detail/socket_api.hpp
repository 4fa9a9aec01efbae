#pragma once
// The socket calls the net modules make outside operations (creating,
// binding, listening, naming, options, a direct send), as a table a backend
// provides: the system's calls on real backends (detail/posix/socket_api.hpp),
// a virtual network on the mock. Addresses are raw sockaddr bytes; levels
// and options are the platform's constants.

#include <phaseloop/operation.hpp>

#include <cstddef>
#include <cstdint>
#include <system_error>

namespace phaseloop::detail {

struct socket_api {
  /// A non-blocking, close-on-exec socket that never raises SIGPIPE.
  std::error_code (*open)(void* backend, int family, int type, int protocol, native_handle& out);
  std::error_code (*bind)(void* backend, native_handle fd, const void* address, std::uint32_t length);
  std::error_code (*listen)(void* backend, native_handle fd, int backlog);
  /// The socket's own address (peer false) or its peer's; `length` in: capacity, out: used.
  std::error_code (*name)(void* backend, native_handle fd, bool peer, void* address, std::uint32_t& length);
  std::error_code (*set_option)(void* backend, native_handle fd, int level, int option, const void* value,
                                std::uint32_t length);
  /// Write what fits now, without waiting (stream sockets when `socket`, else write(2)).
  std::error_code (*try_write)(void* backend, native_handle fd, const io_buffer* buffers, std::uint32_t count,
                               bool socket, std::size_t& written);
  /// Accept-and-close every pending connection of a listener that hit its
  /// descriptor limit, using `reserve` (a spare descriptor, reopened after).
  void (*shed)(void* backend, native_handle listener, native_handle& reserve);
  /// A spare descriptor for shed() (invalid_handle where the backend needs none).
  native_handle (*open_reserve)(void* backend);
  /// Make a descriptor the user hands over non-blocking.
  std::error_code (*adopt)(void* backend, native_handle fd);
};

/// A backend's socket table with the backend it acts on.
struct socket_calls {
  const socket_api* api;
  void* backend;

  std::error_code open(int family, int type, int protocol, native_handle& out) const {
    return api->open(backend, family, type, protocol, out);
  }
  std::error_code bind(native_handle fd, const void* address, std::uint32_t length) const {
    return api->bind(backend, fd, address, length);
  }
  std::error_code listen(native_handle fd, int backlog) const { return api->listen(backend, fd, backlog); }
  std::error_code name(native_handle fd, bool peer, void* address, std::uint32_t& length) const {
    return api->name(backend, fd, peer, address, length);
  }
  std::error_code set_option(native_handle fd, int level, int option, const void* value, std::uint32_t length) const {
    return api->set_option(backend, fd, level, option, value, length);
  }
  template <class T>
  std::error_code set_option(native_handle fd, int level, int option, const T& value) const {
    return api->set_option(backend, fd, level, option, &value, static_cast<std::uint32_t>(sizeof value));
  }
  std::error_code try_write(native_handle fd, const io_buffer* buffers, std::uint32_t count, bool socket,
                            std::size_t& written) const {
    return api->try_write(backend, fd, buffers, count, socket, written);
  }
  void shed(native_handle listener, native_handle& reserve) const { api->shed(backend, listener, reserve); }
  native_handle open_reserve() const { return api->open_reserve(backend); }
  std::error_code adopt(native_handle fd) const { return api->adopt(backend, fd); }
};

}  // namespace phaseloop::detail
