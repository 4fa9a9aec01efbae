#pragma once
// io_uring_backend: Linux's completion backend (docs/design.md §1.1), on raw
// system calls over <linux/io_uring.h> (no liburing, no link dependency).
//
//   - Each operation kind is prepared as a submission entry from its record
//     (accept, connect, read/readv, write/writev, recv, recvmsg, send,
//     sendmsg, poll, shutdown; cancel through IORING_OP_ASYNC_CANCEL). The
//     msghdr a recvmsg/sendmsg needs lives in the operation's scratch area.
//   - Entries are batched and entered once per loop iteration, in poll();
//     a blocking poll is one io_uring_enter with GETEVENTS and a timeout.
//   - The completion queue is read in user space: a non-blocking poll with
//     nothing to submit and nothing completed makes no system call.
//   - With io_uring_options::eager, as the reactor does, a write to an idle
//     socket is tried at submit (it usually goes straight out), and a read
//     right after one that filled its buffer too; only what would block goes
//     to the ring. Off by default: batching is what io_uring is for.
//   - Cross-thread wakeup: a read of an eventfd kept in flight on the ring.
//   - Cancellation: cancel() queues an ASYNC_CANCEL and returns false; the
//     operation's own completion (ECANCELED, or its result if it won the
//     race) is its one final completion, and its buffers stay in use until
//     then. The destructor cancels everything and waits for the kernel to
//     give every operation back before unmapping the rings.
//   - Completion-queue overflow: IORING_FEAT_NODROP is required; an
//     overflowed queue is flushed with GETEVENTS; a full submission queue is
//     entered early (reaping completions if the kernel asks, EBUSY).
//   - Poll operations are one-shot POLL_ADDs re-armed at the next poll, so
//     readiness is level-triggered, as on epoll.
//
// uring_or_epoll_backend holds an io_uring_backend, or an epoll_backend when
// io_uring_setup is refused (ENOSYS/EPERM under a seccomp profile, an old
// kernel without the features needed) or PHASELOOP_NO_IO_URING=1 is set, and
// says which it chose (name()).

#include <phaseloop/backend/epoll.hpp>
#include <phaseloop/concepts.hpp>
#include <phaseloop/detail/ms_clock.hpp>
#include <phaseloop/detail/posix/perform.hpp>
#include <phaseloop/detail/posix/socket.hpp>
#include <phaseloop/detail/posix/system.hpp>
#include <phaseloop/operation.hpp>

#if defined(__linux__) && __has_include(<linux/io_uring.h>)

#include <linux/io_uring.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <system_error>
#include <vector>

/// Defined where io_uring_backend exists (Linux with <linux/io_uring.h>).
#define PHASELOOP_HAS_IO_URING 1

// Constants newer than some installed kernel headers (the kernel answers
// EINVAL for what it lacks, and setup retries without it).
#if !defined(IORING_SETUP_SUBMIT_ALL)
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#if !defined(IORING_SETUP_COOP_TASKRUN)
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#if !defined(IORING_SETUP_TASKRUN_FLAG)
#define IORING_SETUP_TASKRUN_FLAG (1U << 9)
#endif
#if !defined(IORING_SQ_TASKRUN)
#define IORING_SQ_TASKRUN (1U << 2)
#endif
#if !defined(IORING_ASYNC_CANCEL_ALL)
#define IORING_ASYNC_CANCEL_ALL (1U << 0)
#endif
#if !defined(IORING_ASYNC_CANCEL_FD)
#define IORING_ASYNC_CANCEL_FD (1U << 1)
#endif
#if !defined(IORING_ASYNC_CANCEL_ANY)
#define IORING_ASYNC_CANCEL_ANY (1U << 2)
#endif

namespace phaseloop {

namespace detail::uring {

inline int sys_setup(unsigned entries, io_uring_params* p) noexcept {
  return static_cast<int>(::syscall(__NR_io_uring_setup, entries, p));
}
inline int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags, const void* arg,
                     std::size_t arg_size) noexcept {
  return static_cast<int>(::syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, arg, arg_size));
}

template <class T>
inline T load_acquire(const T* p) noexcept {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
template <class T>
inline void store_release(T* p, T v) noexcept {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/// The backend's per-operation data, in operation::scratch.
struct op_data {
  std::uint8_t phase;  // see io_uring_backend::phase
  std::uint8_t wait_connect;
  std::uint8_t unused[2];
  std::uint32_t park;  // index in the parked list, or none
  msghdr msg;          // recvmsg/sendmsg
};
static_assert(sizeof(op_data) <= operation::scratch_size, "io_uring's per-operation data must fit the scratch");
static_assert(sizeof(io_buffer) == sizeof(iovec) && alignof(io_buffer) == alignof(iovec),
              "io_buffer is laid out as iovec");

inline op_data& data(operation& op) noexcept { return *reinterpret_cast<op_data*>(op.scratch); }

}  // namespace detail::uring

/// Sizes an io_uring_backend's rings are made with.
struct io_uring_options {
  /// Submission-queue entries (rounded up to a power of two by the kernel).
  unsigned sq_entries = 256;
  /// Completion-queue entries (more operations than this may be in flight:
  /// the kernel keeps overflowed completions until the queue is drained).
  unsigned cq_entries = 4096;
  /// Try a write to an idle socket, and a read right after one that filled
  /// its buffer, with a system call at submit, as a readiness backend does
  /// (it may then complete during submit). Off by default: everything waits
  /// for the iteration's one io_uring_enter, so a ping-pong round trip costs
  /// two system calls instead of four.
  bool eager = false;
};

/// The io_uring completion backend. Construction throws std::system_error
/// when io_uring_setup is refused or the kernel lacks what it needs
/// (IORING_FEAT_NODROP, EXT_ARG, SINGLE_MMAP, RW_CUR_POS: Linux 5.11+).
class io_uring_backend {
 public:
  static constexpr bool completion_based = true;
  /// Socket and stream kinds (file kinds stay on the executor for now).
  static constexpr bool supports(op_kind kind) noexcept {
    return static_cast<unsigned>(kind) <= static_cast<unsigned>(op_kind::shutdown);
  }

  io_uring_backend() : io_uring_backend(io_uring_options{}) {}

  explicit io_uring_backend(const io_uring_options& options) : eager_(options.eager) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw std::system_error(errno, std::system_category(), "eventfd");
    if (const int error = setup(options)) {
      ::close(wake_fd_);
      throw std::system_error(error, std::system_category(), "io_uring_setup");
    }
  }

  io_uring_backend(const io_uring_backend&) = delete;
  io_uring_backend& operator=(const io_uring_backend&) = delete;

  ~io_uring_backend() {
    drain_kernel();
    ::munmap(ring_, ring_size_);
    ::munmap(sqes_, sqes_size_);
    ::close(ring_fd_);
    ::close(wake_fd_);
  }

  [[nodiscard]] std::chrono::milliseconds now() const noexcept {
    return std::chrono::milliseconds(static_cast<std::int64_t>(clock_.now_ms()));
  }

  [[nodiscard]] std::chrono::nanoseconds hrtime() const noexcept { return detail::monotonic_hrtime(); }

  std::error_code submit(operation& op) {
    if (!supports(op.kind)) return std::make_error_code(std::errc::operation_not_supported);
    if (op.fd < 0 || op.fd > INT_MAX) return std::make_error_code(std::errc::bad_file_descriptor);
    descriptor* d = find_or_grow(static_cast<int>(op.fd));
    if (d == nullptr) return std::make_error_code(std::errc::bad_file_descriptor);
    if (op.kind == op_kind::poll) {
      const io_events rw = io_events::readable | io_events::writable;
      if (!any(op.events) || any(op.events & ~rw)) return std::make_error_code(std::errc::invalid_argument);
    }
    op.flags = static_cast<std::uint8_t>(op.flags & ~(op_flag::more | op_flag::backend_bits));
    if (op.kind == op_kind::shutdown) {
      // Never blocks: done at once, as on the reactor, so a half-close is
      // ordered against the peer's events exactly as on epoll (Node's order).
      (void)detail::posix::perform(op);
      op.state = op_state::completed;
      return {};
    }
    auto& data = detail::uring::data(op);
    data.phase = phase_idle;
    data.wait_connect = 0;
    data.park = no_park;
    switch (detail::posix::side_of(op.kind)) {
      case side::read:
        if (eager_ && d->readers == 0 && d->read_ready) {
          const detail::posix::perform_result r = detail::posix::perform(op);
          if (r != detail::posix::perform_result::not_done) {
            d->read_ready = r == detail::posix::perform_result::done && !op.error;
            op.state = op_state::completed;
            return {};
          }
          d->read_ready = false;
        }
        ++d->readers;
        if (d->poll_first) {
          // The last accept found no descriptor to take (EMFILE): the kernel's
          // accept would fail at once again, so wait for a connection first.
          d->poll_first = false;
          op.state = op_state::submitted;
          prepare(op, phase_wait);
          return {};
        }
        break;
      case side::write:
        if (eager_ && op.kind != op_kind::connect && d->writers == 0 && d->write_ready) {
          if (detail::posix::perform(op) != detail::posix::perform_result::not_done) {
            op.state = op_state::completed;
            return {};
          }
          d->write_ready = false;
        }
        ++d->writers;
        break;
      case side::poll:
      case side::none:
        break;
    }
    op.state = op_state::submitted;
    prepare(op, phase_op);
    return {};
  }

  bool cancel(operation& op) {
    if (!op.in_flight()) return true;
    auto& data = detail::uring::data(op);
    if (data.phase == phase_parked_op || data.phase == phase_parked_poll || data.phase == phase_parked_wait) {
      unpark(op);
      release(op);
      return true;
    }
    if (data.phase != phase_op && data.phase != phase_wait) return true;
    io_uring_sqe& sqe = next_sqe();
    sqe.opcode = IORING_OP_ASYNC_CANCEL;
    sqe.fd = -1;
    sqe.addr = reinterpret_cast<std::uintptr_t>(&op);
    sqe.user_data = tag_ignore;
    return false;
  }

  void poll(std::chrono::milliseconds timeout, op_queue& completed) {
    completed.splice_back(ready_);
    flush_parked(true);
    if (!wake_armed_) arm_wakeup();
    reap(completed, false);  // user space only
    if (timeout == std::chrono::milliseconds::zero() || !completed.empty()) {
      // One enter submits the iteration's entries and runs the kernel's
      // pending task work (completions it holds back); none when there is
      // nothing to submit and nothing held back.
      if (unsubmitted_ != 0 || (sq_flags() & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN)) != 0)
        enter(0, IORING_ENTER_GETEVENTS, nullptr);
    } else {
      __kernel_timespec ts{};
      const __kernel_timespec* limit = nullptr;
      if (timeout > std::chrono::milliseconds::zero()) {
        ts.tv_sec = static_cast<long long>(timeout.count() / 1000);
        ts.tv_nsec = static_cast<long long>(timeout.count() % 1000) * 1000000;
        limit = &ts;
      }
      enter(1, IORING_ENTER_GETEVENTS, limit);
    }
    reap(completed);
    flush_parked(false);  // resubmissions go in with the next enter
  }

  void wakeup() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_fd_, &one, sizeof one);
  }

  std::error_code close(native_handle handle) {
    if (handle < 0 || handle > INT_MAX) return std::make_error_code(std::errc::bad_file_descriptor);
    const int fd = static_cast<int>(handle);
    if (static_cast<std::size_t>(fd) < fds_.size()) {
      descriptor& d = fds_[static_cast<std::size_t>(fd)];
      if (d.readers + d.writers != 0) {
        // Operations left on it fail, never hang (the ring holds its own
        // reference to the file): parked ones at once, the kernel's through
        // a cancel by descriptor.
        for (std::size_t i = parked_.size(); i-- > 0;) {
          operation& op = *parked_[i];
          if (op.fd != handle) continue;
          unpark(op);
          op.error = std::make_error_code(std::errc::bad_file_descriptor);
          op.revents = io_events::none;
          finish(op, ready_);
        }
        if (d.readers + d.writers != 0) {
          io_uring_sqe& sqe = next_sqe();
          sqe.opcode = IORING_OP_ASYNC_CANCEL;
          sqe.fd = fd;
          sqe.cancel_flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
          sqe.user_data = tag_ignore;
          enter(0, 0, nullptr);  // before the number can be reused
        }
      }
      d.read_ready = false;
      d.write_ready = true;
      d.poll_first = false;
    }
    return detail::posix::close_fd(fd);
  }

  /// Operations the kernel holds (the wakeup read aside).
  [[nodiscard]] std::size_t watched() const noexcept { return in_kernel_; }
  /// Entries of the completion queue (overflow beyond it is kept by the kernel).
  [[nodiscard]] unsigned cq_entries() const noexcept { return cq_entries_; }
  /// How many times a completion-queue overflow was flushed.
  [[nodiscard]] std::uint64_t overflow_flushes() const noexcept { return overflow_flushes_; }
  /// Turn io_uring_options::eager on or off.
  void set_eager(bool on) noexcept { eager_ = on; }
  /// io_uring_enter calls made so far.
  [[nodiscard]] std::uint64_t enters() const noexcept { return enters_; }
  /// The backend's name ("io_uring").
  [[nodiscard]] static constexpr const char* name() noexcept { return "io_uring"; }

 private:
  using side = detail::posix::readiness_side;

  static constexpr std::uint8_t phase_idle = 0;
  static constexpr std::uint8_t phase_op = 1;           // its own entry is in the kernel
  static constexpr std::uint8_t phase_wait = 2;         // a POLL_ADD for readiness is (it hit EAGAIN)
  static constexpr std::uint8_t phase_parked_op = 3;    // to be entered again (a partial write, a retry)
  static constexpr std::uint8_t phase_parked_poll = 4;  // a poll operation re-armed at the next poll
  static constexpr std::uint8_t phase_parked_wait = 5;  // to wait for readiness (it hit EAGAIN)
  static constexpr std::uint32_t no_park = UINT32_MAX;
  static constexpr std::uint64_t tag_ignore = 0;  // cancel entries
  static constexpr std::uint64_t tag_wake = 1;    // the eventfd read
  static constexpr std::uint64_t tag_wake_poll = 2;


  struct descriptor {
    std::uint32_t readers = 0;  // read-side operations submitted and not finally completed
    std::uint32_t writers = 0;
    bool read_ready = false;  // the last read filled its buffer: try the next one at submit
    bool write_ready = true;  // a write may go out at submit
    bool poll_first = false;  // accept: wait for readiness before the next attempt
  };

  // ---------------------------------------------------------------- setup

  int setup(const io_uring_options& options) {
    const unsigned extra[] = {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
                              IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, 0u};
    io_uring_params p{};
    int fd = -1;
    for (const unsigned flags : extra) {
      std::memset(&p, 0, sizeof p);
      p.flags = IORING_SETUP_CQSIZE | flags;
      p.cq_entries = options.cq_entries < options.sq_entries ? options.sq_entries : options.cq_entries;
      fd = detail::uring::sys_setup(options.sq_entries == 0 ? 1 : options.sq_entries, &p);
      if (fd >= 0 || errno != EINVAL) break;
    }
    if (fd < 0) return errno;
    ring_fd_ = fd;
    const unsigned needed = IORING_FEAT_SINGLE_MMAP | IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG | IORING_FEAT_RW_CUR_POS;
    if ((p.features & needed) != needed) {
      ::close(fd);
      return ENOSYS;
    }
    const std::size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(std::uint32_t);
    const std::size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
    ring_size_ = sq_size > cq_size ? sq_size : cq_size;
    ring_ = ::mmap(nullptr, ring_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (ring_ == MAP_FAILED) {
      const int error = errno;
      ::close(fd);
      return error;
    }
    sqes_size_ = p.sq_entries * sizeof(io_uring_sqe);
    void* sqes = ::mmap(nullptr, sqes_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (sqes == MAP_FAILED) {
      const int error = errno;
      ::munmap(ring_, ring_size_);
      ::close(fd);
      return error;
    }
    sqes_ = static_cast<io_uring_sqe*>(sqes);
    auto* base = static_cast<unsigned char*>(ring_);
    sq_head_ = reinterpret_cast<unsigned*>(base + p.sq_off.head);
    sq_tail_ = reinterpret_cast<unsigned*>(base + p.sq_off.tail);
    sq_flags_ = reinterpret_cast<unsigned*>(base + p.sq_off.flags);
    auto* array = reinterpret_cast<unsigned*>(base + p.sq_off.array);
    cq_head_ = reinterpret_cast<unsigned*>(base + p.cq_off.head);
    cq_tail_ = reinterpret_cast<unsigned*>(base + p.cq_off.tail);
    cqes_ = reinterpret_cast<io_uring_cqe*>(base + p.cq_off.cqes);
    sq_entries_ = p.sq_entries;
    sq_mask_ = *reinterpret_cast<unsigned*>(base + p.sq_off.ring_mask);
    cq_entries_ = p.cq_entries;
    cq_mask_ = *reinterpret_cast<unsigned*>(base + p.cq_off.ring_mask);
    for (unsigned i = 0; i < sq_entries_; ++i) array[i] = i;  // entry i is slot i
    tail_ = *sq_tail_;
    return 0;
  }

  // --------------------------------------------------- submission queue

  [[nodiscard]] unsigned sq_flags() const noexcept { return detail::uring::load_acquire(sq_flags_); }

  // The next free entry, zeroed; a full queue is entered first.
  io_uring_sqe& next_sqe() {
    while (tail_ - detail::uring::load_acquire(sq_head_) >= sq_entries_) {
      if (enter(0, 0, nullptr) < 0 && errno != EBUSY && errno != EAGAIN && errno != EINTR)
        throw std::system_error(errno, std::system_category(), "io_uring_enter");
    }
    io_uring_sqe& sqe = sqes_[tail_ & sq_mask_];
    std::memset(&sqe, 0, sizeof sqe);
    ++tail_;
    ++unsubmitted_;
    detail::uring::store_release(sq_tail_, tail_);
    return sqe;
  }

  // One io_uring_enter: submits what is queued and waits for `wait`
  // completions (with GETEVENTS), up to `limit`. Completions the kernel
  // cannot post yet (EBUSY: its overflow list is full) are reaped into
  // ready_ and the call repeated.
  int enter(unsigned wait, unsigned flags, const __kernel_timespec* limit) {
    io_uring_getevents_arg arg{};
    arg.sigmask = 0;
    arg.sigmask_sz = _NSIG / 8;
    arg.ts = reinterpret_cast<std::uintptr_t>(limit);
    if (wait != 0) flags |= IORING_ENTER_GETEVENTS;
    for (int attempts = 0;; ++attempts) {
      ++enters_;
      const int n = detail::uring::sys_enter(ring_fd_, unsubmitted_, wait, flags | IORING_ENTER_EXT_ARG, &arg,
                                             sizeof arg);
      if (n >= 0) {
        unsubmitted_ -= static_cast<unsigned>(n) < unsubmitted_ ? static_cast<unsigned>(n) : unsubmitted_;
        return n;
      }
      const int error = errno;
      if ((error == EBUSY || error == EAGAIN) && attempts < 64) {
        // Room in the completion queue first (the kernel holds overflowed
        // completions); then submit again, not waiting any more.
        const bool got = reap(ready_) != 0;
        flags |= IORING_ENTER_GETEVENTS;
        if (got) wait = 0;
        continue;
      }
      errno = error;
      return -1;  // ETIME, EINTR: poll returns; entries stay queued for the next enter
    }
  }

  void prepare(operation& op, std::uint8_t phase) {
    auto& data = detail::uring::data(op);
    data.phase = phase;
    ++in_kernel_;
    io_uring_sqe& sqe = next_sqe();
    sqe.fd = static_cast<int>(op.fd);
    sqe.user_data = reinterpret_cast<std::uintptr_t>(&op);
    if (phase == phase_wait) {
      sqe.opcode = IORING_OP_POLL_ADD;
      sqe.poll32_events = detail::posix::side_of(op.kind) == side::read ? POLLIN : POLLOUT;
      return;
    }
    const int nosig = detail::posix::no_sigpipe_flag;
    switch (op.kind) {
      case op_kind::poll: {
        unsigned events = 0;
        if (any(op.events & io_events::readable)) events |= POLLIN;
        if (any(op.events & io_events::writable)) events |= POLLOUT;
        sqe.opcode = IORING_OP_POLL_ADD;
        sqe.poll32_events = events;
        return;
      }
      case op_kind::accept:
        sqe.opcode = IORING_OP_ACCEPT;
        sqe.addr = reinterpret_cast<std::uintptr_t>(op.address);
        if (op.address != nullptr) sqe.addr2 = reinterpret_cast<std::uintptr_t>(&op.address_length);
        sqe.accept_flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
        return;
      case op_kind::connect:
        sqe.opcode = IORING_OP_CONNECT;
        sqe.addr = reinterpret_cast<std::uintptr_t>(op.address);
        sqe.off = op.address_length;
        return;
      case op_kind::shutdown:
        sqe.opcode = IORING_OP_SHUTDOWN;
        sqe.len = static_cast<unsigned>(op.msg_flags);
        return;
      case op_kind::read:
      case op_kind::recv:
        if (op.buffer_count == 1) {
          sqe.opcode = op.kind == op_kind::read ? IORING_OP_READ : IORING_OP_RECV;
          sqe.addr = reinterpret_cast<std::uintptr_t>(op.buffers[0].data);
          sqe.len = clamp(op.buffers[0].size);
        } else if (op.kind == op_kind::read) {
          sqe.opcode = IORING_OP_READV;
          sqe.addr = reinterpret_cast<std::uintptr_t>(op.buffers);
          sqe.len = op.buffer_count;
        } else {
          set_msg(op, 0, op.buffer_count, nullptr, 0);
          sqe.opcode = IORING_OP_RECVMSG;
          sqe.addr = reinterpret_cast<std::uintptr_t>(&data.msg);
        }
        if (op.kind == op_kind::read) sqe.off = ~0ull;  // the current position
        else sqe.msg_flags = static_cast<unsigned>(op.msg_flags);
        return;
      case op_kind::recvfrom:
        set_msg(op, 0, op.buffer_count, op.address, op.address_length);
        sqe.opcode = IORING_OP_RECVMSG;
        sqe.addr = reinterpret_cast<std::uintptr_t>(&data.msg);
        return;
      case op_kind::sendto:
        set_msg(op, 0, op.buffer_count, op.address, op.address != nullptr ? op.address_length : 0);
        sqe.opcode = IORING_OP_SENDMSG;
        sqe.addr = reinterpret_cast<std::uintptr_t>(&data.msg);
        sqe.msg_flags = static_cast<unsigned>(op.msg_flags | nosig);
        return;
      case op_kind::write:
      case op_kind::send: {
        // What is left past `transferred`: a buffer's tail alone, else the
        // remaining buffers as they are.
        std::size_t skip = op.transferred;
        std::uint32_t first = 0;
        while (first < op.buffer_count && skip >= op.buffers[first].size) skip -= op.buffers[first++].size;
        std::uint32_t count = op.buffer_count - first;
        if (count > detail::posix::max_iov) count = detail::posix::max_iov;
        const bool one = skip != 0 || count <= 1;
        if (one) {
          const io_buffer& b = op.buffers[first < op.buffer_count ? first : 0];
          sqe.opcode = op.kind == op_kind::write ? IORING_OP_WRITE : IORING_OP_SEND;
          sqe.addr = reinterpret_cast<std::uintptr_t>(static_cast<char*>(b.data) + skip);
          sqe.len = first < op.buffer_count ? clamp(b.size - skip) : 0u;
        } else if (op.kind == op_kind::write) {
          sqe.opcode = IORING_OP_WRITEV;
          sqe.addr = reinterpret_cast<std::uintptr_t>(op.buffers + first);
          sqe.len = count;
        } else {
          set_msg(op, first, count, nullptr, 0);
          sqe.opcode = IORING_OP_SENDMSG;
          sqe.addr = reinterpret_cast<std::uintptr_t>(&data.msg);
        }
        if (op.kind == op_kind::write) sqe.off = ~0ull;
        else sqe.msg_flags = static_cast<unsigned>(op.msg_flags | nosig);
        return;
      }
      case op_kind::file_open:
      case op_kind::file_close:
      case op_kind::file_read:
      case op_kind::file_write:
      case op_kind::file_fsync:
      case op_kind::file_stat:
        return;
    }
  }

  static unsigned clamp(std::size_t n) noexcept { return n > 0x7ffff000u ? 0x7ffff000u : static_cast<unsigned>(n); }

  static void set_msg(operation& op, std::uint32_t first, std::uint32_t count, void* name, std::uint32_t namelen) {
    msghdr& m = detail::uring::data(op).msg;
    std::memset(&m, 0, sizeof m);
    m.msg_iov = reinterpret_cast<iovec*>(op.buffers + first);
    m.msg_iovlen = count;
    m.msg_name = name;
    m.msg_namelen = detail::posix::sys_cast<socklen_t>(namelen);
  }

  void arm_wakeup() {
    io_uring_sqe& sqe = next_sqe();
    sqe.fd = wake_fd_;
    if (wake_poll_) {
      sqe.opcode = IORING_OP_POLL_ADD;
      sqe.poll32_events = POLLIN;
      sqe.user_data = tag_wake_poll;
    } else {
      sqe.opcode = IORING_OP_READ;
      sqe.addr = reinterpret_cast<std::uintptr_t>(&wake_value_);
      sqe.len = sizeof wake_value_;
      sqe.off = ~0ull;
      sqe.user_data = tag_wake;
    }
    wake_armed_ = true;
  }

  // ------------------------------------------------------ parked operations

  void park(operation& op, std::uint8_t phase) {
    auto& data = detail::uring::data(op);
    data.phase = phase;
    data.park = static_cast<std::uint32_t>(parked_.size());
    parked_.push_back(&op);
  }

  void unpark(operation& op) noexcept {
    auto& data = detail::uring::data(op);
    if (data.park != no_park && data.park < parked_.size()) {
      operation* last = parked_.back();
      parked_[data.park] = last;
      detail::uring::data(*last).park = data.park;
      parked_.pop_back();
    }
    data.park = no_park;
    data.phase = phase_idle;
  }

  // Enter parked operations again: resubmissions always, poll re-arms only
  // at the start of a poll (after the loop has run their last report).
  void flush_parked(bool polls) {
    for (std::size_t i = 0; i < parked_.size();) {
      operation& op = *parked_[i];
      const std::uint8_t phase = detail::uring::data(op).phase;
      if ((phase == phase_parked_poll && (!polls || op.linked))) {
        ++i;
        continue;
      }
      unpark(op);  // moves the last one here: look at index i again
      prepare(op, phase == phase_parked_wait ? phase_wait : phase_op);
    }
  }

  // Let go of an operation: it is no longer counted on its descriptor.
  void release(operation& op) noexcept {
    if (op.fd < 0 || static_cast<std::size_t>(op.fd) >= fds_.size()) return;
    descriptor& d = fds_[static_cast<std::size_t>(op.fd)];
    switch (detail::posix::side_of(op.kind)) {
      case side::read:
        if (d.readers != 0) --d.readers;
        break;
      case side::write:
        if (d.writers != 0) --d.writers;
        break;
      case side::poll:
      case side::none: break;
    }
  }

  // The final completion (a poll operation whose last report is still
  // queued: that report becomes it).
  void finish(operation& op, op_queue& completed) noexcept {
    release(op);
    detail::uring::data(op).phase = phase_idle;
    op.state = op_state::completed;
    op.flags = static_cast<std::uint8_t>(op.flags & ~op_flag::more);
    if (!op.linked) completed.push_back(op);
  }

  // ------------------------------------------------------ completion queue

  // Everything in the completion queue, and what overflowed past it.
  std::size_t reap(op_queue& completed, bool flush = true) {
    std::size_t n = 0;
    for (bool first = true;; first = false) {
      std::size_t flushed = 0;
      // The head is read again each time: on_cqe may enter (and reap) itself.
      for (unsigned head; (head = *cq_head_) != detail::uring::load_acquire(cq_tail_);) {
        const io_uring_cqe cqe = cqes_[head & cq_mask_];
        detail::uring::store_release(cq_head_, head + 1);  // the entry is copied: free it at once
        on_cqe(cqe, completed);
        ++n;
        ++flushed;
      }
      // Completions the kernel holds back: overflowed past the queue, or
      // waiting for this thread to run their task work (COOP_TASKRUN).
      // Repeated while a flush brings more, so the queue is drained.
      const unsigned flags = sq_flags();
      if (!flush || (flags & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN)) == 0) break;
      if (!first && flushed == 0) break;  // the last flush brought nothing
      if ((flags & IORING_SQ_CQ_OVERFLOW) != 0) ++overflow_flushes_;
      ++enters_;
      // Flush them into the (now empty) queue, submitting what is queued.
      const int entered = detail::uring::sys_enter(ring_fd_, unsubmitted_, 0, IORING_ENTER_GETEVENTS, nullptr, 0);
      if (entered >= 0)
        unsubmitted_ -= static_cast<unsigned>(entered) < unsubmitted_ ? static_cast<unsigned>(entered) : unsubmitted_;
      else if (errno != EINTR && errno != EBUSY && errno != EAGAIN)
        break;
    }
    return n;
  }

  void on_cqe(const io_uring_cqe& cqe, op_queue& completed) {
    if (cqe.user_data == tag_ignore) return;
    if (cqe.user_data == tag_wake || cqe.user_data == tag_wake_poll) {
      wake_armed_ = false;
      if (cqe.user_data == tag_wake && cqe.res == -EAGAIN) wake_poll_ = true;  // an old kernel: poll, then read
      if (cqe.user_data == tag_wake_poll) {
        std::uint64_t drained = 0;
        [[maybe_unused]] auto r = ::read(wake_fd_, &drained, sizeof drained);
      }
      return;
    }
    if (draining_) {
      --in_kernel_;
      return;
    }
    operation& op = *reinterpret_cast<operation*>(static_cast<std::uintptr_t>(cqe.user_data));
    --in_kernel_;
    auto& data = detail::uring::data(op);
    const int res = cqe.res;
    const bool cancelling = op.state == op_state::cancelling;

    if (op.kind == op_kind::poll) {
      if (cancelling || res < 0) {
        op.error = cancelling || res == -ECANCELED ? std::make_error_code(std::errc::operation_canceled)
                                                   : detail::posix::errno_code(-res);
        op.revents = io_events::none;
        finish(op, completed);
        return;
      }
      const io_events got = detail::posix::events_from_poll(static_cast<unsigned>(res)) & (op.events | io_events::hangup | io_events::error);
      park(op, phase_parked_poll);
      if (!any(got)) return;
      if (op.linked) {
        op.revents |= got;
        return;
      }
      op.revents = got;
      op.error = {};
      op.flags = static_cast<std::uint8_t>(op.flags | op_flag::more);
      completed.push_back(op);
      return;
    }

    if (res == -ECANCELED || (cancelling && res < 0)) {
      // Ours (cancel), or a cancel by descriptor when it was closed under it.
      op.error = cancelling ? std::make_error_code(std::errc::operation_canceled)
                            : std::make_error_code(std::errc::bad_file_descriptor);
      finish(op, completed);
      return;
    }

    if (data.phase == phase_wait) {  // the descriptor is ready: perform again
      if (res < 0) {
        op.error = detail::posix::errno_code(-res);
        finish(op, completed);
        return;
      }
      if (data.wait_connect != 0) {
        op.error = detail::posix::socket_error(static_cast<int>(op.fd));
        finish(op, completed);
        return;
      }
      if (cancelling) {
        op.error = std::make_error_code(std::errc::operation_canceled);
        finish(op, completed);
        return;
      }
      park(op, phase_parked_op);
      return;
    }

    if (res < 0) {
      const int e = -res;
      if (!cancelling && (detail::posix::would_block(e) || (op.kind == op_kind::connect && e == EINPROGRESS))) {
        data.wait_connect = op.kind == op_kind::connect ? 1 : 0;
        park(op, phase_parked_wait);  // an old kernel, or a descriptor that must be polled first
        return;
      }
      if (!cancelling && (e == EINTR || (op.kind == op_kind::accept && e == ECONNABORTED))) {
        park(op, phase_parked_op);
        return;
      }
      op.error = detail::posix::errno_code(e);
      if (detail::posix::side_of(op.kind) == side::write) mark(op, false, true);
      if (op.kind == op_kind::accept && (e == EMFILE || e == ENFILE)) {
        mark(op, false, false);
        fds_[static_cast<std::size_t>(op.fd)].poll_first = true;
      }
      finish(op, completed);
      return;
    }

    const auto n = static_cast<std::size_t>(res);
    op.error = {};
    switch (op.kind) {
      case op_kind::accept:
        op.accepted = res;
        if (op.address == nullptr) op.address_length = 0;
        mark(op, true, false);
        break;
      case op_kind::read:
      case op_kind::recv: {
        op.transferred = n;
        op.received = op.buffer_count != 0 ? op.buffers[0].data : nullptr;
        const std::size_t capacity = op.buffer_bytes();
        mark(op, n != 0 && n == capacity, false);
        break;
      }
      case op_kind::recvfrom:
        op.transferred = n;
        op.received = op.buffer_count != 0 ? op.buffers[0].data : nullptr;
        op.address_length = detail::posix::sys_cast<std::uint32_t>(data.msg.msg_namelen);
        op.msg_flags = data.msg.msg_flags;
        break;
      case op_kind::write:
      case op_kind::send:
        op.transferred += n;
        if (op.transferred < op.buffer_bytes()) {
          if (cancelling) {
            op.error = std::make_error_code(std::errc::operation_canceled);
          } else if (n != 0) {
            park(op, phase_parked_op);
            return;
          } else {
            op.error = std::make_error_code(std::errc::io_error);  // no progress on a non-empty write
          }
        }
        mark(op, false, true);
        break;
      case op_kind::sendto:
        op.transferred = n;
        break;
      case op_kind::poll:
      case op_kind::connect:
      case op_kind::shutdown:
      case op_kind::file_open:
      case op_kind::file_close:
      case op_kind::file_read:
      case op_kind::file_write:
      case op_kind::file_fsync:
      case op_kind::file_stat:
        break;
    }
    finish(op, completed);
  }

  void mark(const operation& op, bool read_ready, bool write_ready) noexcept {
    if (op.fd < 0 || static_cast<std::size_t>(op.fd) >= fds_.size()) return;
    descriptor& d = fds_[static_cast<std::size_t>(op.fd)];
    if (detail::posix::side_of(op.kind) == side::read) d.read_ready = read_ready;
    else d.write_ready = write_ready;
  }

  descriptor* find_or_grow(int fd) {
    const auto index = static_cast<std::size_t>(fd);
    if (index < fds_.size()) return &fds_[index];
    if (!detail::posix::is_open(fd)) return nullptr;  // no table entry per bogus number
    std::size_t size = fds_.size() < 64 ? 64 : fds_.size();
    while (size <= index) size *= 2;
    fds_.resize(size);
    return &fds_[index];
  }

  // The destructor's wait: cancel everything in the kernel and reap until it
  // has given every operation back, so no buffer is written after the loop's
  // handles are gone (bounded, for an operation the kernel cannot cancel).
  void drain_kernel() noexcept {
    draining_ = true;
    parked_.clear();
    try {
      if (in_kernel_ != 0 || wake_armed_) {
        io_uring_sqe& sqe = next_sqe();
        sqe.opcode = IORING_OP_ASYNC_CANCEL;
        sqe.fd = -1;
        sqe.cancel_flags = IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL;
        sqe.user_data = tag_ignore;
      }
      op_queue sink;
      __kernel_timespec ts{0, 50 * 1000000};
      for (int round = 0; round < 100 && (in_kernel_ != 0 || unsubmitted_ != 0); ++round) {
        reap(sink);
        if (in_kernel_ == 0) break;
        enter(1, IORING_ENTER_GETEVENTS, &ts);
        reap(sink);
      }
      reap(sink);
      while (sink.pop_front() != nullptr) {}
      while (ready_.pop_front() != nullptr) {}
    } catch (...) {
    }
  }

  int ring_fd_ = -1;
  int wake_fd_ = -1;
  void* ring_ = nullptr;
  std::size_t ring_size_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  std::size_t sqes_size_ = 0;
  unsigned* sq_head_ = nullptr;
  unsigned* sq_tail_ = nullptr;
  unsigned* sq_flags_ = nullptr;
  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;
  io_uring_cqe* cqes_ = nullptr;
  unsigned sq_entries_ = 0;
  unsigned sq_mask_ = 0;
  unsigned cq_entries_ = 0;
  unsigned cq_mask_ = 0;
  unsigned tail_ = 0;         // our copy of the submission tail
  unsigned unsubmitted_ = 0;  // entries queued since the last enter
  std::size_t in_kernel_ = 0;
  std::uint64_t overflow_flushes_ = 0;
  std::uint64_t enters_ = 0;
  std::uint64_t wake_value_ = 0;
  bool wake_armed_ = false;
  bool wake_poll_ = false;
  bool draining_ = false;
  bool eager_ = false;
  detail::monotonic_ms_clock clock_;
  std::vector<descriptor> fds_;
  std::vector<operation*> parked_;
  op_queue ready_;  // completed outside a poll (while entering early), delivered at the next
};

static_assert(backend<io_uring_backend>);

/// Which backend a uring_or_epoll_backend runs on.
enum class chosen_backend : std::uint8_t { io_uring, epoll };

/// io_uring when the kernel allows it, else epoll: io_uring_setup refused
/// (ENOSYS, EPERM: a seccomp profile; a kernel older than 5.11) or the
/// environment variable PHASELOOP_NO_IO_URING=1. Each call dispatches on one
/// branch. Declared completion-based, so modules take the path that is right
/// on both (datagram sends one at a time; no batched recvmmsg).
class uring_or_epoll_backend {
 public:
  static constexpr bool completion_based = true;
  static constexpr bool supports(op_kind kind) noexcept {
    return io_uring_backend::supports(kind) && epoll_backend::supports(kind);
  }

  uring_or_epoll_backend() {
    const char* off = std::getenv("PHASELOOP_NO_IO_URING");
    if (off == nullptr || std::strcmp(off, "1") != 0) {
      try {
        uring_.emplace();
      } catch (const std::system_error& e) {
        refusal_ = e.code();
      }
    }
    if (!uring_) epoll_.emplace();
  }

  /// Which one it chose.
  [[nodiscard]] chosen_backend chosen() const noexcept {
    return uring_ ? chosen_backend::io_uring : chosen_backend::epoll;
  }
  /// "io_uring" or "epoll".
  [[nodiscard]] const char* name() const noexcept { return uring_ ? "io_uring" : "epoll"; }
  /// Why io_uring was not used: io_uring_setup's error ({} when it is used, or
  /// PHASELOOP_NO_IO_URING turned it off).
  [[nodiscard]] std::error_code refusal() const noexcept { return refusal_; }

  [[nodiscard]] std::chrono::milliseconds now() const noexcept { return uring_ ? uring_->now() : epoll_->now(); }
  [[nodiscard]] std::chrono::nanoseconds hrtime() const noexcept {
    return uring_ ? uring_->hrtime() : epoll_->hrtime();
  }
  std::error_code submit(operation& op) { return uring_ ? uring_->submit(op) : epoll_->submit(op); }
  bool cancel(operation& op) { return uring_ ? uring_->cancel(op) : epoll_->cancel(op); }
  void poll(std::chrono::milliseconds timeout, op_queue& completed) {
    if (uring_) uring_->poll(timeout, completed);
    else epoll_->poll(timeout, completed);
  }
  void wakeup() noexcept {
    if (uring_) uring_->wakeup();
    else epoll_->wakeup();
  }
  std::error_code close(native_handle fd) { return uring_ ? uring_->close(fd) : epoll_->close(fd); }
  /// Descriptors watched (epoll) or operations in the kernel (io_uring).
  [[nodiscard]] std::size_t watched() const noexcept { return uring_ ? uring_->watched() : epoll_->watched(); }

  /// The io_uring backend, or nullptr on epoll.
  io_uring_backend* uring() noexcept { return uring_ ? &*uring_ : nullptr; }
  /// The epoll backend, or nullptr on io_uring.
  epoll_backend* epoll() noexcept { return epoll_ ? &*epoll_ : nullptr; }

 private:
  std::optional<io_uring_backend> uring_;
  std::optional<epoll_backend> epoll_;
  std::error_code refusal_;
};

static_assert(backend<uring_or_epoll_backend>);

}  // namespace phaseloop

#endif  // __linux__ && <linux/io_uring.h>
