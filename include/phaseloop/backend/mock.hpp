#pragma once
// mock_backend: virtual time and scripted I/O for tests, including users'
// own. When the loop would block, the virtual clock jumps to the next timer
// instead of sleeping, so an hour of timers runs in microseconds.
//
// I/O is scripted per descriptor number; no descriptor is opened:
//   - poll operations see readiness that tests inject();
//   - reads and receives take the bytes tests feed(), one chunk per read at
//     most (a short read), then the end of stream after feed_eof();
//   - writes and sends complete into a buffer tests read with
//     take_written(); limit_writes() makes them partial (backpressure);
//   - accepts take connections from feed_connection(), receives from
//     feed_datagram(); connects and shutdowns succeed;
//   - fail() makes the next operation of a kind on a descriptor complete
//     with an error, stall() makes the next progress on it a spurious
//     wakeup (EAGAIN: nothing happens).
// Completions arrive at the next poll (or, with set_complete_at_submit,
// during submit where they can, as a readiness backend's writes do); cancel
// lets go at once, or with set_async_cancel completes later with
// operation_canceled, as io_uring and IOCP do.

#include <phaseloop/concepts.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace phaseloop {

class mock_backend {
 public:
  static constexpr bool completion_based = false;
  /// Every socket and stream kind; file operations go to the executor.
  static constexpr bool supports(op_kind kind) noexcept {
    return static_cast<unsigned>(kind) <= static_cast<unsigned>(op_kind::shutdown);
  }

  /// A datagram fed to, or sent from, a scripted socket.
  struct datagram {
    std::string bytes;
    std::string address;  ///< the raw sockaddr bytes (empty: the connected peer)
  };

  mock_backend() = default;
  mock_backend(const mock_backend&) = delete;
  mock_backend& operator=(const mock_backend&) = delete;

  // --- the backend contract ---------------------------------------------

  [[nodiscard]] std::chrono::milliseconds now() const noexcept {
    std::lock_guard lock(mutex_);
    return now_;
  }
  /// Virtual nanoseconds; wraps past 2^63 ns (about 2^43 ms of virtual
  /// uptime), which is harmless because only differences are used.
  [[nodiscard]] std::chrono::nanoseconds hrtime() const noexcept {
    const auto ms = static_cast<std::uint64_t>(now().count());
    return std::chrono::nanoseconds(static_cast<std::int64_t>(ms * 1000000u));
  }

  std::error_code submit(operation& op) {
    if (!supports(op.kind)) return std::make_error_code(std::errc::operation_not_supported);
    if (op.fd < 0) return std::make_error_code(std::errc::bad_file_descriptor);
    std::lock_guard lock(mutex_);
    descriptor& d = fds_[op.fd];
    op.flags = static_cast<std::uint8_t>(op.flags & ~op_flag::more);
    if (op.kind == op_kind::poll) {
      if (d.poll_op != nullptr && d.poll_op != &op) return std::make_error_code(std::errc::device_or_resource_busy);
      d.poll_op = &op;
      op.state = op_state::submitted;
      return {};
    }
    op.state = op_state::submitted;
    queue_of(d, op.kind).push_back(&op);
    ++submitted_[static_cast<std::size_t>(op.kind)];
    if (complete_at_submit_) {
      op_queue done;
      progress(op.fd, d, done);
      if (done.front() == &op) {  // it finished at once: the loop delivers it
        done.pop_front();
        op.state = op_state::completed;
      }
      ready_ops_.splice_back(done);
    }
    return {};
  }

  bool cancel(operation& op) {
    std::lock_guard lock(mutex_);
    auto it = fds_.find(op.fd);
    bool held = false;
    if (it != fds_.end()) {
      descriptor& d = it->second;
      if (op.kind == op_kind::poll) {
        held = d.poll_op == &op;
        if (held) d.poll_op = nullptr;
      } else {
        auto& q = queue_of(d, op.kind);
        auto pos = std::find(q.begin(), q.end(), &op);
        held = pos != q.end();
        if (held) q.erase(pos);
      }
    }
    if (!async_cancel_ || !held) return true;
    op.state = op_state::cancelling;
    cancelled_.push_back(&op);  // completes with operation_canceled at the next poll
    return false;
  }

  void poll(std::chrono::milliseconds timeout, op_queue& completed) {
    std::unique_lock lock(mutex_);
    ++polls_;
    op_queue done;
    done.splice_back(ready_ops_);
    collect(done);
    if (done.empty() && !woken_ && cancelled_.empty()) {
      if (timeout > std::chrono::milliseconds::zero()) {
        if (auto_advance_) now_ += timeout;
      } else if (timeout < std::chrono::milliseconds::zero()) {
        // Nothing can happen but a wakeup or injection from another thread.
        wakeup_cv_.wait(lock, [&] { return woken_ || !ready_.empty() || !cancelled_.empty(); });
        collect(done);
      }
    }
    woken_ = false;
    for (operation* op : std::exchange(cancelled_, {})) {
      // Exactly one more completion: if one is still queued, it becomes it.
      op->revents = io_events::none;
      op->error = std::make_error_code(std::errc::operation_canceled);
      op->state = op_state::completed;
      op->flags = static_cast<std::uint8_t>(op->flags & ~op_flag::more);
      if (!op->linked) done.push_back(*op);
    }
    completed.splice_back(done);
  }

  void wakeup() {
    {
      std::lock_guard lock(mutex_);
      woken_ = true;
    }
    wakeup_cv_.notify_one();
  }

  std::error_code close(native_handle fd) {
    std::lock_guard lock(mutex_);
    if (fd < 0) return std::make_error_code(std::errc::bad_file_descriptor);
    auto it = fds_.find(fd);
    if (it != fds_.end()) {
      descriptor& d = it->second;
      // Operations left on a descriptor closed under them fail, never hang.
      for (auto* q : {&d.readers, &d.writers})
        for (operation* op : *q) finish(*op, std::make_error_code(std::errc::bad_file_descriptor), ready_ops_);
      if (d.poll_op != nullptr && !d.poll_op->linked)
        finish(*d.poll_op, std::make_error_code(std::errc::bad_file_descriptor), ready_ops_);
      fds_.erase(it);
    }
    closed_.push_back(fd);
    return {};
  }

  // --- what tests drive: time ---------------------------------------------

  /// Move the virtual clock forward.
  void advance(std::chrono::milliseconds by) {
    std::lock_guard lock(mutex_);
    if (by > std::chrono::milliseconds::zero()) now_ += by;
  }

  /// Set the virtual clock; it never moves backwards.
  void set_time(std::chrono::milliseconds to) {
    std::lock_guard lock(mutex_);
    if (to > now_) now_ = to;
  }

  /// Whether a blocking poll jumps the clock to its timeout (default) or
  /// returns at once, leaving time to the test.
  void set_auto_advance(bool on) {
    std::lock_guard lock(mutex_);
    auto_advance_ = on;
  }

  // --- what tests drive: the backend's style --------------------------------

  /// Whether cancel() lets go of an operation at once (the default, as epoll
  /// and poll do) or, as io_uring and IOCP do, keeps it until the next poll
  /// completes it with operation_canceled.
  void set_async_cancel(bool on) {
    std::lock_guard lock(mutex_);
    async_cancel_ = on;
  }

  /// Whether an operation that can finish at once does so during submit, as
  /// a readiness backend's write to an idle socket does (default: no, every
  /// completion arrives at the next poll).
  void set_complete_at_submit(bool on) {
    std::lock_guard lock(mutex_);
    complete_at_submit_ = on;
  }

  // --- what tests drive: readiness and data ----------------------------------

  /// Make `fd` report `events` to its poll operation at the next poll (thread-safe).
  void inject(native_handle fd, io_events events) {
    {
      std::lock_guard lock(mutex_);
      ready_.emplace_back(fd, events);
    }
    wakeup_cv_.notify_one();
  }

  /// Bytes the next read or receive on `fd` returns (each chunk at most one
  /// read's worth: a read never joins two chunks).
  void feed(native_handle fd, std::string_view bytes) {
    std::lock_guard lock(mutex_);
    if (!bytes.empty()) fds_[fd].inbound.emplace_back(bytes);
  }

  /// End of stream on `fd` once the fed bytes are read.
  void feed_eof(native_handle fd) {
    std::lock_guard lock(mutex_);
    fds_[fd].eof = true;
  }

  /// A connection for the next accept on `listener`: the descriptor it
  /// returns, and the peer's raw sockaddr bytes.
  void feed_connection(native_handle listener, native_handle accepted, std::string address = {}) {
    std::lock_guard lock(mutex_);
    fds_[listener].connections.emplace_back(accepted, std::move(address));
  }

  /// A datagram for the next recvfrom on `fd`.
  void feed_datagram(native_handle fd, std::string_view bytes, std::string address = {}) {
    std::lock_guard lock(mutex_);
    fds_[fd].datagrams.push_back(datagram{std::string(bytes), std::move(address)});
  }

  /// The next operation of `kind` on `fd` completes with `error`.
  void fail(native_handle fd, op_kind kind, std::error_code error) {
    std::lock_guard lock(mutex_);
    fds_[fd].failures.emplace_back(kind, error);
  }

  /// The next `count` progress checks on `fd` find nothing (spurious wakeups: EAGAIN).
  void stall(native_handle fd, std::size_t count = 1) {
    std::lock_guard lock(mutex_);
    fds_[fd].stalls += count;
  }

  /// Writes on `fd` accept at most `bytes` more (partial writes; a write
  /// completes only once all its bytes went). no_limit lifts it.
  static constexpr std::size_t no_limit = static_cast<std::size_t>(-1);
  void limit_writes(native_handle fd, std::size_t bytes) {
    std::lock_guard lock(mutex_);
    fds_[fd].write_budget = bytes;
  }

  /// Everything written or sent on `fd` so far (then cleared).
  std::string take_written(native_handle fd) {
    std::lock_guard lock(mutex_);
    return std::exchange(written_[fd], {});
  }

  /// Datagrams sent from `fd` so far (then cleared).
  std::vector<datagram> take_sent(native_handle fd) {
    std::lock_guard lock(mutex_);
    return std::exchange(sent_[fd], {});
  }

  // --- what tests observe -------------------------------------------------

  /// Whether an operation is submitted on `fd`.
  [[nodiscard]] bool watching(native_handle fd) const {
    std::lock_guard lock(mutex_);
    auto it = fds_.find(fd);
    if (it == fds_.end()) return false;
    const descriptor& d = it->second;
    return d.poll_op != nullptr || !d.readers.empty() || !d.writers.empty();
  }

  /// Operations of `kind` submitted so far.
  [[nodiscard]] std::uint64_t submitted(op_kind kind) const {
    std::lock_guard lock(mutex_);
    return submitted_[static_cast<std::size_t>(kind)];
  }

  /// Descriptors closed through the backend, in order.
  [[nodiscard]] std::vector<native_handle> closed() const {
    std::lock_guard lock(mutex_);
    return closed_;
  }

  /// Descriptors shut down for writing (the peer sees the end of stream).
  [[nodiscard]] bool shut_down(native_handle fd) const {
    std::lock_guard lock(mutex_);
    return std::find(shut_down_.begin(), shut_down_.end(), fd) != shut_down_.end();
  }

  /// How many times the loop polled.
  [[nodiscard]] std::uint64_t polls() const {
    std::lock_guard lock(mutex_);
    return polls_;
  }

 private:
  struct descriptor {
    operation* poll_op = nullptr;
    std::deque<operation*> readers;  // accept, read, recv, recvfrom
    std::deque<operation*> writers;  // connect, write, send, sendto, shutdown
    std::deque<std::string> inbound;
    std::deque<std::pair<native_handle, std::string>> connections;
    std::deque<datagram> datagrams;
    std::deque<std::pair<op_kind, std::error_code>> failures;
    std::size_t write_budget = no_limit;
    std::size_t stalls = 0;
    bool eof = false;
  };

  static bool reads(op_kind kind) noexcept {
    return kind == op_kind::accept || kind == op_kind::read || kind == op_kind::recv || kind == op_kind::recvfrom;
  }
  static std::deque<operation*>& queue_of(descriptor& d, op_kind kind) noexcept {
    return reads(kind) ? d.readers : d.writers;
  }

  static void finish(operation& op, std::error_code ec, op_queue& done) noexcept {
    op.error = ec;
    op.state = op_state::completed;
    op.flags = static_cast<std::uint8_t>(op.flags & ~op_flag::more);
    done.push_back(op);
  }

  static std::size_t scatter(operation& op, std::string_view bytes) noexcept {
    std::size_t n = 0;
    for (std::uint32_t i = 0; i < op.buffer_count && n < bytes.size(); ++i) {
      const std::size_t take = std::min(op.buffers[i].size, bytes.size() - n);
      if (take != 0) std::memcpy(op.buffers[i].data, bytes.data() + n, take);
      n += take;
    }
    return n;
  }

  // Gather the bytes of op's buffers in [from, from + count).
  static void gather(const operation& op, std::size_t from, std::size_t count, std::string& out) {
    for (std::uint32_t i = 0; i < op.buffer_count && count > 0; ++i) {
      const io_buffer& b = op.buffers[i];
      if (from >= b.size) {
        from -= b.size;
        continue;
      }
      const std::size_t take = std::min(b.size - from, count);
      out.append(static_cast<const char*>(b.data) + from, take);
      count -= take;
      from = 0;
    }
  }

  static void set_address(operation& op, const std::string& address) noexcept {
    const std::size_t n = std::min<std::size_t>(address.size(), op.address_length);
    if (op.address != nullptr && n != 0) std::memcpy(op.address, address.data(), n);
    op.address_length = static_cast<std::uint32_t>(op.address != nullptr ? n : 0);
  }

  // Try the front operation of a queue; true when it completed.
  bool try_front(native_handle fd, descriptor& d, std::deque<operation*>& q, op_queue& done) {
    if (q.empty()) return false;
    operation& op = *q.front();
    for (auto it = d.failures.begin(); it != d.failures.end(); ++it) {
      if (it->first != op.kind) continue;
      const std::error_code ec = it->second;
      d.failures.erase(it);
      q.pop_front();
      finish(op, ec, done);
      return true;
    }
    switch (op.kind) {
      case op_kind::read:
      case op_kind::recv:
        if (!d.inbound.empty()) {
          std::string& chunk = d.inbound.front();
          const std::size_t n = scatter(op, chunk);
          op.transferred = n;
          op.received = op.buffer_count != 0 ? op.buffers[0].data : nullptr;
          chunk.erase(0, n);
          if (chunk.empty()) d.inbound.pop_front();
        } else if (d.eof) {
          op.transferred = 0;
        } else {
          return false;
        }
        break;
      case op_kind::recvfrom: {
        if (d.datagrams.empty()) return false;
        datagram g = std::move(d.datagrams.front());
        d.datagrams.pop_front();
        op.transferred = scatter(op, g.bytes);
        op.received = op.buffer_count != 0 ? op.buffers[0].data : nullptr;
        op.msg_flags = op.transferred < g.bytes.size() ? MSG_TRUNC_value : 0;
        set_address(op, g.address);
        break;
      }
      case op_kind::accept: {
        if (d.connections.empty()) return false;
        auto [accepted, address] = std::move(d.connections.front());
        d.connections.pop_front();
        op.accepted = accepted;
        set_address(op, address);
        break;
      }
      case op_kind::write:
      case op_kind::send: {
        const std::size_t total = op.buffer_bytes();
        const std::size_t n = std::min(total - op.transferred, d.write_budget);
        if (n == 0 && total != 0) return false;
        gather(op, op.transferred, n, written_[fd]);
        op.transferred += n;
        if (d.write_budget != no_limit) d.write_budget -= n;
        if (op.transferred < total) return false;
        break;
      }
      case op_kind::sendto: {
        datagram g;
        gather(op, 0, op.buffer_bytes(), g.bytes);
        if (op.address != nullptr) g.address.assign(static_cast<const char*>(op.address), op.address_length);
        op.transferred = g.bytes.size();
        sent_[fd].push_back(std::move(g));
        break;
      }
      case op_kind::shutdown:
        shut_down_.push_back(fd);
        break;
      case op_kind::connect:
      default:
        break;
    }
    q.pop_front();
    finish(op, {}, done);
    return true;
  }

  // Complete whatever the script lets operations on fd do now.
  void progress(native_handle fd, descriptor& d, op_queue& done) {
    if (d.readers.empty() && d.writers.empty()) return;
    if (d.stalls > 0) {
      --d.stalls;
      return;
    }
    while (try_front(fd, d, d.readers, done)) {}
    while (try_front(fd, d, d.writers, done)) {}
  }

  void collect(op_queue& done) {
    for (auto& [fd, d] : fds_) progress(fd, d, done);
    for (auto [fd, events] : std::exchange(ready_, {})) {
      auto it = fds_.find(fd);
      if (it == fds_.end() || it->second.poll_op == nullptr) continue;
      operation& op = *it->second.poll_op;
      const io_events got = events & (op.events | io_events::hangup | io_events::error);
      if (!any(got)) continue;
      if (op.linked) {
        op.revents |= got;
      } else {
        op.revents = got;
        op.error = {};
        op.flags = static_cast<std::uint8_t>(op.flags | op_flag::more);
        done.push_back(op);
      }
    }
  }

  static constexpr int MSG_TRUNC_value = 0x20;  // MSG_TRUNC on Linux and the BSDs

  mutable std::mutex mutex_;
  std::condition_variable wakeup_cv_;
  std::chrono::milliseconds now_{0};
  std::map<native_handle, descriptor> fds_;  // ordered: progress is deterministic
  std::unordered_map<native_handle, std::string> written_;
  std::unordered_map<native_handle, std::vector<datagram>> sent_;
  std::vector<std::pair<native_handle, io_events>> ready_;
  std::vector<operation*> cancelled_;
  std::vector<native_handle> closed_;
  std::vector<native_handle> shut_down_;
  op_queue ready_ops_;  // completed outside a poll
  std::uint64_t submitted_[op_kind_count] = {};
  std::uint64_t polls_ = 0;
  bool woken_ = false;
  bool auto_advance_ = true;
  bool async_cancel_ = false;
  bool complete_at_submit_ = false;
};

static_assert(backend<mock_backend>);

}  // namespace phaseloop
