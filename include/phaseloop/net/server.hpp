#pragma once
// net::server: a listening TCP or Unix domain socket (Node's net.Server).
// Like a socket it lives until closed and net::server is a reference to it.
//
//   auto server = net::create_server(loop, [](net::socket s) { ... });
//   server.listen(net::address::loopback_ipv4(8080));   // or net::address::unix_path(path)
//   server.local_address();                            // the bound address (port 0: the one chosen)
//   server.close([] { /* every accepted connection has closed */ });
//
// When accept runs out of descriptors (EMFILE, ENFILE) the server neither
// spins nor stops: it frees a spare descriptor, accepts and closes what is
// pending, takes the spare back and goes on serving once descriptors free
// up (libuv's way). Accepted sockets start reading once the connection
// handler has returned.

#include <phaseloop/net/address.hpp>
#include <phaseloop/net/stream.hpp>
#include <phaseloop/promise.hpp>

#include <cstddef>
#include <deque>
#include <string>
#include <system_error>
#include <utility>

#if !defined(_WIN32)
#include <sys/socket.h>
#include <unistd.h>
#endif

namespace phaseloop {

namespace detail {

struct server_record : handle_record {
  stream_kind kind = stream_kind::tcp;
  native_handle fd = invalid_handle;
  native_handle reserve = invalid_handle;
  operation accept_op;
  net::address peer;
  std::string unlink_path;  // a Unix socket's file, removed at close
  std::size_t connections = 0;
  std::size_t max_queued = 128;  // accepted, waiting for accept() (no connection handler)
  bool listening = false;
  bool close_requested = false;
  unique_function<void(net::socket)> on_connection;
  unique_function<void(std::error_code)> on_error;
  callback on_closed;
  std::deque<net::socket> queued;          // for accept()
  std::deque<resolver<net::socket>> waiting;  // accept() calls waiting for a connection

  ~server_record() {
    if (loop == nullptr) return;
    if (fd != invalid_handle) (void)loop->close_descriptor(fd);
    if (reserve != invalid_handle) (void)loop->close_descriptor(reserve);
  }
};

struct server_ops {
  static server_record& make(loop_core& loop) {
    auto& r = loop.make_record<server_record>();
    r.stop = &stop;
    r.finish = &finish;
    r.accept_op.kind = op_kind::accept;
    r.accept_op.user = &r;
    r.accept_op.owner = &r;
    r.accept_op.complete = &accepted;
    return r;
  }

  static std::error_code listen(server_record& r, const net::address& where, int backlog, bool reuse_address,
                                bool reuse_port, bool ipv6_only) {
    if (r.listening || r.close_requested) return std::make_error_code(std::errc::already_connected);
    if (where.empty()) return std::make_error_code(std::errc::invalid_argument);
    auto sockets = r.loop->sockets();
    native_handle fd = invalid_handle;
    if (std::error_code ec = sockets.open(where.native_family(), SOCK_STREAM, 0, fd)) return ec;
    auto fail = [&](std::error_code ec) {
      (void)r.loop->close_descriptor(fd);
      return ec;
    };
    if (where.is_ip()) {
      if (reuse_address)
        if (std::error_code ec = sockets.set_option(fd, SOL_SOCKET, SO_REUSEADDR, 1)) return fail(ec);
#if defined(SO_REUSEPORT)
      if (reuse_port)
        if (std::error_code ec = sockets.set_option(fd, SOL_SOCKET, SO_REUSEPORT, 1)) return fail(ec);
#else
      if (reuse_port) return fail(std::make_error_code(std::errc::operation_not_supported));
#endif
#if defined(IPV6_V6ONLY)
      if (where.family() == net::address_family::ipv6)
        if (std::error_code ec = sockets.set_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, ipv6_only ? 1 : 0)) return fail(ec);
#else
      (void)ipv6_only;
#endif
    }
    if (std::error_code ec = sockets.bind(fd, where.data(), where.size())) return fail(ec);
    if (std::error_code ec = sockets.listen(fd, backlog)) return fail(ec);
    r.fd = fd;
    r.kind = where.is_ip() ? stream_kind::tcp : stream_kind::local;
    if (!where.is_ip() && !where.is_abstract()) r.unlink_path = where.path();
    r.accept_op.fd = fd;
    r.reserve = sockets.open_reserve();
    r.listening = true;
    r.loop->activate(r);
    accept_next(r);
    return {};
  }

  static void accept_next(server_record& r) {
    if (!r.listening || r.close_requested) return;
    r.accept_op.address = r.peer.data();
    r.accept_op.address_length = net::address::capacity();
    if (std::error_code ec = r.loop->submit(r.accept_op)) report(r, ec);
  }

  static void report(server_record& r, std::error_code ec) {
    if (r.on_error) r.loop->invoke(r.on_error, ec);
  }

  static void accepted(operation& op) {
    auto& r = *static_cast<server_record*>(op.user);
    if (!r.listening || r.close_requested || op.error == std::errc::operation_canceled) return;
    const record_ref<server_record> ref(r);
    if (op.error) {
      if (op.error == std::errc::too_many_files_open || op.error == std::errc::too_many_files_open_in_system) {
        r.loop->sockets().shed(r.fd, r.reserve);  // drop what is pending; serve again once descriptors free up
      } else {
        report(r, op.error);
        if (ref.get() == nullptr) return;
      }
      if (!op.more()) accept_next(r);
      return;
    }
    auto& s = stream_ops::make(*r.loop, r.kind, op.accepted);
    s.connected = true;
    s.server = &r;
    s.on_released = &released;
    ++r.connections;
    r.loop->activate(s);
    net::socket sock(s);
    if (r.on_connection) {
      // Moved out while it runs: a handler that replaces itself stays alive.
      auto fn = std::move(r.on_connection);
      r.loop->invoke(fn, sock);
      if (server_record* live = ref.get(); live != nullptr && !live->on_connection) live->on_connection = std::move(fn);
    } else if (!r.waiting.empty()) {
      s.reading = false;  // an awaited socket starts paused: read() or resume() starts it
      resolver<net::socket> w = std::move(r.waiting.front());
      r.waiting.pop_front();
      w.resolve(sock);
    } else if (r.queued.size() < r.max_queued) {
      s.reading = false;  // held until accept() takes it, paused
      r.queued.push_back(sock);
    } else {
      sock.destroy();  // nobody takes connections: refuse the excess
    }
    if (auto* rec = sock.record()) stream_ops::maybe_read(*rec);
    if (ref.get() != nullptr && !op.more()) accept_next(r);
  }

  // A connection the server accepted has closed.
  static void released(handle_record& base) {
    auto& r = static_cast<server_record&>(base);
    --r.connections;
    if (r.close_requested && r.connections == 0) r.loop->close_handle(r, {});
  }

  /// Stop accepting; the close callback runs once every connection has closed.
  static void close(server_record& r, callback cb) {
    if (r.close_requested) return;
    r.close_requested = true;
    r.on_closed = std::move(cb);
    stop_listening(r);
    if (r.connections == 0) r.loop->close_handle(r, {});
  }

  static void stop_listening(server_record& r) {
    r.listening = false;
    r.loop->deactivate(r);
    r.loop->cancel(r.accept_op);
    if (r.fd != invalid_handle) (void)r.loop->close_descriptor(std::exchange(r.fd, invalid_handle));
    if (r.reserve != invalid_handle) (void)r.loop->close_descriptor(std::exchange(r.reserve, invalid_handle));
#if !defined(_WIN32)
    if (!r.unlink_path.empty()) ::unlink(r.unlink_path.c_str());
#endif
    r.unlink_path.clear();
    while (!r.queued.empty()) {  // accepted and never taken
      r.queued.front().destroy();
      r.queued.pop_front();
    }
  }

  static void stop(handle_record& base) { stop_listening(static_cast<server_record&>(base)); }

  static void finish(handle_record& base) {
    auto& r = static_cast<server_record&>(base);
    const std::error_code closed = std::make_error_code(std::errc::operation_canceled);
    while (!r.waiting.empty()) {
      resolver<net::socket> w = std::move(r.waiting.front());
      r.waiting.pop_front();
      w.reject(closed);
    }
    if (r.on_closed) {
      auto fn = std::move(r.on_closed);
      r.loop->invoke(fn);
    }
  }
};

}  // namespace detail

namespace net {

/// listen()'s options.
struct listen_options {
  int backlog = 511;           ///< Node's default
  bool reuse_address = true;   ///< SO_REUSEADDR (TCP)
  bool reuse_port = false;     ///< SO_REUSEPORT: several sockets (loops, threads) share one port
  bool ipv6_only = false;      ///< IPV6_V6ONLY: an IPv6 wildcard address takes no IPv4 connections
};

/// A listening socket: a reference to a server the loop owns until closed.
class server {
 public:
  server() noexcept = default;
  /// A server on `loop` (not listening yet).
  explicit server(loop_core& loop) : ref_(detail::server_ops::make(loop)), loop_(&loop) {}

  explicit operator bool() const noexcept { return ref_.get() != nullptr; }
  friend bool operator==(const server& a, const server& b) noexcept { return a.ref_ == b.ref_; }

  /// Each accepted connection (Node's 'connection').
  server& on_connection(detail::unique_function<void(socket)> cb) {
    if (auto* r = ref_.get()) r->on_connection = std::move(cb);
    return *this;
  }
  /// Errors accepting connections (the server goes on listening).
  server& on_error(detail::unique_function<void(std::error_code)> cb) {
    if (auto* r = ref_.get()) r->on_error = std::move(cb);
    return *this;
  }

  /// Bind and listen: an IP address (port 0 picks a free one) or a Unix
  /// socket path. Errors: address_in_use, permission_denied, ...
  std::error_code listen(const address& where, listen_options options = {}) {
    auto* r = ref_.get();
    if (r == nullptr) return std::make_error_code(std::errc::bad_file_descriptor);
    return detail::server_ops::listen(*r, where, options.backlog, options.reuse_address, options.reuse_port,
                                      options.ipv6_only);
  }
  /// Listen on host (numeric IP) and port; host "" is every IPv4 interface.
  std::error_code listen(std::uint16_t port, std::string_view host = "", listen_options options = {}) {
    address a;
    if (std::error_code ec = address::parse_ip(host.empty() ? "0.0.0.0" : host, port, a)) return ec;
    return listen(a, options);
  }

  /// The address it listens on (empty when not listening).
  [[nodiscard]] address local_address() const {
    auto* r = ref_.get();
    address a;
    if (r == nullptr || r->fd == invalid_handle) return a;
    std::uint32_t length = address::capacity();
    if (r->loop->sockets().name(r->fd, false, a.data(), length)) return address{};
    a.set_size(length);
    return a;
  }
  [[nodiscard]] bool listening() const noexcept {
    auto* r = ref_.get();
    return r != nullptr && r->listening;
  }
  /// Connections accepted and not yet closed.
  [[nodiscard]] std::size_t connections() const noexcept {
    auto* r = ref_.get();
    return r != nullptr ? r->connections : 0;
  }

  /// Stop accepting (Node's server.close): `cb` runs once every accepted
  /// connection has closed.
  void close(callback cb = {}) {
    if (auto* r = ref_.get()) detail::server_ops::close(*r, std::move(cb));
  }

  /// The next connection, for code that awaits connections instead of
  /// handling each in on_connection (`co_await server.accept()`); rejects
  /// with operation_canceled when the server closes first. The socket
  /// starts paused: resume() starts reading.
  promise<socket> accept() {
    auto* r = ref_.get();
    PHASELOOP_ASSERT(loop_ != nullptr, "accept() on an empty server");
    auto [p, resolve] = make_promise<socket>(*loop_);
    if (r == nullptr || r->close_requested) {
      resolve.reject(std::make_error_code(std::errc::operation_canceled));
    } else if (!r->queued.empty()) {
      socket s = r->queued.front();
      r->queued.pop_front();
      resolve.resolve(s);
    } else {
      r->waiting.push_back(resolve);
    }
    return p;
  }

  server& ref() {
    if (auto* r = ref_.get()) r->loop->set_handle_ref(*r, true);
    return *this;
  }
  server& unref() {
    if (auto* r = ref_.get()) r->loop->set_handle_ref(*r, false);
    return *this;
  }
  [[nodiscard]] native_handle native() const noexcept {
    auto* r = ref_.get();
    return r != nullptr ? r->fd : invalid_handle;
  }

 private:
  record_ref<detail::server_record> ref_;
  loop_core* loop_ = nullptr;
};

/// A server on `loop` calling `on_connection` for each connection (Node's net.createServer).
inline server create_server(loop_core& loop, detail::unique_function<void(socket)> on_connection = {}) {
  server s(loop);
  if (on_connection) s.on_connection(std::move(on_connection));
  return s;
}

}  // namespace net
}  // namespace phaseloop
