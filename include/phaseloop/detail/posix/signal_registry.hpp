#pragma once
// The process-wide signal registry (POSIX): one sigaction per watched
// signal, shared by every loop of the process, on every thread.
//
// Each loop that watches signals has a sink: the write end of its self-pipe
// and, per signal, how many of its handles watch it and how many deliveries
// it has caught. The handler (async-signal-safe: atomics and write(2) only)
// walks the sinks, counts the signal in every sink that watches it and
// writes one byte to that sink's pipe; the loop's poll phase reads the pipe
// and takes the counts. A count is never lost: the loop drains the pipe
// before it takes the counts, and the handler counts before it writes.
//
// Sinks are never freed (a loop that goes leaves its sink for the next one),
// so the handler may walk the list while another thread changes it; a sink
// whose loop goes stops being written to before its descriptor is closed
// (the closer waits until no handler is inside the sink).

#if !defined(_WIN32)

#include <phaseloop/detail/posix/system.hpp>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

namespace phaseloop::detail::posix {

/// Signals 1 .. signal_limit - 1 may be watched.
#if defined(NSIG)
inline constexpr int signal_limit = NSIG;
#else
inline constexpr int signal_limit = 65;
#endif

/// One loop's share of the registry.
struct signal_sink {
  std::atomic<int> fd{-1};  ///< the self-pipe's write end; -1 while the sink is unused
  std::atomic<unsigned> users{0};  ///< handlers inside this sink now
  std::atomic<unsigned> watching[signal_limit] = {};  ///< handles of the loop watching each signal
  std::atomic<std::uint32_t> caught[signal_limit] = {};  ///< deliveries not yet taken by the loop
  std::atomic<signal_sink*> next{nullptr};
  bool in_use = false;  // under the registry's lock
};

class signal_registry {
 public:
  /// The one registry of the process (made on first use, never destroyed).
  static signal_registry& instance() {
    static signal_registry* const r = new signal_registry();  // never freed: the handler may run at exit
    return *r;
  }

  /// A sink for a loop whose self-pipe writes to `write_fd` (non-blocking, close-on-exec).
  signal_sink& acquire(int write_fd) {
    std::lock_guard<std::mutex> guard(lock_);
    signal_sink* s = head_.load(std::memory_order_acquire);
    while (s != nullptr && s->in_use) s = s->next.load(std::memory_order_relaxed);
    if (s == nullptr) {
      s = new signal_sink();  // lives as long as the process (see above)
      s->next.store(head_.load(std::memory_order_relaxed), std::memory_order_relaxed);
      head_.store(s, std::memory_order_release);
    }
    s->in_use = true;
    for (int i = 0; i < signal_limit; ++i) {
      s->watching[i].store(0, std::memory_order_relaxed);
      s->caught[i].store(0, std::memory_order_relaxed);
    }
    s->fd.store(write_fd, std::memory_order_seq_cst);
    return *s;
  }

  /// The loop is going: no handler writes to its sink once this returns, so
  /// its descriptor may be closed. The caller stopped its watches first.
  void release(signal_sink& s) {
    std::lock_guard<std::mutex> guard(lock_);
    for (int i = 1; i < signal_limit; ++i) {
      while (s.watching[i].load(std::memory_order_relaxed) != 0) unwatch_locked(s, i);
    }
    s.fd.store(-1, std::memory_order_seq_cst);
    while (s.users.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
    s.in_use = false;
  }

  /// One more handle of the sink's loop watches `signo`; the first watcher
  /// in the process installs the handler (remembering the old disposition).
  std::error_code watch(signal_sink& s, int signo) {
    if (signo <= 0 || signo >= signal_limit || signo == SIGKILL || signo == SIGSTOP)
      return std::make_error_code(std::errc::invalid_argument);
    std::lock_guard<std::mutex> guard(lock_);
    if (watchers_[signo] == 0) {
      struct sigaction sa {};
#if defined(__clang__)
#pragma clang diagnostic push
// glibc's sa_handler is a macro naming a union member of the same name.
#pragma clang diagnostic ignored "-Wdisabled-macro-expansion"
#endif
      sa.sa_handler = &handler;
#if defined(__clang__)
#pragma clang diagnostic pop
#endif
      sigfillset(&sa.sa_mask);  // no other signal interrupts the handler
      sa.sa_flags = SA_RESTART;
      if (::sigaction(signo, &sa, &previous_[signo]) != 0) return errno_code();
    }
    ++watchers_[signo];
    if (s.watching[signo].fetch_add(1, std::memory_order_seq_cst) == 0)
      s.caught[signo].store(0, std::memory_order_relaxed);  // nothing from an earlier watch
    return {};
  }

  /// One handle fewer watches `signo`; the last one in the process restores
  /// the disposition that was there before.
  void unwatch(signal_sink& s, int signo) {
    std::lock_guard<std::mutex> guard(lock_);
    unwatch_locked(s, signo);
  }

  /// Handles watching `signo` in the whole process.
  [[nodiscard]] unsigned watchers(int signo) {
    std::lock_guard<std::mutex> guard(lock_);
    return signo > 0 && signo < signal_limit ? watchers_[signo] : 0u;
  }

 private:
  signal_registry() = default;

  void unwatch_locked(signal_sink& s, int signo) {
    if (signo <= 0 || signo >= signal_limit || s.watching[signo].load(std::memory_order_relaxed) == 0) return;
    s.watching[signo].fetch_sub(1, std::memory_order_seq_cst);
    if (--watchers_[signo] == 0) (void)::sigaction(signo, &previous_[signo], nullptr);
  }

  static void handler(int signo) {
    const int saved = errno;
    if (signo > 0 && signo < signal_limit) {
      signal_registry& r = *instance_ptr();
      for (signal_sink* s = r.head_.load(std::memory_order_acquire); s != nullptr;
           s = s->next.load(std::memory_order_acquire)) {
        if (s->watching[signo].load(std::memory_order_seq_cst) == 0) continue;
        s->users.fetch_add(1, std::memory_order_seq_cst);
        const int fd = s->fd.load(std::memory_order_seq_cst);
        if (fd >= 0) {
          s->caught[signo].fetch_add(1, std::memory_order_seq_cst);
          const char byte = static_cast<char>(signo);
          // A full pipe already wakes the loop: EAGAIN loses nothing.
          while (::write(fd, &byte, 1) < 0 && errno == EINTR) {
          }
        }
        s->users.fetch_sub(1, std::memory_order_seq_cst);
      }
    }
    errno = saved;
  }

  // The handler runs only once instance() has returned (it installed it).
  static signal_registry* instance_ptr() noexcept { return &instance(); }

  std::mutex lock_;
  std::atomic<signal_sink*> head_{nullptr};
  unsigned watchers_[signal_limit] = {};
  struct sigaction previous_[signal_limit] = {};
};

}  // namespace phaseloop::detail::posix

#endif  // !_WIN32
