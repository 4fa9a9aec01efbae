#pragma once
// phaseloop::dgram: Node's dgram module. UDP sockets over IPv4 and IPv6 on
// every backend (and on the mock's virtual network in tests).
//
//   auto s = dgram::create_socket(loop, {.type = dgram::udp4});
//   s.on_message([](std::span<const std::byte> bytes, const net::address& from) { ... });
//   if (auto ec = s.bind(41234, "127.0.0.1")) ...        // address_in_use, ...
//   s.send("hello", net::address::loopback_ipv4(41235), [](std::error_code ec) { ... });
//   s.close([] { /* in the close phase */ });
//
// dgram::socket is a move-only RAII handle (destroying it closes the socket),
// as poll_handle and the phase handles are: ref()/unref(), active() (bound,
// and so receiving), close(cb) with cb in the close phase.
//
// Receiving starts once the socket is bound: by bind(), or implicitly (to
// the wildcard address and a free port, as Node does) by the first send()
// or connect(). Datagrams land in a loop-owned buffer, so none allocates in
// steady state; on Linux (real sockets on a readiness backend) one readiness
// report takes a bounded batch with recvmmsg (8 datagrams a call, 4 calls at
// most, ended by EAGAIN or a short batch), elsewhere one recvfrom operation
// at a time (socket_options::recvmmsg = false picks that on Linux too). A
// datagram longer than max_message_size is delivered cut short, as Node
// does (truncated_messages() counts them). Hosts are numeric addresses
// (no DNS lookup).
//
// Sends are queued in order (the backend holds them while the socket would
// block) and each accepted send's callback runs exactly once: with its
// result, or with operation_canceled when the socket closes first.
// Errors known at once (a closed socket, a bad argument, a send without an
// address on an unconnected socket) are returned by send() itself, and then
// the callback does not run. Every bad argument (a malformed address or
// group, a TTL out of range) is std::errc::invalid_argument, never UB.

#include <phaseloop/detail/read_buffers.hpp>
#include <phaseloop/error.hpp>
#include <phaseloop/handle.hpp>
#include <phaseloop/loop_core.hpp>
#include <phaseloop/net/address.hpp>
#include <phaseloop/operation.hpp>
#include <phaseloop/phase_handles.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <phaseloop/detail/posix/socket_api.hpp>  // guards its own POSIX code
#include <phaseloop/detail/posix/system.hpp>

#if !defined(_WIN32)

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#endif

// recvmmsg: Linux, where the C library declares it (glibc and musl under _GNU_SOURCE).
#if !defined(PHASELOOP_DGRAM_RECVMMSG)
#if defined(__linux__) && defined(_GNU_SOURCE) && defined(MSG_WAITFORONE)
#define PHASELOOP_DGRAM_RECVMMSG 1
#else
#define PHASELOOP_DGRAM_RECVMMSG 0
#endif
#endif

namespace phaseloop {

namespace dgram {

/// A socket's protocol: Node's 'udp4' and 'udp6'.
enum class socket_type : std::uint8_t { udp4, udp6 };
/// IPv4 UDP.
inline constexpr socket_type udp4 = socket_type::udp4;
/// IPv6 UDP (IPv4 too through mapped addresses unless ipv6_only).
inline constexpr socket_type udp6 = socket_type::udp6;

/// create_socket()'s options (Node's createSocket options).
struct socket_options {
  socket_type type = socket_type::udp4;
  bool reuse_addr = false;  ///< SO_REUSEADDR (SO_REUSEPORT on the BSDs and Apple, as libuv): share a port
  bool ipv6_only = false;   ///< udp6: IPV6_V6ONLY, no IPv4 through mapped addresses
  int recv_buffer_size = 0;  ///< SO_RCVBUF, when > 0
  int send_buffer_size = 0;  ///< SO_SNDBUF, when > 0
  /// Bytes received per datagram (1 .. 65536); a longer datagram is delivered truncated.
  std::size_t max_message_size = 64 * 1024;
  /// Linux: receive in batches with recvmmsg (false: one recvfrom operation per datagram, as elsewhere).
  bool recvmmsg = true;
};

/// How a send or connect completes: cb(error_code).
using send_callback = detail::unique_function<void(std::error_code)>;
/// A received datagram: its bytes (valid during the call) and its sender.
using message_callback = detail::unique_function<void(std::span<const std::byte>, const net::address&)>;

}  // namespace dgram

namespace detail {

/// A queued request of a datagram socket: a send, a connect or a disconnect,
/// with the operation that carries it (so many can queue in the backend).
struct dgram_request : pool_slot {
  enum class type : std::uint8_t { send, connect, disconnect };
  operation op;
  dgram_request* next = nullptr;
  io_buffer buffer{};
  net::address to;
  std::vector<std::byte> copy;  // the owned bytes of a copying send; its capacity is kept
  unique_function<void(std::error_code)> cb;
  std::error_code error;
  std::uint64_t serial = 0;  // connect/disconnect: which link change this is
  type what = type::send;
  bool submitted = false;
  bool done = false;
};

/// Per loop: pooled requests and the recvmmsg batch (receive buffers come from read_buffers).
struct dgram_service {
  static constexpr std::size_t max_datagram = read_buffers::size;
  static constexpr std::size_t kept_copy_capacity = 64 * 1024;  // larger copies are not kept
  static constexpr unsigned batch = 8;        // datagrams per recvmmsg call
  static constexpr unsigned batch_calls = 4;  // recvmmsg calls per readiness report at most

  explicit dgram_service(loop_core&) {}

  dgram_request& take_request() {
    dgram_request& q = requests[requests.acquire()];
    q.next = nullptr;
    q.error = {};
    q.submitted = false;
    q.done = false;
    q.serial = 0;
    return q;
  }
  void give_request(dgram_request& q) noexcept {
    q.cb = nullptr;
    q.buffer = {};
    if (q.copy.capacity() > kept_copy_capacity) std::vector<std::byte>().swap(q.copy);
    q.copy.clear();
    requests.release(q.slot_index());
  }
  /// The recvmmsg batch's memory, shared by the loop's sockets (one batch runs at a time).
  std::byte* batch_memory() {
    if (!slab) slab.reset(new std::byte[batch * max_datagram]);
    return slab.get();
  }

  slot_pool<dgram_request, 64> requests;
  std::unique_ptr<std::byte[]> slab;
  bool slab_busy = false;
};

struct dgram_record : handle_record {
  /// A datagram received while paused, delivered on resume.
  struct held_datagram {
    std::vector<std::byte> bytes;
    net::address from;
    bool truncated = false;
  };
  enum class link : std::uint8_t { none, connecting, connected };

  native_handle fd = invalid_handle;
  int family = 0;  // AF_INET or AF_INET6
  operation recv_op;  // recvfrom, or (batched) a poll for readability
  io_buffer recv_buffer{};
  net::address from;  // recvfrom's sender
  std::size_t message_size = dgram_service::max_datagram;
  dgram_request* head = nullptr;  // every request not yet reported, in order
  dgram_request* tail = nullptr;
  dgram_request* unsubmitted = nullptr;  // the first not yet given to the backend
  std::uint32_t in_flight = 0;
  std::size_t queue_bytes = 0;  // sends not yet completed
  std::size_t queue_count = 0;
  std::uint64_t link_serial = 0;
  std::vector<held_datagram> held;
  std::uint64_t received = 0;
  std::uint64_t sent = 0;
  std::uint64_t truncated = 0;
  link peer = link::none;
  bool bound = false;
  bool reading = true;  // not paused
  bool batched = false;  // recvmmsg on readiness reports
  bool broadcast = false;
  bool stopped = false;
  // events
  dgram::message_callback on_message;
  unique_function<void(std::error_code)> on_error;
  callback on_listening;
  callback on_close;

  dgram_record() = default;
  ~dgram_record() {
    // Only in the loop's teardown can requests be left: drop them unrun.
    if (loop == nullptr) return;
    auto& service = loop->service<dgram_service>();
    while (head != nullptr) service.give_request(*std::exchange(head, head->next));
    loop->service<read_buffers>().give(static_cast<std::byte*>(recv_buffer.data));
    if (fd != invalid_handle) (void)loop->close_descriptor(fd);
  }
};

/// The datagram socket logic.
struct dgram_ops {
  /// The recvfrom operation's MSG_TRUNC (the mock's value, 0x20, where the system has none).
#if defined(MSG_TRUNC)
  static constexpr int truncated_flag = MSG_TRUNC;
#else
  static constexpr int truncated_flag = 0x20;
#endif

  static std::error_code invalid() noexcept { return std::make_error_code(std::errc::invalid_argument); }
  static std::error_code closed() noexcept { return std::make_error_code(std::errc::bad_file_descriptor); }

  static std::error_code open(loop_core& loop, const dgram::socket_options& o, dgram_record*& out) {
    out = nullptr;
    if (o.max_message_size == 0 || o.max_message_size > dgram_service::max_datagram || o.recv_buffer_size < 0 ||
        o.send_buffer_size < 0)
      return invalid();
    const socket_calls sockets = loop.sockets();
    if (sockets.api == nullptr) return std::make_error_code(std::errc::operation_not_supported);
    const int family = o.type == dgram::socket_type::udp6 ? AF_INET6 : AF_INET;
    native_handle fd = invalid_handle;
    if (std::error_code ec = sockets.open(family, SOCK_DGRAM, 0, fd)) return ec;
    auto fail = [&](std::error_code ec) {
      (void)loop.close_descriptor(fd);
      return ec;
    };
    if (o.reuse_addr) {
#if (defined(__APPLE__) || defined(__FreeBSD__) || defined(__DragonFly__) || defined(__NetBSD__) || \
     defined(__OpenBSD__)) &&                                                                           \
    defined(SO_REUSEPORT)
      const int reuse = SO_REUSEPORT;  // SO_REUSEADDR there does not let datagram sockets share a port
#else
      const int reuse = SO_REUSEADDR;
#endif
      if (std::error_code ec = sockets.set_option(fd, SOL_SOCKET, reuse, 1)) return fail(ec);
    }
#if defined(IPV6_V6ONLY)
    if (family == AF_INET6)
      if (std::error_code ec = sockets.set_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, o.ipv6_only ? 1 : 0)) return fail(ec);
#endif
    if (o.recv_buffer_size > 0)
      if (std::error_code ec = sockets.set_option(fd, SOL_SOCKET, SO_RCVBUF, o.recv_buffer_size)) return fail(ec);
    if (o.send_buffer_size > 0)
      if (std::error_code ec = sockets.set_option(fd, SOL_SOCKET, SO_SNDBUF, o.send_buffer_size)) return fail(ec);

    dgram_record* r;
    try {
      r = &loop.make_record<dgram_record>();
    } catch (...) {
      (void)loop.close_descriptor(fd);
      throw;
    }
    r->fd = fd;
    r->family = family;
    r->message_size = o.max_message_size;
    r->stop = &stop;
    r->finish = &finish;
#if !defined(_WIN32) && PHASELOOP_DGRAM_RECVMMSG
    // The system's own descriptors on a readiness backend: read them ourselves, a batch at a time.
    r->batched = o.recvmmsg && sockets.api == &posix::system_socket_api && !loop.completion_based() &&
                 loop.supports(op_kind::poll);
#endif
    operation& op = r->recv_op;
    op.fd = fd;
    op.user = r;
    op.owner = r;
    if (r->batched) {
      op.kind = op_kind::poll;
      op.events = io_events::readable;
      op.flags = op_flag::multishot;
      op.complete = &readable;
    } else {
      op.kind = op_kind::recvfrom;
      op.complete = &received_one;
    }
    out = r;
    return {};
  }

  [[nodiscard]] static bool family_matches(const dgram_record& r, const net::address& a) noexcept {
    return a.is_ip() && a.native_family() == r.family;
  }

  static net::address wildcard(const dgram_record& r) {
    return r.family == AF_INET6 ? net::address::any_ipv6(0) : net::address::any_ipv4(0);
  }

  // ------------------------------------------------------------- binding

  static std::error_code bind(dgram_record& r, const net::address& where) {
    if (r.bound) return invalid();  // EINVAL, as the kernel says to a second bind
    if (!family_matches(r, where)) return invalid();
    if (std::error_code ec = r.loop->sockets().bind(r.fd, where.data(), where.size())) return ec;
    r.bound = true;
    r.loop->activate(r);
    r.loop->defer([ref = record_ref<dgram_record>(r)] {  // Node's 'listening', from the pending phase
      dgram_record* s = ref.get();
      if (s != nullptr && !s->stopped && s->on_listening) invoke_handle_callback(*s->loop, s->on_listening);
    });
    return start_receiving(r);
  }

  /// Bind to the wildcard address and a free port unless bound (Node's implicit bind).
  static std::error_code ensure_bound(dgram_record& r) { return r.bound ? std::error_code{} : bind(r, wildcard(r)); }

  // ------------------------------------------------------------- receiving

  static std::error_code start_receiving(dgram_record& r) {
    if (!r.bound || r.stopped || !r.reading) return {};
    if (!r.held.empty()) return {};  // resume() delivers what was held first, then starts again
    if (r.recv_op.in_flight() || r.recv_op.linked) return {};  // its completion starts the next
    if (!r.batched) {
      if (r.recv_buffer.data == nullptr) {
        r.recv_buffer.data = r.loop->service<read_buffers>().take();
        r.recv_buffer.size = r.message_size;
      }
      r.recv_op.buffers = &r.recv_buffer;
      r.recv_op.buffer_count = 1;
      r.recv_op.address = r.from.data();
      r.recv_op.address_length = net::address::capacity();
      r.recv_op.msg_flags = 0;
    }
    return r.loop->submit(r.recv_op);
  }

  static void keep_receiving(dgram_record& r) {
    if (std::error_code ec = start_receiving(r)) report(r, ec);
  }

  static void report(dgram_record& r, std::error_code ec) {
    if (!r.stopped && r.on_error) invoke_handle_callback(*r.loop, r.on_error, ec);
  }

  /// Hand one datagram to on_message (or hold it while paused); false once
  /// the socket is closed and takes no more.
  static bool deliver(dgram_record& r, const std::byte* data, std::size_t n, const net::address& from,
                      bool truncated) {
    if (r.stopped) return false;
    if (!r.reading) {
      r.held.push_back(dgram_record::held_datagram{std::vector<std::byte>(data, data + n), from, truncated});
      return true;
    }
    ++r.received;
    if (truncated) ++r.truncated;
    if (r.on_message) invoke_handle_callback(*r.loop, r.on_message, std::span<const std::byte>(data, n), from);
    return !r.stopped;
  }

  // recvfrom path: one datagram per completion.
  static void received_one(operation& op) {
    auto& r = *static_cast<dgram_record*>(op.user);
    if (r.stopped) return;
    if (op.error == std::errc::operation_canceled) {
      keep_receiving(r);  // paused, then resumed before the cancellation came back
      return;
    }
    if (op.error) {
      report(r, op.error);
      if (op.error != std::errc::bad_file_descriptor) keep_receiving(r);
      return;
    }
    r.from.set_size(op.address_length);
    const auto* data = static_cast<const std::byte*>(op.received != nullptr ? op.received : r.recv_buffer.data);
    const bool truncated = (op.msg_flags & truncated_flag) != 0;
    if (!deliver(r, data, op.transferred, r.from, truncated)) return;
    keep_receiving(r);
  }

  // Batched path: the descriptor is readable.
  static void readable(operation& op) {
    auto& r = *static_cast<dgram_record*>(op.user);
    if (r.stopped) return;
    if (!op.more()) {  // the watch ended: paused (and maybe resumed), or the backend dropped it
      if (op.error == std::errc::operation_canceled) {
        keep_receiving(r);
      } else if (op.error) {
        report(r, op.error);
      }
      return;
    }
    if (!r.reading) return;
    read_batch(r);
  }

  static void read_batch([[maybe_unused]] dgram_record& r) {
#if !defined(_WIN32) && PHASELOOP_DGRAM_RECVMMSG
    auto& service = r.loop->service<dgram_service>();
    if (service.slab_busy) return;  // a loop run from inside on_message: the next readiness report comes back
    std::byte* const memory = service.batch_memory();
    service.slab_busy = true;
    struct release {
      bool& busy;
      ~release() { busy = false; }
    } guard{service.slab_busy};
    constexpr unsigned n = dgram_service::batch;
    const std::size_t slice = r.message_size;
    for (unsigned call = 0; call < dgram_service::batch_calls; ++call) {
      mmsghdr msgs[n];
      iovec iov[n];
      sockaddr_storage names[n];
      std::memset(msgs, 0, sizeof msgs);
      for (unsigned i = 0; i < n; ++i) {
        iov[i].iov_base = memory + i * slice;
        iov[i].iov_len = slice;
        msgs[i].msg_hdr.msg_name = &names[i];
        msgs[i].msg_hdr.msg_namelen = sizeof names[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      const int got = posix::retry([&] { return ::recvmmsg(static_cast<int>(r.fd), msgs, n, MSG_DONTWAIT, nullptr); });
      if (got < 0) {
        if (!posix::would_block(errno)) report(r, posix::errno_code());
        return;  // EAGAIN ends the batch
      }
      for (int i = 0; i < got; ++i) {
        const mmsghdr& m = msgs[i];
        const net::address sender = net::address::from_raw(&names[i], static_cast<std::uint32_t>(m.msg_hdr.msg_namelen));
        if (!deliver(r, memory + static_cast<std::size_t>(i) * slice, m.msg_len, sender,
                     (m.msg_hdr.msg_flags & MSG_TRUNC) != 0))
          return;  // closed from inside on_message: the rest is dropped
      }
      if (static_cast<unsigned>(got) < n || !r.reading) return;  // drained, or paused
    }
#endif
  }

  static void pause(dgram_record& r) {
    if (!r.reading || r.stopped) return;
    r.reading = false;
    r.loop->cancel(r.recv_op);  // a datagram it took before the cancel took hold is held for resume
  }

  static void resume(dgram_record& r) {
    if (r.reading || r.stopped) return;
    r.reading = true;
    if (r.held.empty()) {
      keep_receiving(r);
      return;
    }
    // The held datagrams first, from the pending phase, then the socket's.
    r.loop->defer([ref = record_ref<dgram_record>(r)] {
      dgram_record* s = ref.get();
      if (s == nullptr || s->stopped || !s->reading) return;
      std::vector<dgram_record::held_datagram> held = std::move(s->held);
      s->held.clear();
      for (auto& h : held)  // paused again meanwhile: deliver() holds the rest, in order
        if (!deliver(*s, h.bytes.data(), h.bytes.size(), h.from, h.truncated)) return;
      if (s->held.empty()) keep_receiving(*s);
    });
  }

  // ------------------------------------------------------------- sending

  static dgram_request& new_request(dgram_record& r, dgram_request::type what) {
    dgram_request& q = r.loop->service<dgram_service>().take_request();
    q.what = what;
    operation& op = q.op;
    op.fd = r.fd;
    op.user = &q;
    op.owner = &r;
    op.complete = &request_done;
    op.msg_flags = 0;
    op.buffers = nullptr;
    op.buffer_count = 0;
    op.address = nullptr;
    op.address_length = 0;
    return q;
  }

  static void enqueue(dgram_record& r, dgram_request& q) {
    (r.tail != nullptr ? r.tail->next : r.head) = &q;
    r.tail = &q;
    if (r.unsubmitted == nullptr) r.unsubmitted = &q;
    submit_waiting(r);
  }

  /// Give queued requests to the backend: all at once on a readiness backend
  /// (its writer queue keeps them in order), one at a time on a completion
  /// backend (where two sends in flight could pass each other).
  static void submit_waiting(dgram_record& r) {
    while (dgram_request* q = r.unsubmitted) {
      if (r.stopped) return;
      if (r.loop->completion_based() && r.in_flight != 0) return;
      r.unsubmitted = q->next;
      q->submitted = true;
      if (std::error_code ec = r.loop->submit(q->op)) {
        q->done = true;
        q->error = ec;
        r.loop->defer([ref = record_ref<dgram_record>(r)] {  // never from inside send()
          if (dgram_record* s = ref.get()) report_done(*s);
        });
        continue;
      }
      ++r.in_flight;
    }
  }

  static std::error_code send(dgram_record& r, std::span<const std::byte> data, const net::address* to, bool copy,
                              dgram::send_callback cb) {
    if (r.stopped) return closed();
    if (to != nullptr) {
      if (r.peer != dgram_record::link::none) return std::make_error_code(std::errc::already_connected);
      if (!family_matches(r, *to) || to->port() == 0) return invalid();
    } else if (r.peer == dgram_record::link::none) {
      return std::make_error_code(std::errc::destination_address_required);
    }
    if (std::error_code ec = ensure_bound(r)) return ec;
    dgram_request& q = new_request(r, dgram_request::type::send);
    if (copy) {
      try {
        q.copy.assign(data.begin(), data.end());
      } catch (...) {
        r.loop->service<dgram_service>().give_request(q);
        throw;
      }
      q.buffer = io_buffer{q.copy.data(), q.copy.size()};
    } else {
      q.buffer = io_buffer{const_cast<std::byte*>(data.data()), data.size()};
    }
    q.cb = std::move(cb);
    q.op.kind = op_kind::sendto;
    q.op.buffers = &q.buffer;
    q.op.buffer_count = 1;
    if (to != nullptr) {
      q.to = *to;
      q.op.address = q.to.data();
      q.op.address_length = q.to.size();
    }
    r.queue_bytes += data.size();
    ++r.queue_count;
    enqueue(r, q);
    return {};
  }

  static std::error_code connect(dgram_record& r, const net::address& to, dgram::send_callback cb) {
    if (r.stopped) return closed();
    if (r.peer != dgram_record::link::none) return std::make_error_code(std::errc::already_connected);
    if (!family_matches(r, to) || to.port() == 0) return invalid();
    if (std::error_code ec = ensure_bound(r)) return ec;
    dgram_request& q = new_request(r, dgram_request::type::connect);
    q.cb = std::move(cb);
    q.to = to;
    q.op.kind = op_kind::connect;
    q.op.address = q.to.data();
    q.op.address_length = q.to.size();
    q.serial = ++r.link_serial;
    r.peer = dgram_record::link::connecting;
    enqueue(r, q);
    return {};
  }

  static std::error_code disconnect(dgram_record& r) {
    if (r.stopped) return closed();
    if (r.peer == dgram_record::link::none) return std::make_error_code(std::errc::not_connected);
    dgram_request& q = new_request(r, dgram_request::type::disconnect);
    // connect() to an AF_UNSPEC address dissolves the association.
    q.to = net::address{};
    sockaddr* sa = q.to.data();
    sa->sa_family = AF_UNSPEC;
    q.op.kind = op_kind::connect;
    q.op.address = sa;
    q.op.address_length = static_cast<std::uint32_t>(sizeof(sockaddr));
    q.serial = ++r.link_serial;
    r.peer = dgram_record::link::none;  // at once, as Node's disconnect()
    enqueue(r, q);
    return {};
  }

  static void request_done(operation& op) {
    auto& q = *static_cast<dgram_request*>(op.user);
    auto& r = *static_cast<dgram_record*>(op.owner);
    --r.in_flight;
    q.done = true;
    q.error = op.error;
    // Apple and some BSDs report EAFNOSUPPORT for the AF_UNSPEC connect even though it disconnected.
    if (q.what == dgram_request::type::disconnect && q.error == std::errc::address_family_not_supported) q.error = {};
    submit_waiting(r);
    report_done(r);
  }

  /// Run the callbacks of finished requests at the head of the queue, in order.
  static void report_done(dgram_record& r) {
    auto& service = r.loop->service<dgram_service>();
    while (r.head != nullptr && r.head->done) {
      dgram_request& q = *r.head;
      r.head = q.next;
      if (r.head == nullptr) r.tail = nullptr;
      const std::error_code ec = q.error;
      const dgram_request::type what = q.what;
      const std::size_t bytes = q.buffer.size;
      const std::uint64_t serial = q.serial;
      auto cb = std::move(q.cb);
      service.give_request(q);
      if (what == dgram_request::type::send) {
        r.queue_bytes -= bytes;
        --r.queue_count;
        if (!ec) ++r.sent;
      } else if (what == dgram_request::type::connect && serial == r.link_serial) {
        r.peer = ec ? dgram_record::link::none : dgram_record::link::connected;
      }
      if (!cb) continue;
      struct rest {  // a callback threw: the others still run, from the pending phase
        dgram_record& r;
        bool ok = false;
        ~rest() {
          if (!ok && r.head != nullptr && r.head->done)
            r.loop->defer([ref = record_ref<dgram_record>(r)] {
              if (dgram_record* s = ref.get()) report_done(*s);
            });
        }
      } guard{r};
      r.loop->invoke_then_drain(cb, ec);
      guard.ok = true;
    }
  }

  // ------------------------------------------------------------- closing

  // The loop's close protocol: stop receiving, cancel queued requests, close the descriptor.
  static void stop(handle_record& base) {
    auto& r = static_cast<dgram_record&>(base);
    if (r.stopped) return;
    r.stopped = true;
    loop_core& loop = *r.loop;
    loop.cancel(r.recv_op);
    for (dgram_request* q = r.head; q != nullptr; q = q->next)
      if (q->submitted) loop.cancel(q->op);
    r.held.clear();
    if (r.fd != invalid_handle) (void)loop.close_descriptor(std::exchange(r.fd, invalid_handle));
  }

  // The close phase: every operation is back. Requests never submitted fail
  // with operation_canceled, every callback runs in order, then 'close'.
  static void finish(handle_record& base) {
    auto& r = static_cast<dgram_record&>(base);
    for (dgram_request* q = r.unsubmitted; q != nullptr; q = q->next) {
      q->done = true;
      q->error = std::make_error_code(std::errc::operation_canceled);
    }
    r.unsubmitted = nullptr;
    report_done(r);
    if (r.on_close) {
      auto fn = std::move(r.on_close);
      r.loop->invoke(fn);
    }
  }

  // ------------------------------------------------------------- options

  static std::error_code option(dgram_record* r, int level, int name, const void* value, std::uint32_t length) {
    if (r == nullptr || r->stopped || r->fd == invalid_handle) return closed();
    return r->loop->sockets().set_option(r->fd, level, name, value, length);
  }
  template <class T>
  static std::error_code option(dgram_record* r, int level, int name, const T& value) {
    return option(r, level, name, &value, static_cast<std::uint32_t>(sizeof value));
  }

  static bool is_multicast(const net::address& a) noexcept {
    if (a.family() == net::address_family::ipv4) {
      sockaddr_in sin{};
      std::memcpy(&sin, a.data(), sizeof sin);
      return (reinterpret_cast<const unsigned char*>(&sin.sin_addr)[0] & 0xf0) == 0xe0;  // 224.0.0.0/4
    }
    if (a.family() == net::address_family::ipv6) {
      sockaddr_in6 sin6{};
      std::memcpy(&sin6, a.data(), sizeof sin6);
      return reinterpret_cast<const unsigned char*>(&sin6.sin6_addr)[0] == 0xff;  // ff00::/8
    }
    return false;
  }

  // An interface given by address text: "" is the system's choice.
  static std::error_code parse_interface(const dgram_record& r, std::string_view text, net::address& out) {
    if (text.empty()) {
      out = wildcard(r);
      return {};
    }
    if (net::address::parse_ip(text, 0, out) || !family_matches(r, out)) return invalid();
    return {};
  }

  static std::error_code membership(dgram_record* r, std::string_view group_text, std::string_view interface_text,
                                    bool join) {
    if (r == nullptr || r->stopped) return closed();
    net::address group;
    net::address iface;
    if (net::address::parse_ip(group_text, 0, group) || !family_matches(*r, group) || !is_multicast(group))
      return invalid();
    if (std::error_code ec = parse_interface(*r, interface_text, iface)) return ec;
    if (r->family == AF_INET) {
#if defined(IP_ADD_MEMBERSHIP) && defined(IP_DROP_MEMBERSHIP)
      sockaddr_in g{};
      sockaddr_in i{};
      std::memcpy(&g, group.data(), sizeof g);
      std::memcpy(&i, iface.data(), sizeof i);
      ip_mreq m{};
      m.imr_multiaddr = g.sin_addr;
      m.imr_interface = i.sin_addr;
      return option(r, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, m);
#else
      (void)join;
      return std::make_error_code(std::errc::operation_not_supported);
#endif
    }
#if defined(IPV6_JOIN_GROUP) && defined(IPV6_LEAVE_GROUP)
    const int join_option = IPV6_JOIN_GROUP;
    const int leave_option = IPV6_LEAVE_GROUP;
#elif defined(IPV6_ADD_MEMBERSHIP) && defined(IPV6_DROP_MEMBERSHIP)
    const int join_option = IPV6_ADD_MEMBERSHIP;
    const int leave_option = IPV6_DROP_MEMBERSHIP;
#else
    const int join_option = -1;
    const int leave_option = -1;
#endif
    if (join_option < 0) return std::make_error_code(std::errc::operation_not_supported);
    sockaddr_in6 g{};
    std::memcpy(&g, group.data(), sizeof g);
    ipv6_mreq m{};
    m.ipv6mr_multiaddr = g.sin6_addr;
    // The interface's scope ("::%eth0"), else the group's own ("ff02::1%eth0"), else the system's choice.
    m.ipv6mr_interface = iface.scope_id() != 0 ? iface.scope_id() : group.scope_id();
    return option(r, IPPROTO_IPV6, join ? join_option : leave_option, m);
  }
};

}  // namespace detail

namespace dgram {

/// A UDP socket (Node's dgram.Socket): a move-only handle; destroying it closes the socket.
class socket : public basic_handle<socket> {
  using record_type = phaseloop::detail::dgram_record;
  using ops = phaseloop::detail::dgram_ops;

 public:
  /// An empty handle (create_socket() makes open ones).
  socket() noexcept = default;

  // --- events (one handler each; setting one replaces it)
  /// Each datagram received: its bytes (valid during the call) and its sender.
  socket& on_message(message_callback cb) { return set(&record_type::on_message, std::move(cb)); }
  /// A receive error (the socket stays open: ECONNREFUSED from a connected peer's ICMP error, ...).
  socket& on_error(detail::unique_function<void(std::error_code)> cb) {
    return set(&record_type::on_error, std::move(cb));
  }
  /// Bound (Node's 'listening'), from the pending phase after bind().
  socket& on_listening(callback cb) { return set(&record_type::on_listening, std::move(cb)); }
  /// Closed, in the close phase, after every pending send's callback.
  socket& on_close(callback cb) { return set(&record_type::on_close, std::move(cb)); }

  // --- binding
  /// Bind to `host` (a numeric address; "" is the wildcard "0.0.0.0" or "::") and
  /// `port` (0: a free one) and start receiving. Errors: address_in_use,
  /// permission_denied, invalid_argument (malformed host, another family, bound already).
  std::error_code bind(std::uint16_t port = 0, std::string_view host = "") {
    auto* r = rec();
    if (r == nullptr) return ops::closed();
    net::address a;
    if (host.empty()) {
      a = ops::wildcard(*r).with_port(port);
    } else if (std::error_code ec = net::address::parse_ip(host, port, a)) {
      return ec;
    }
    return bind(a);
  }
  /// Bind to an address and start receiving.
  std::error_code bind(const net::address& where) {
    auto* r = rec();
    return r != nullptr ? ops::bind(*r, where) : ops::closed();
  }
  /// The bound address (empty before bind).
  [[nodiscard]] net::address local_address() const { return name(false); }
  /// Whether the socket is bound (explicitly or by a send or connect).
  [[nodiscard]] bool bound() const noexcept {
    auto* r = rec();
    return r != nullptr && r->bound;
  }

  // --- connecting
  /// Associate the socket with one peer (binding it first if needed): sends
  /// then go without an address and only the peer's datagrams arrive. cb(ec)
  /// once it took effect. Errors at once: already_connected, invalid_argument.
  std::error_code connect(const net::address& to, send_callback cb = {}) {
    auto* r = rec();
    return r != nullptr ? ops::connect(*r, to, std::move(cb)) : ops::closed();
  }
  /// connect() to a numeric host and port.
  std::error_code connect(std::uint16_t port, std::string_view host, send_callback cb = {}) {
    net::address a;
    if (std::error_code ec = net::address::parse_ip(host, port, a)) return ec;
    return connect(a, std::move(cb));
  }
  /// Dissolve the association (not_connected when there is none).
  std::error_code disconnect() {
    auto* r = rec();
    return r != nullptr ? ops::disconnect(*r) : ops::closed();
  }
  /// Whether connect() completed (and no disconnect() followed).
  [[nodiscard]] bool connected() const noexcept {
    auto* r = rec();
    return r != nullptr && r->peer == record_type::link::connected;
  }
  /// The connected peer's address (empty when not connected).
  [[nodiscard]] net::address remote_address() const {
    auto* r = rec();
    if (r == nullptr || r->peer != record_type::link::connected) return {};
    return name(true);
  }

  // --- sending
  /// Send a copy of `data` as one datagram to `to` (binding the socket first
  /// if needed). cb(ec) runs exactly once when this returns no error; errors
  /// at once: bad_file_descriptor (closed), already_connected (use the
  /// connected form), invalid_argument (another family, port 0).
  std::error_code send(std::span<const std::byte> data, const net::address& to, send_callback cb = {}) {
    auto* r = rec();
    return r != nullptr ? ops::send(*r, data, &to, true, std::move(cb)) : ops::closed();
  }
  /// send() of text's bytes.
  std::error_code send(std::string_view text, const net::address& to, send_callback cb = {}) {
    return send(as_bytes(text), to, std::move(cb));
  }
  /// Send to a numeric host and port.
  std::error_code send(std::span<const std::byte> data, std::uint16_t port, std::string_view host,
                       send_callback cb = {}) {
    net::address a;
    if (std::error_code ec = net::address::parse_ip(host, port, a)) return ec;
    return send(data, a, std::move(cb));
  }
  /// send() of text's bytes to a numeric host and port.
  std::error_code send(std::string_view text, std::uint16_t port, std::string_view host, send_callback cb = {}) {
    return send(as_bytes(text), port, host, std::move(cb));
  }
  /// Send a copy of `data` to the connected peer (destination_address_required when not connected).
  std::error_code send(std::span<const std::byte> data, send_callback cb = {}) {
    auto* r = rec();
    return r != nullptr ? ops::send(*r, data, nullptr, true, std::move(cb)) : ops::closed();
  }
  /// send() of text's bytes to the connected peer.
  std::error_code send(std::string_view text, send_callback cb = {}) { return send(as_bytes(text), std::move(cb)); }
  /// Send `data` without copying it: the memory must stay valid and untouched until cb runs.
  std::error_code send_borrowed(std::span<const std::byte> data, const net::address& to, send_callback cb = {}) {
    auto* r = rec();
    return r != nullptr ? ops::send(*r, data, &to, false, std::move(cb)) : ops::closed();
  }
  /// send_borrowed() to the connected peer.
  std::error_code send_borrowed(std::span<const std::byte> data, send_callback cb = {}) {
    auto* r = rec();
    return r != nullptr ? ops::send(*r, data, nullptr, false, std::move(cb)) : ops::closed();
  }
  /// Bytes of sends not yet completed (Node's getSendQueueSize).
  [[nodiscard]] std::size_t send_queue_size() const noexcept {
    auto* r = rec();
    return r != nullptr ? r->queue_bytes : 0;
  }
  /// Sends not yet completed (Node's getSendQueueCount).
  [[nodiscard]] std::size_t send_queue_count() const noexcept {
    auto* r = rec();
    return r != nullptr ? r->queue_count : 0;
  }

  // --- receiving
  /// Stop on_message events; datagrams wait in the kernel's buffer (and are dropped when it is full).
  void pause() {
    if (auto* r = rec()) ops::pause(*r);
  }
  /// Resume on_message events.
  void resume() {
    if (auto* r = rec()) ops::resume(*r);
  }
  /// Whether pause() holds on_message events.
  [[nodiscard]] bool paused() const noexcept {
    auto* r = rec();
    return r != nullptr && !r->reading;
  }
  /// Datagrams delivered to on_message so far.
  [[nodiscard]] std::uint64_t messages_received() const noexcept {
    auto* r = rec();
    return r != nullptr ? r->received : 0;
  }
  /// Sends completed without error so far.
  [[nodiscard]] std::uint64_t messages_sent() const noexcept {
    auto* r = rec();
    return r != nullptr ? r->sent : 0;
  }
  /// Datagrams longer than max_message_size, delivered truncated, so far.
  [[nodiscard]] std::uint64_t truncated_messages() const noexcept {
    auto* r = rec();
    return r != nullptr ? r->truncated : 0;
  }

  // --- options
  /// SO_BROADCAST: allow sends to broadcast addresses.
  std::error_code set_broadcast(bool on) {
    auto* r = rec();
    std::error_code ec = ops::option(r, SOL_SOCKET, SO_BROADCAST, on ? 1 : 0);
    if (!ec) r->broadcast = on;
    return ec;
  }
  /// The broadcast flag last set.
  [[nodiscard]] bool broadcast() const noexcept {
    auto* r = rec();
    return r != nullptr && r->broadcast;
  }
  /// IP_TTL (IPV6_UNICAST_HOPS on udp6): 1 .. 255, else invalid_argument.
  std::error_code set_ttl(int ttl) {
    if (ttl < 1 || ttl > 255) return ops::invalid();
    auto* r = rec();
    if (r == nullptr) return ops::closed();
#if defined(IPV6_UNICAST_HOPS)
    if (r->family == AF_INET6) return ops::option(r, IPPROTO_IPV6, IPV6_UNICAST_HOPS, ttl);
#endif
    return ops::option(r, IPPROTO_IP, IP_TTL, ttl);
  }
  /// IP_MULTICAST_TTL (IPV6_MULTICAST_HOPS): 0 .. 255, else invalid_argument.
  std::error_code set_multicast_ttl(int ttl) {
    if (ttl < 0 || ttl > 255) return ops::invalid();
    auto* r = rec();
    if (r == nullptr) return ops::closed();
    if (r->family == AF_INET6) {
#if defined(IPV6_MULTICAST_HOPS)
      return ops::option(r, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, ttl);
#else
      return std::make_error_code(std::errc::operation_not_supported);
#endif
    }
    return ops::option(r, IPPROTO_IP, IP_MULTICAST_TTL, ip_value(ttl));
  }
  /// IP_MULTICAST_LOOP (IPV6_MULTICAST_LOOP): whether the host receives its own multicast sends.
  std::error_code set_multicast_loopback(bool on) {
    auto* r = rec();
    if (r == nullptr) return ops::closed();
    if (r->family == AF_INET6) {
#if defined(IPV6_MULTICAST_LOOP)
      return ops::option(r, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, static_cast<unsigned>(on ? 1 : 0));
#else
      return std::make_error_code(std::errc::operation_not_supported);
#endif
    }
    return ops::option(r, IPPROTO_IP, IP_MULTICAST_LOOP, ip_value(on ? 1 : 0));
  }
  /// The interface multicast sends leave by: an IPv4 interface's address, or
  /// on udp6 an address naming the interface by its scope ("::%eth0"); ""
  /// the system's choice.
  std::error_code set_multicast_interface(std::string_view interface_address) {
    auto* r = rec();
    if (r == nullptr) return ops::closed();
    net::address iface;
    if (std::error_code ec = ops::parse_interface(*r, interface_address, iface)) return ec;
    if (r->family == AF_INET6) {
#if defined(IPV6_MULTICAST_IF)
      const unsigned index = iface.scope_id();
      return ops::option(r, IPPROTO_IPV6, IPV6_MULTICAST_IF, index);
#else
      return std::make_error_code(std::errc::operation_not_supported);
#endif
    }
    sockaddr_in sin{};
    std::memcpy(&sin, iface.data(), sizeof sin);
    return ops::option(r, IPPROTO_IP, IP_MULTICAST_IF, sin.sin_addr);
  }
  /// Join multicast group `group` (numeric, of the socket's family) on an
  /// interface given as set_multicast_interface() takes it ("": the system's choice).
  std::error_code add_membership(std::string_view group, std::string_view interface_address = "") {
    return ops::membership(rec(), group, interface_address, true);
  }
  /// Leave a group joined with add_membership().
  std::error_code drop_membership(std::string_view group, std::string_view interface_address = "") {
    return ops::membership(rec(), group, interface_address, false);
  }
  /// SO_RCVBUF (bytes > 0).
  std::error_code set_recv_buffer_size(int bytes) {
    if (bytes <= 0) return ops::invalid();
    return ops::option(rec(), SOL_SOCKET, SO_RCVBUF, bytes);
  }
  /// SO_SNDBUF (bytes > 0).
  std::error_code set_send_buffer_size(int bytes) {
    if (bytes <= 0) return ops::invalid();
    return ops::option(rec(), SOL_SOCKET, SO_SNDBUF, bytes);
  }
  /// The kernel's SO_RCVBUF (Linux reports twice what was set); real
  /// sockets on POSIX only, else operation_not_supported.
  [[nodiscard]] int recv_buffer_size(std::error_code& ec) const { return get_int(SOL_SOCKET, SO_RCVBUF, ec); }
  /// The kernel's SO_SNDBUF, as recv_buffer_size().
  [[nodiscard]] int send_buffer_size(std::error_code& ec) const { return get_int(SOL_SOCKET, SO_SNDBUF, ec); }

  /// The descriptor (invalid_handle once closed).
  [[nodiscard]] native_handle native() const noexcept {
    auto* r = rec();
    return r != nullptr ? r->fd : invalid_handle;
  }

  /// For module authors: the socket owning a record.
  explicit socket(record_type& r) noexcept : basic_handle<socket>(r) {}

 private:
  // An IPPROTO_IP multicast option's value: a char where the system wants one (as libuv).
#if defined(__sun) || defined(_AIX) || defined(__OpenBSD__) || defined(__MVS__) || defined(__QNX__)
  static unsigned char ip_value(int v) noexcept { return static_cast<unsigned char>(v); }
#else
  static int ip_value(int v) noexcept { return v; }
#endif

  [[nodiscard]] record_type* rec() const noexcept { return record<record_type>(); }

  template <class M, class F>
  socket& set(M member, F&& f) {
    if (auto* r = rec()) r->*member = std::forward<F>(f);
    return *this;
  }

  static std::span<const std::byte> as_bytes(std::string_view text) noexcept {
    return std::as_bytes(std::span<const char>(text.data(), text.size()));
  }

  [[nodiscard]] net::address name(bool peer) const {
    auto* r = rec();
    net::address a;
    if (r == nullptr || r->fd == invalid_handle || (!peer && !r->bound)) return a;
    std::uint32_t length = net::address::capacity();
    if (r->loop->sockets().name(r->fd, peer, a.data(), length)) return net::address{};
    a.set_size(length);
    return a;
  }

  int get_int([[maybe_unused]] int level, [[maybe_unused]] int option, std::error_code& ec) const {
    auto* r = rec();
    if (r == nullptr || r->fd == invalid_handle) {
      ec = ops::closed();
      return 0;
    }
#if !defined(_WIN32)
    if (r->loop->sockets().api == &phaseloop::detail::posix::system_socket_api) {
      int value = 0;
      socklen_t length = sizeof value;
      if (::getsockopt(static_cast<int>(r->fd), level, option, &value, &length) != 0) {
        ec = phaseloop::detail::posix::errno_code();
        return 0;
      }
      ec = {};
      return value;
    }
#endif
    ec = std::make_error_code(std::errc::operation_not_supported);
    return 0;
  }
};

/// A UDP socket on `loop` (Node's dgram.createSocket); `ec` says why none could be made.
inline socket create_socket(loop_core& loop, const socket_options& options, std::error_code& ec) {
  phaseloop::detail::dgram_record* r = nullptr;
  ec = phaseloop::detail::dgram_ops::open(loop, options, r);
  if (ec) return socket{};
  return socket(*r);
}

/// A UDP socket on `loop`; throws std::system_error when none can be made (EMFILE, no IPv6, ...).
inline socket create_socket(loop_core& loop, const socket_options& options = {}) {
  std::error_code ec;
  socket s = create_socket(loop, options, ec);
  if (ec) throw std::system_error(ec, "phaseloop::dgram::create_socket");
  return s;
}

}  // namespace dgram
}  // namespace phaseloop
