#pragma once
// Signal handles (POSIX): Node's process.on('SIGUSR1', ...), libuv's
// uv_signal_t. A handle watches one signal and its callback runs in the poll
// phase, with the signal number, once per delivery; a one-shot handle stops
// itself before its callback runs. Several handles, on several loops and
// threads, may watch one signal: each of them gets it. A signal a callback
// raises is delivered after that callback's ticks and microtasks.
//
// The process-wide registry (detail/posix/signal_registry.hpp) installs one
// handler per watched signal and restores the previous disposition when the
// last handle in the process stops watching it. A signal caught while its
// handle is closing is counted and dropped, never delivered to a closed
// handle; other handles still get it.
//
// On Windows this module is not available yet (the API is omitted).
//
//   auto h = phaseloop::on_signal(loop, SIGINT, [](int) { ... }, ec);
//   h.unref();  // does not keep the loop alive
//   h.close();

#include <phaseloop/detail/intrusive_list.hpp>
#include <phaseloop/detail/posix/signal_registry.hpp>
#include <phaseloop/detail/posix/system.hpp>
#include <phaseloop/handle.hpp>
#include <phaseloop/loop_core.hpp>
#include <phaseloop/operation.hpp>
#include <phaseloop/phase_handles.hpp>

#if !defined(_WIN32)

#include <cerrno>
#include <cstdint>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

namespace phaseloop {

/// A signal handle's callback: the signal number.
using signal_callback = detail::unique_function<void(int signo)>;

namespace detail {

struct signal_service;

struct signal_record : handle_record {
  signal_callback fn;
  signal_service* service = nullptr;
  int signo = 0;
  bool oneshot = false;
  bool watching = false;  // counted in the registry and listed in the service
  signal_record* next_watch = nullptr;
  signal_record* prev_watch = nullptr;

  signal_record() = default;
  inline ~signal_record();
};

/// Per loop: the self-pipe the registry writes to, its poll operation, and
/// the loop's watching handles.
struct signal_service {
  explicit signal_service(loop_core& l) : loop(l) {}
  signal_service(const signal_service&) = delete;
  signal_service& operator=(const signal_service&) = delete;

  ~signal_service() {
    // The loop's teardown: the backend is gone, every record destroyed.
    if (sink != nullptr) posix::signal_registry::instance().release(*sink);
    if (read_fd >= 0) (void)posix::close_fd(read_fd);
    if (write_fd >= 0) (void)posix::close_fd(write_fd);
  }

  /// Make the pipe and the sink and start watching the pipe (once per loop).
  std::error_code open() {
    if (sink != nullptr && op.in_flight()) return {};
    if (sink == nullptr) {
      int fds[2];
#if defined(__linux__)
      if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return posix::errno_code();
#else
      if (::pipe(fds) != 0) return posix::errno_code();
      for (int fd : fds) {
        if (std::error_code ec = posix::set_nonblocking_cloexec(fd)) {
          (void)posix::close_fd(fds[0]);
          (void)posix::close_fd(fds[1]);
          return ec;
        }
      }
#endif
      read_fd = fds[0];
      write_fd = fds[1];
      sink = &posix::signal_registry::instance().acquire(write_fd);
      op.kind = op_kind::poll;
      op.fd = read_fd;
      op.events = io_events::readable;
      op.user = this;
      op.owner = nullptr;  // the service's own: no handle's close waits for it
      op.complete = &readable;
    }
    if (op.in_flight() || op.linked) return {};
    return loop.submit(op);
  }

  void add(signal_record& r) noexcept {
    r.prev_watch = nullptr;
    r.next_watch = head;
    if (head != nullptr) head->prev_watch = &r;
    head = &r;
  }
  void remove(signal_record& r) noexcept {
    (r.prev_watch != nullptr ? r.prev_watch->next_watch : head) = r.next_watch;
    if (r.next_watch != nullptr) r.next_watch->prev_watch = r.prev_watch;
    r.next_watch = r.prev_watch = nullptr;
  }

  static void readable(operation& o) {
    auto& s = *static_cast<signal_service*>(o.user);
    if (!o.more()) {
      // The watch ended: cancelled at teardown, or the backend dropped it.
      if (o.error != std::errc::operation_canceled && s.head != nullptr) (void)s.open();
      return;
    }
    s.drain();
  }

  // Drain the pipe, then take the counts (the handler counts, then writes).
  void drain() {
    char buf[256];
    for (;;) {
      const ssize_t n = ::read(read_fd, buf, sizeof buf);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    for (int signo = 1; signo < posix::signal_limit; ++signo) {
      if (sink->caught[signo].load(std::memory_order_relaxed) == 0) continue;
      const std::uint32_t count = sink->caught[signo].exchange(0, std::memory_order_seq_cst);
      for (std::uint32_t i = 0; i < count; ++i) {
        if (!deliver(signo)) break;
      }
    }
  }

  // Run the callback of every handle watching `signo` now; false when none does.
  bool deliver(int signo) {
    targets.clear();
    for (signal_record* r = head; r != nullptr; r = r->next_watch)
      if (r->signo == signo) targets.emplace_back(*r);
    if (targets.empty()) return false;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      signal_record* r = targets[i].get();
      if (r == nullptr || !r->watching || r->closing || r->signo != signo) continue;
      if (r->oneshot) stop_watch(*r);
      invoke_handle_callback(loop, r->fn, signo);
    }
    return true;
  }

  /// Stop a record's watch (stop(), one-shot delivery, close, teardown).
  void stop_watch(signal_record& r) noexcept {
    if (!r.watching) return;
    r.watching = false;
    remove(r);
    if (sink != nullptr) posix::signal_registry::instance().unwatch(*sink, r.signo);
    if (r.loop != nullptr && !r.closing) loop.deactivate(r);
  }

  loop_core& loop;
  posix::signal_sink* sink = nullptr;
  int read_fd = -1;
  int write_fd = -1;
  operation op;
  signal_record* head = nullptr;
  std::vector<record_ref<signal_record>> targets;
};

inline signal_record::~signal_record() {
  if (watching && service != nullptr) service->stop_watch(*this);
}

}  // namespace detail

/// A handle watching one signal (Node's process.on(signal), libuv's uv_signal_t).
class signal_handle : public basic_handle<signal_handle> {
 public:
  signal_handle() noexcept = default;
  /// A handle on `loop`, not watching yet.
  explicit signal_handle(loop_core& loop) : basic_handle<signal_handle>(make(loop)) {}

  /// Watch `signo`: cb(signo) in the poll phase for every delivery, until
  /// stop() or close(). A started handle moves to the new signal. An
  /// invalid signal (0, out of range, SIGKILL, SIGSTOP), a closed handle or
  /// a backend that cannot watch the self-pipe gives an error.
  std::error_code start(int signo, signal_callback cb) { return begin(signo, std::move(cb), false); }
  /// As start(), for one delivery: the handle stops before cb runs (libuv's uv_signal_start_oneshot).
  std::error_code start_oneshot(int signo, signal_callback cb) { return begin(signo, std::move(cb), true); }

  /// Stop watching (the handle stays usable).
  void stop() {
    if (auto* r = record<detail::signal_record>()) r->service->stop_watch(*r);
  }

  /// The signal watched, or 0.
  [[nodiscard]] int signum() const noexcept {
    auto* r = record<detail::signal_record>();
    return r != nullptr && r->watching ? r->signo : 0;
  }

 private:
  std::error_code begin(int signo, signal_callback cb, bool oneshot) {
    auto* r = record<detail::signal_record>();
    if (r == nullptr) return std::make_error_code(std::errc::bad_file_descriptor);
    PHASELOOP_ASSERT(static_cast<bool>(cb), "a signal handle was started with an empty callback");
    if (signo <= 0 || signo >= detail::posix::signal_limit || signo == SIGKILL || signo == SIGSTOP)
      return std::make_error_code(std::errc::invalid_argument);
    detail::signal_service& s = *r->service;
    if (std::error_code ec = s.open()) return ec;
    if (!(r->watching && r->signo == signo)) {
      if (std::error_code ec = detail::posix::signal_registry::instance().watch(*s.sink, signo)) return ec;
      if (r->watching) {  // moving to another signal
        detail::posix::signal_registry::instance().unwatch(*s.sink, r->signo);
      } else {
        s.add(*r);
      }
      r->watching = true;
      r->signo = signo;
    }
    r->oneshot = oneshot;
    r->fn = std::move(cb);
    r->loop->activate(*r);
    return {};
  }

  static handle_record& make(loop_core& loop) {
    auto& s = loop.service<detail::signal_service>();
    auto& r = loop.make_record<detail::signal_record>();
    r.service = &s;
    r.stop = &stop_record;
    return r;
  }

  static void stop_record(handle_record& base) {
    auto& r = static_cast<detail::signal_record&>(base);
    r.service->stop_watch(r);
  }
};

/// A handle on `loop` running cb(signo) for every delivery of `signo`; `ec`
/// says why it could not start (the handle is then empty).
inline signal_handle on_signal(loop_core& loop, int signo, signal_callback cb, std::error_code& ec) {
  signal_handle h(loop);
  ec = h.start(signo, std::move(cb));
  if (ec) return signal_handle{};
  return h;
}

/// As on_signal, for the next delivery only (Node's process.once(signal)).
inline signal_handle once_signal(loop_core& loop, int signo, signal_callback cb, std::error_code& ec) {
  signal_handle h(loop);
  ec = h.start_oneshot(signo, std::move(cb));
  if (ec) return signal_handle{};
  return h;
}

/// As on_signal; throws std::system_error when the signal cannot be watched.
inline signal_handle on_signal(loop_core& loop, int signo, signal_callback cb) {
  std::error_code ec;
  signal_handle h = on_signal(loop, signo, std::move(cb), ec);
  if (ec) throw std::system_error(ec, "phaseloop::on_signal");
  return h;
}

/// As once_signal; throws std::system_error when the signal cannot be watched.
inline signal_handle once_signal(loop_core& loop, int signo, signal_callback cb) {
  std::error_code ec;
  signal_handle h = once_signal(loop, signo, std::move(cb), ec);
  if (ec) throw std::system_error(ec, "phaseloop::once_signal");
  return h;
}

}  // namespace phaseloop

#endif  // !_WIN32
