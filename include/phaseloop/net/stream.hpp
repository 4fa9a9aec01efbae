#pragma once
// net::socket: one stream implementation for TCP, Unix domain sockets, pipes
// and child-process stdio, with Node's events and lifetime.
//
// A socket lives until it is closed (destroy(), end() and the peer's end,
// an error), as in Node: the loop owns it, and net::socket is a small
// copyable reference to it. A reference to a closed socket stays safe: its
// calls do nothing and writes fail with write_after_end. References must
// not outlive the loop.
//
// Events (one handler each; setting one replaces it):
//   on_connect()            connected (client sockets)
//   on_data(bytes)          a chunk read; the bytes are valid during the call
//   on_end()                the peer ended its side (EOF); unless
//                           allow_half_open(true), the socket then ends its own
//   on_finish()             every write went and the sending side was shut down
//   on_drain()              the write queue emptied after write() returned false
//   on_timeout()            idle for the set_timeout() time (nothing closes)
//   on_error(ec)            an error; 'close' follows with had_error = true
//   on_close(had_error)     closed, in the close phase, after every pending
//                           write's callback (operation_canceled)
//
// Writes are queued and never lost or reordered; queued writes go out in one
// gather write. write() returns whether the queued bytes are under the
// high-water mark (16 KiB, Node's); copying writes own a copy of the bytes,
// write_borrowed() writes caller memory that must stay untouched until its
// callback. Reads go into a 64 KiB buffer from a per-loop pool (or the
// backend's provided buffers on io_uring), so no read allocates.

#include <phaseloop/detail/read_buffers.hpp>
#include <phaseloop/error.hpp>
#include <phaseloop/handle.hpp>
#include <phaseloop/loop_core.hpp>
#include <phaseloop/net/address.hpp>
#include <phaseloop/operation.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#if !defined(_WIN32)
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

namespace phaseloop {

namespace detail {

/// A queued write: the bytes (borrowed, or a copy it owns) and its callback.
struct write_request : pool_slot {
  write_request* next = nullptr;
  const std::byte* data = nullptr;
  std::size_t size = 0;
  std::vector<std::byte> copy;  // the owned bytes; its capacity is kept for the next write
  unique_function<void(std::error_code)> cb;
};

/// Per loop: pooled write requests (read buffers come from read_buffers).
struct stream_service {
  static constexpr std::size_t kept_copy_capacity = 64 * 1024;  // larger copies are not kept

  explicit stream_service(loop_core&) {}

  write_request& take_request() {
    write_request& r = requests[requests.acquire()];
    r.next = nullptr;
    return r;
  }
  void give_request(write_request& r) noexcept {
    r.cb = nullptr;
    r.data = nullptr;
    r.size = 0;
    if (r.copy.capacity() > kept_copy_capacity) std::vector<std::byte>().swap(r.copy);
    r.copy.clear();
    requests.release(r.slot_index());
  }

  slot_pool<write_request, 256> requests;
};

enum class stream_kind : std::uint8_t { tcp, local, pipe };

struct stream_record : handle_record {
  stream_kind kind = stream_kind::tcp;
  native_handle fd = invalid_handle;
  operation read_op;
  operation write_op;
  operation connect_op;
  operation shutdown_op;
  io_buffer read_buffer{};
  std::vector<io_buffer> iov;  // the gather write in flight
  write_request* batch_head = nullptr;  // in flight
  write_request* batch_tail = nullptr;
  write_request* queue_head = nullptr;  // waiting
  write_request* queue_tail = nullptr;
  std::size_t batch_bytes = 0;
  std::size_t buffered = 0;  // bytes accepted by write() and not yet written
  std::size_t high_water = 16 * 1024;
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_written = 0;
  net::address remote;                    // what connect aims at
  std::vector<net::address> candidates;   // connect by name: the addresses still to try
  std::vector<std::byte> held;            // read while paused (a completion backend's late read)
  timer_id connect_timer{};
  timer_id idle_timer{};
  std::chrono::milliseconds idle_after{0};
  handle_record* server = nullptr;                       // the server that accepted it
  void (*on_released)(handle_record& server) = nullptr;  // tells that server it is gone
  // state
  bool connecting = false;
  bool connected = false;
  bool reading = true;  // flowing (not paused)
  bool read_ended = false;
  bool end_called = false;
  bool write_ended = false;
  bool destroyed = false;
  bool had_error = false;
  bool need_drain = false;
  bool allow_half_open = false;
  bool is_socket = true;
  bool no_delay_on_connect = false;  // connect_options::no_delay, applied once connected
  // events
  callback on_connect;
  unique_function<void(std::span<const std::byte>)> on_data;
  callback on_end;
  callback on_finish;
  callback on_drain;
  callback on_timeout;
  unique_function<void(std::error_code)> on_error;
  unique_function<void(bool)> on_close;

  stream_record() = default;
  ~stream_record() {
    // Only in the loop's teardown can requests be left: drop them unrun.
    if (loop == nullptr) return;
    auto& service = loop->service<stream_service>();
    for (write_request* r : {batch_head, queue_head})
      while (r != nullptr) service.give_request(*std::exchange(r, r->next));
    loop->service<read_buffers>().give(static_cast<std::byte*>(read_buffer.data));
    if (fd != invalid_handle) (void)loop->close_descriptor(fd);
  }
};

/// The stream logic, shared by every kind of stream socket.
struct stream_ops {
  static stream_record& make(loop_core& loop, stream_kind kind, native_handle fd) {
    auto& r = loop.make_record<stream_record>();
    r.kind = kind;
    r.fd = fd;
    r.is_socket = kind != stream_kind::pipe;
    r.stop = &stop;
    r.finish = &finish;
    for (operation* op : {&r.read_op, &r.write_op, &r.connect_op, &r.shutdown_op}) {
      op->fd = fd;
      op->user = &r;
      op->owner = &r;
    }
    r.read_op.kind = r.is_socket ? op_kind::recv : op_kind::read;
    r.read_op.complete = &read_done;
    r.read_op.flags = op_flag::multishot | op_flag::select_buffer;
    r.write_op.kind = r.is_socket ? op_kind::send : op_kind::write;
    r.write_op.complete = &write_done;
    r.connect_op.kind = op_kind::connect;
    r.connect_op.complete = &connect_done;
    r.shutdown_op.kind = op_kind::shutdown;
#if defined(SHUT_WR)
    r.shutdown_op.msg_flags = SHUT_WR;
#else
    r.shutdown_op.msg_flags = 1;  // SD_SEND
#endif
    r.shutdown_op.complete = &shutdown_done;
    return r;
  }

  static void set_fd(stream_record& r, native_handle fd) noexcept {
    r.fd = fd;
    for (operation* op : {&r.read_op, &r.write_op, &r.connect_op, &r.shutdown_op}) op->fd = fd;
  }

  // ------------------------------------------------------------- reading

  static void maybe_read(stream_record& r) {
    if (!r.connected || r.destroyed || r.read_ended || !r.reading) return;
    if (r.read_op.in_flight() || r.read_op.linked) return;
    if (r.read_buffer.data == nullptr) {
      r.read_buffer.data = r.loop->service<read_buffers>().take();
      r.read_buffer.size = read_buffers::size;
    }
    r.read_op.buffers = &r.read_buffer;
    r.read_op.buffer_count = 1;
    if (std::error_code ec = r.loop->submit(r.read_op)) fail(r, ec);
  }

  static void pause(stream_record& r) {
    r.reading = false;
    r.loop->cancel(r.read_op);  // what it read before the cancel took hold is held for resume
  }

  static void resume(stream_record& r) {
    if (r.reading || r.destroyed) return;
    r.reading = true;
    if (!r.held.empty()) {
      // Delivered from the pending phase, as any result known at once.
      r.loop->defer([ref = record_ref<stream_record>(r)] {
        stream_record* s = ref.get();
        if (s == nullptr || s->destroyed || !s->reading || s->held.empty()) return;
        std::vector<std::byte> data = std::move(s->held);
        s->held.clear();
        emit_data(*s, data.data(), data.size());
        if ((s = ref.get()) != nullptr) maybe_read(*s);
      });
      return;
    }
    maybe_read(r);
  }

  // Runs an event handler moved out of its slot, so a handler that replaces
  // itself (s.on_data(other) from inside on_data) does not destroy the
  // callable that is running; it goes back unless a new one was set meanwhile.
  template <class Slot, class... Args>
  static void emit(stream_record& r, Slot stream_record::*slot, Args&&... args) {
    if (!(r.*slot)) return;
    const record_ref<stream_record> ref(r);
    Slot fn = std::move(r.*slot);
    r.loop->invoke(fn, std::forward<Args>(args)...);
    if (stream_record* s = ref.get(); s != nullptr && !(s->*slot)) s->*slot = std::move(fn);
  }

  static void emit_data(stream_record& r, const std::byte* data, std::size_t n) {
    r.bytes_read += n;
    touch(r);
    emit(r, &stream_record::on_data, std::span<const std::byte>(data, n));
  }

  static void read_done(operation& op) {
    auto& r = *static_cast<stream_record*>(op.user);
    if (op.error == std::errc::operation_canceled) {
      if (!r.destroyed) maybe_read(r);  // paused and resumed before the cancellation came back
      return;
    }
    if (r.destroyed) return;
    if (op.error) {
      fail(r, op.error);
      return;
    }
    if (op.transferred == 0) {
      if (op.more()) return;
      on_eof(r);
      return;
    }
    const auto* data = static_cast<const std::byte*>(op.received != nullptr ? op.received : r.read_buffer.data);
    if (!r.reading) {  // paused meanwhile: keep it for resume
      r.held.insert(r.held.end(), data, data + op.transferred);
      return;
    }
    const record_ref<stream_record> ref(r);
    emit_data(r, data, op.transferred);
    if (ref.get() == nullptr) return;
    if (!op.more()) maybe_read(r);
  }

  static void on_eof(stream_record& r) {
    r.read_ended = true;
    const record_ref<stream_record> ref(r);
    emit(r, &stream_record::on_end);
    if (ref.get() == nullptr || r.destroyed) return;
    if (!r.allow_half_open) end(r);
    maybe_close(r);
  }

  // ------------------------------------------------------------- writing

  /// Queue bytes; `copy` says whether the request owns a copy of them.
  static bool write(stream_record& r, const std::byte* data, std::size_t n, bool copy,
                    unique_function<void(std::error_code)> cb) {
    if (r.destroyed || r.end_called) {
      const std::error_code ec = make_error_code(errc::write_after_end);
      if (cb) r.loop->next_tick([cb = std::move(cb), ec]() mutable { cb(ec); });  // Node: in a tick
      return false;
    }
    write_request& q = r.loop->service<stream_service>().take_request();
    if (copy) {
      try {
        q.copy.assign(data, data + n);
      } catch (...) {
        r.loop->service<stream_service>().give_request(q);
        throw;
      }
      q.data = q.copy.data();
    } else {
      q.data = data;
    }
    q.size = n;
    q.cb = std::move(cb);
    (r.queue_tail != nullptr ? r.queue_tail->next : r.queue_head) = &q;
    r.queue_tail = &q;
    r.buffered += n;
    flush(r);
    const bool below = r.buffered < r.high_water;
    if (!below) r.need_drain = true;
    return below;
  }

  /// Start the next gather write with everything queued, if none is in flight.
  static void flush(stream_record& r) {
    if (!r.connected || r.destroyed || r.write_op.in_flight() || r.write_op.linked || r.batch_head != nullptr)
      return;
    if (r.queue_head == nullptr) return;
    r.iov.clear();
    std::size_t bytes = 0;
    write_request* last = nullptr;
    for (write_request* q = r.queue_head; q != nullptr && r.iov.size() < 1024; q = q->next) {
      if (q->size != 0) r.iov.push_back(io_buffer{const_cast<std::byte*>(q->data), q->size});
      bytes += q->size;
      last = q;
    }
    r.batch_head = r.queue_head;
    r.batch_tail = last;
    r.queue_head = last->next;
    if (r.queue_head == nullptr) r.queue_tail = nullptr;
    last->next = nullptr;
    r.batch_bytes = bytes;
    if (r.iov.empty()) {  // only empty writes: they complete as written, from the pending phase
      r.loop->defer([ref = record_ref<stream_record>(r)] {
        if (stream_record* s = ref.get()) batch_done(*s, {});
      });
      return;
    }
    r.write_op.buffers = r.iov.data();
    r.write_op.buffer_count = static_cast<std::uint32_t>(r.iov.size());
    if (std::error_code ec = r.loop->submit(r.write_op)) {
      r.loop->defer([ref = record_ref<stream_record>(r), ec] {
        if (stream_record* s = ref.get()) {
          batch_done(*s, ec);
          if ((s = ref.get()) != nullptr) fail(*s, ec);
        }
      });
    }
  }

  static void write_done(operation& op) {
    auto& r = *static_cast<stream_record*>(op.user);
    const record_ref<stream_record> ref(r);
    batch_done(r, op.error);
    if (ref.get() == nullptr) return;
    if (op.error && op.error != std::errc::operation_canceled) fail(r, op.error);
  }

  // The batch in flight is done: run its callbacks in order, then go on.
  static void batch_done(stream_record& r, std::error_code ec) {
    write_request* q = std::exchange(r.batch_head, nullptr);
    r.batch_tail = nullptr;
    r.buffered -= r.batch_bytes;
    if (!ec) {
      r.bytes_written += r.batch_bytes;
      touch(r);
    }
    r.batch_bytes = 0;
    auto& service = r.loop->service<stream_service>();
    const record_ref<stream_record> ref(r);
    while (q != nullptr) {
      write_request& done = *std::exchange(q, q->next);
      auto cb = std::move(done.cb);
      service.give_request(done);
      if (cb) {
        struct rest {  // an exception leaves: what did not run still runs, later
          loop_core& loop;
          write_request*& q;
          std::error_code ec;
          ~rest() {
            if (q == nullptr) return;
            auto& service = loop.service<stream_service>();
            while (q != nullptr) {
              write_request& left = *std::exchange(q, q->next);
              auto fn = std::move(left.cb);
              service.give_request(left);
              if (fn) loop.defer([fn = std::move(fn), e = ec]() mutable { fn(e); });
            }
          }
        } guard{*r.loop, q, ec};
        r.loop->invoke(cb, ec);
      }
    }
    stream_record* s = ref.get();
    if (s == nullptr || s->destroyed) return;
    if (s->queue_head != nullptr) {
      flush(*s);
      return;
    }
    if (s->need_drain) {
      s->need_drain = false;
      emit(*s, &stream_record::on_drain);
      if ((s = ref.get()) == nullptr || s->destroyed || s->queue_head != nullptr || s->batch_head != nullptr)
        return;
    }
    if (s->end_called && !s->write_ended) start_shutdown(*s);
  }

  // ---------------------------------------------------------- ending, closing

  /// Half-close after the queued writes (Node's end()).
  static void end(stream_record& r) {
    if (r.end_called || r.destroyed) return;
    r.end_called = true;
    if (r.connected && r.batch_head == nullptr && r.queue_head == nullptr) start_shutdown(r);
  }

  static void start_shutdown(stream_record& r) {
    if (r.write_ended || r.shutdown_op.in_flight() || r.shutdown_op.linked) return;
    if (!r.is_socket) {  // a pipe cannot half-close: ending it is closing it
      r.loop->defer([ref = record_ref<stream_record>(r)] {
        if (stream_record* s = ref.get()) shutdown_finished(*s, {});
      });
      return;
    }
    if (std::error_code ec = r.loop->submit(r.shutdown_op)) shutdown_finished(r, ec);
  }

  static void shutdown_done(operation& op) {
    auto& r = *static_cast<stream_record*>(op.user);
    if (r.destroyed) return;
    shutdown_finished(r, op.error == std::errc::not_connected ? std::error_code{} : op.error);
  }

  static void shutdown_finished(stream_record& r, std::error_code ec) {
    if (r.destroyed) return;
    if (ec) {
      fail(r, ec);
      return;
    }
    r.write_ended = true;
    const record_ref<stream_record> ref(r);
    emit(r, &stream_record::on_finish);
    if (ref.get() == nullptr || r.destroyed) return;
    if (!r.is_socket) {
      destroy(r, {});
      return;
    }
    maybe_close(r);
  }

  static void maybe_close(stream_record& r) {
    if (r.read_ended && r.write_ended) destroy(r, {});
  }

  /// An error: emitted in a tick (as Node does), then the socket closes.
  static void fail(stream_record& r, std::error_code ec) { destroy(r, ec); }

  /// Close now (Node's destroy()): cancel what runs, close the descriptor,
  /// 'error' (if ec) in a tick, 'close' in the close phase.
  static void destroy(stream_record& r, std::error_code ec) {
    if (r.destroyed) return;
    r.destroyed = true;
    r.had_error = static_cast<bool>(ec);
    if (ec) {
      r.loop->next_tick([ref = record_ref<stream_record>(r), ec] {
        stream_record* s = ref.get();
        if (s != nullptr) emit(*s, &stream_record::on_error, ec);
      });
    }
    r.loop->close_handle(r, {});
  }

  // The loop's close protocol: stop everything the stream started.
  static void stop(handle_record& base) {
    auto& r = static_cast<stream_record&>(base);
    r.destroyed = true;
    loop_core& loop = *r.loop;
    if (r.connect_timer.generation != 0) loop.clear_timer(std::exchange(r.connect_timer, {}));
    if (r.idle_timer.generation != 0) loop.clear_timer(std::exchange(r.idle_timer, {}));
    for (operation* op : {&r.read_op, &r.write_op, &r.connect_op, &r.shutdown_op}) loop.cancel(*op);
    if (r.fd != invalid_handle) (void)loop.close_descriptor(std::exchange(r.fd, invalid_handle));
  }

  // The close phase: every operation is back. Pending writes fail with
  // operation_canceled, then 'close'.
  static void finish(handle_record& base) {
    auto& r = static_cast<stream_record&>(base);
    const std::error_code cancelled = std::make_error_code(std::errc::operation_canceled);
    if (r.batch_head != nullptr) batch_done_closed(r, r.batch_head, cancelled);
    r.batch_head = r.batch_tail = nullptr;
    if (r.queue_head != nullptr) batch_done_closed(r, r.queue_head, cancelled);
    r.queue_head = r.queue_tail = nullptr;
    if (r.server != nullptr && r.on_released != nullptr) r.on_released(*std::exchange(r.server, nullptr));
    if (r.on_close) {
      auto fn = std::move(r.on_close);
      r.loop->invoke(fn, r.had_error);
    }
  }

  static void batch_done_closed(stream_record& r, write_request*& head, std::error_code ec) {
    auto& service = r.loop->service<stream_service>();
    while (head != nullptr) {
      write_request& q = *std::exchange(head, head->next);
      auto cb = std::move(q.cb);
      service.give_request(q);
      if (cb) r.loop->invoke(cb, ec);
    }
  }

  // ---------------------------------------------------------- connecting

  static void start_connect(stream_record& r) {
    r.connecting = true;
    r.connect_op.address = r.remote.data();
    r.connect_op.address_length = r.remote.size();
    if (std::error_code ec = r.loop->submit(r.connect_op)) {
      r.loop->defer([ref = record_ref<stream_record>(r), ec] {
        if (stream_record* s = ref.get()) connect_failed(*s, ec);
      });
    }
  }

  static void connect_done(operation& op) {
    auto& r = *static_cast<stream_record*>(op.user);
    if (r.destroyed) return;
    if (op.error) {
      connect_failed(r, op.error);
      return;
    }
    connected(r);
  }

  /// Open a socket for the next candidate address and connect it.
  static void connect_next(stream_record& r) {
    if (r.destroyed) return;
    if (r.candidates.empty()) {
      fail(r, std::make_error_code(std::errc::host_unreachable));
      return;
    }
    r.remote = r.candidates.front();
    r.candidates.erase(r.candidates.begin());
    native_handle fd = invalid_handle;
    if (std::error_code ec = r.loop->sockets().open(r.remote.native_family(), SOCK_STREAM, 0, fd)) {
      connect_failed(r, ec);
      return;
    }
    set_fd(r, fd);
    start_connect(r);
  }

  static void connect_failed(stream_record& r, std::error_code ec) {
    if (r.destroyed) return;
    if (r.fd != invalid_handle) (void)r.loop->close_descriptor(std::exchange(r.fd, invalid_handle));
    set_fd(r, invalid_handle);
    if (!r.candidates.empty()) {  // try the next address, as Node does
      connect_next(r);
      return;
    }
    r.connecting = false;
    fail(r, ec);
  }

  static void connected(stream_record& r) {
    r.connecting = false;
    r.connected = true;
    if (r.connect_timer.generation != 0) r.loop->clear_timer(std::exchange(r.connect_timer, {}));
#if defined(TCP_NODELAY)
    if (r.no_delay_on_connect) (void)r.loop->sockets().set_option(r.fd, IPPROTO_TCP, TCP_NODELAY, 1);
#endif
    const record_ref<stream_record> ref(r);
    emit(r, &stream_record::on_connect);
    if (ref.get() == nullptr || r.destroyed) return;
    touch(r);
    flush(r);
    if (r.end_called && r.batch_head == nullptr && r.queue_head == nullptr) start_shutdown(r);
    maybe_read(r);
  }

  // ----------------------------------------------------------- idle timeout

  static void touch(stream_record& r) {
    if (r.idle_timer.generation != 0) r.loop->refresh_timer(r.idle_timer);
  }

  static void set_timeout(stream_record& r, std::chrono::milliseconds after) {
    if (r.idle_timer.generation != 0) r.loop->clear_timer(std::exchange(r.idle_timer, {}));
    r.idle_after = after;
    if (after <= std::chrono::milliseconds::zero() || r.destroyed) return;
    r.idle_timer = r.loop->set_timer(
        [ref = record_ref<stream_record>(r)] {
          stream_record* s = ref.get();
          if (s == nullptr || s->destroyed) return;
          emit(*s, &stream_record::on_timeout);
        },
        after, true);
    r.loop->set_timer_ref(r.idle_timer, false);  // a timeout alone does not keep the loop alive
  }
};

}  // namespace detail

namespace net {

/// How a write completes: cb(std::error_code).
using write_callback = detail::unique_function<void(std::error_code)>;

/// A stream socket (TCP, Unix domain, pipe): a reference to a socket the
/// loop owns until it closes.
class socket {
 public:
  socket() noexcept = default;
  /// Whether the socket is open (not destroyed or closed).
  explicit operator bool() const noexcept {
    auto* r = ref_.get();
    return r != nullptr && !r->destroyed;
  }
  friend bool operator==(const socket& a, const socket& b) noexcept { return a.ref_ == b.ref_; }

  // --- events
  socket& on_connect(callback cb) { return set(&detail::stream_record::on_connect, std::move(cb)); }
  socket& on_data(detail::unique_function<void(std::span<const std::byte>)> cb) {
    return set(&detail::stream_record::on_data, std::move(cb));
  }
  socket& on_end(callback cb) { return set(&detail::stream_record::on_end, std::move(cb)); }
  socket& on_finish(callback cb) { return set(&detail::stream_record::on_finish, std::move(cb)); }
  socket& on_drain(callback cb) { return set(&detail::stream_record::on_drain, std::move(cb)); }
  socket& on_timeout(callback cb) { return set(&detail::stream_record::on_timeout, std::move(cb)); }
  socket& on_error(detail::unique_function<void(std::error_code)> cb) {
    return set(&detail::stream_record::on_error, std::move(cb));
  }
  socket& on_close(detail::unique_function<void(bool had_error)> cb) {
    return set(&detail::stream_record::on_close, std::move(cb));
  }

  // --- writing
  /// Queue a copy of `data`; cb(ec) once it was written (or failed: a write
  /// after end() or destroy() gets write_after_end, one pending at close
  /// operation_canceled). Returns whether the queue is under its high-water mark.
  bool write(std::span<const std::byte> data, write_callback cb = {}) {
    auto* r = ref_.get();
    if (r == nullptr) return fail_closed(std::move(cb));
    return detail::stream_ops::write(*r, data.data(), data.size(), true, std::move(cb));
  }
  bool write(std::string_view text, write_callback cb = {}) {
    return write(std::as_bytes(std::span<const char>(text.data(), text.size())), std::move(cb));
  }
  /// Queue `data` without copying it: the memory must stay valid and
  /// untouched until cb runs.
  bool write_borrowed(std::span<const std::byte> data, write_callback cb = {}) {
    auto* r = ref_.get();
    if (r == nullptr) return fail_closed(std::move(cb));
    return detail::stream_ops::write(*r, data.data(), data.size(), false, std::move(cb));
  }
  /// Write what fits now, without queueing: the bytes written, or an error
  /// (resource_unavailable_try_again when nothing fits; not_connected when
  /// writes are queued, which would be overtaken).
  std::size_t try_write(std::span<const std::byte> data, std::error_code& ec) {
    ec = {};
    auto* r = ref_.get();
    if (r == nullptr || r->destroyed || r->end_called) {
      ec = make_error_code(errc::write_after_end);
      return 0;
    }
    if (!r->connected || r->batch_head != nullptr || r->queue_head != nullptr) {
      ec = std::make_error_code(std::errc::resource_unavailable_try_again);
      return 0;
    }
    io_buffer b{const_cast<std::byte*>(data.data()), data.size()};
    std::size_t n = 0;
    ec = r->loop->sockets().try_write(r->fd, &b, 1, r->is_socket, n);
    if (!ec) {
      r->bytes_written += n;
      detail::stream_ops::touch(*r);
    }
    return n;
  }
  /// Half-close once the queued writes went (Node's end()).
  void end() {
    if (auto* r = ref_.get()) detail::stream_ops::end(*r);
  }
  /// Write `data`, then end.
  void end(std::string_view data, write_callback cb = {}) {
    write(data, std::move(cb));
    end();
  }
  /// Close now; pending writes fail with operation_canceled (Node's destroy()).
  void destroy() {
    if (auto* r = ref_.get()) detail::stream_ops::destroy(*r, {});
  }
  /// Close now with an error: on_error(ec), then on_close(true).
  void destroy(std::error_code ec) {
    if (auto* r = ref_.get()) detail::stream_ops::destroy(*r, ec);
  }

  // --- reading
  /// Stop on_data events (the kernel's buffer fills: the peer is slowed down).
  void pause() {
    if (auto* r = ref_.get(); r != nullptr && r->reading) detail::stream_ops::pause(*r);
  }
  /// Resume on_data events.
  void resume() {
    if (auto* r = ref_.get()) detail::stream_ops::resume(*r);
  }
  [[nodiscard]] bool paused() const noexcept {
    auto* r = ref_.get();
    return r != nullptr && !r->reading;
  }
  /// Whether the socket is open and the peer has not ended its side (more data may come).
  [[nodiscard]] bool readable() const noexcept {
    auto* r = ref_.get();
    return r != nullptr && !r->destroyed && !r->read_ended;
  }
  [[nodiscard]] bool writable() const noexcept {
    auto* r = ref_.get();
    return r != nullptr && !r->destroyed && !r->end_called;
  }
  /// Keep the socket half-open after the peer ended (Node's allowHalfOpen).
  socket& allow_half_open(bool on = true) {
    if (auto* r = ref_.get()) r->allow_half_open = on;
    return *this;
  }

  // --- state and options
  [[nodiscard]] bool connecting() const noexcept {
    auto* r = ref_.get();
    return r != nullptr && r->connecting;
  }
  /// Bytes queued by write() and not yet written (Node's writableLength).
  [[nodiscard]] std::size_t buffered() const noexcept {
    auto* r = ref_.get();
    return r != nullptr ? r->buffered : 0;
  }
  [[nodiscard]] std::uint64_t bytes_read() const noexcept {
    auto* r = ref_.get();
    return r != nullptr ? r->bytes_read : 0;
  }
  [[nodiscard]] std::uint64_t bytes_written() const noexcept {
    auto* r = ref_.get();
    return r != nullptr ? r->bytes_written : 0;
  }
  /// The queue size at which write() starts returning false (default 16 KiB).
  socket& set_high_water_mark(std::size_t bytes) {
    if (auto* r = ref_.get()) r->high_water = bytes;
    return *this;
  }
  /// on_timeout after `after` without reads or writes (0: off); Node's setTimeout.
  socket& set_timeout(std::chrono::milliseconds after) {
    if (auto* r = ref_.get()) detail::stream_ops::set_timeout(*r, after);
    return *this;
  }
  /// TCP_NODELAY (Nagle's algorithm off).
  std::error_code set_no_delay(bool on = true) {
#if defined(TCP_NODELAY)
    return option(IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0, true);
#else
    (void)on;
    return std::make_error_code(std::errc::operation_not_supported);
#endif
  }
  /// SO_KEEPALIVE, and the idle time before the first probe.
  std::error_code set_keep_alive(bool on, std::chrono::seconds initial_delay = std::chrono::seconds(0)) {
    if (std::error_code ec = option(SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0, false)) return ec;
#if defined(TCP_KEEPIDLE)
    if (on && initial_delay.count() > 0)
      return option(IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(initial_delay.count()), true);
#elif defined(TCP_KEEPALIVE)
    if (on && initial_delay.count() > 0)
      return option(IPPROTO_TCP, TCP_KEEPALIVE, static_cast<int>(initial_delay.count()), true);
#else
    (void)initial_delay;
#endif
    return {};
  }
  [[nodiscard]] address local_address() const { return name(false); }
  [[nodiscard]] address remote_address() const { return name(true); }
  /// The descriptor (invalid_handle once closed).
  [[nodiscard]] native_handle native() const noexcept {
    auto* r = ref_.get();
    return r != nullptr ? r->fd : invalid_handle;
  }
  /// The loop the socket runs on (null once closed).
  [[nodiscard]] loop_core* loop() const noexcept {
    auto* r = ref_.get();
    return r != nullptr ? r->loop : nullptr;
  }

  socket& ref() {
    if (auto* r = ref_.get()) r->loop->set_handle_ref(*r, true);
    return *this;
  }
  socket& unref() {
    if (auto* r = ref_.get()) r->loop->set_handle_ref(*r, false);
    return *this;
  }
  [[nodiscard]] bool has_ref() const noexcept {
    auto* r = ref_.get();
    return r != nullptr && r->refed;
  }

  /// A socket for a descriptor this process already has (a pipe end, a
  /// connected socket, stdin): it is made non-blocking and read from at once.
  static socket open(loop_core& loop, native_handle fd, std::error_code& ec, bool is_socket = false) {
    ec = loop.sockets().adopt(fd);
    if (ec) return {};
    auto& r = detail::stream_ops::make(loop, is_socket ? detail::stream_kind::local : detail::stream_kind::pipe, fd);
    loop.activate(r);
    r.connected = true;
    socket s(r);
    if (is_socket) {  // a TCP descriptor is a TCP socket (set_no_delay, keep-alive apply)
      const address_family family = s.local_address().family();
      if (family == address_family::ipv4 || family == address_family::ipv6) r.kind = detail::stream_kind::tcp;
    }
    loop.defer([ref = s.ref_] {  // reading starts once the caller has set its handlers
      if (auto* rec = ref.get()) detail::stream_ops::maybe_read(*rec);
    });
    return s;
  }

  /// For module authors: the socket of a record.
  explicit socket(detail::stream_record& r) noexcept : ref_(r), loop_(r.loop) {}
  [[nodiscard]] detail::stream_record* record() const noexcept { return ref_.get(); }

 private:
  template <class M, class F>
  socket& set(M member, F&& f) {
    if (auto* r = ref_.get()) r->*member = std::forward<F>(f);
    return *this;
  }
  bool fail_closed(write_callback cb) {
    if (cb && loop_ != nullptr) {
      loop_->next_tick([cb = std::move(cb)]() mutable { cb(make_error_code(errc::write_after_end)); });
    }
    return false;
  }
  std::error_code option(int level, int name, int value, bool tcp_only) {
    auto* r = ref_.get();
    if (r == nullptr || r->destroyed || r->fd == invalid_handle) return std::make_error_code(std::errc::bad_file_descriptor);
    if (tcp_only && r->kind != detail::stream_kind::tcp) return std::make_error_code(std::errc::operation_not_supported);
    return r->loop->sockets().set_option(r->fd, level, name, value);
  }
  [[nodiscard]] address name(bool peer) const {
    auto* r = ref_.get();
    address a;
    if (r == nullptr || r->fd == invalid_handle || !r->is_socket) return a;
    std::uint32_t length = address::capacity();
    if (r->loop->sockets().name(r->fd, peer, a.data(), length)) return address{};
    a.set_size(length);
    return a;
  }

  record_ref<detail::stream_record> ref_;
  loop_core* loop_ = nullptr;  // the loop outlives every reference to its sockets
};

}  // namespace net
}  // namespace phaseloop
