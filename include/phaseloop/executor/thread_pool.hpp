#pragma once
// thread_pool_executor: the thread-pool half of Node (libuv's threadpool),
// but one pool per loop instead of one per process.
//
// - Size: executor_options::threads, or PHASELOOP_THREADPOOL_SIZE from the
//   environment (like UV_THREADPOOL_SIZE), or 4; clamped to [1, 1024].
// - Threads start on the first submit: a loop that never queues work never
//   spawns a thread.
// - Slow work (work_kind::slow: DNS lookups) runs on at most half of the
//   workers ((threads + 1) / 2, as libuv), so lookups that hang cannot starve
//   file operations. Slow work that may run is taken before fast work, so it
//   is not starved either.
// - Finished requests go to the loop's inbox, which wakes the loop once per
//   batch; their `after` callbacks run in the poll phase.
// - cancel() takes a request out of the queue if no worker has picked it up
//   (libuv's uv_cancel); a request that runs or ran gives
//   device_or_resource_busy. The request's `state` atomic, changed only while
//   the pool's lock is held as long as the request is queued, decides the race.
// - Destroying the executor (the loop) drops queued requests without running
//   them, waits for the running ones and joins every worker.
//
// How it is fast: submit() takes no lock. It pushes the request on a
// lock-free stack (one compare-and-swap) that workers take over whole, and
// wakes a sleeping worker only if none is already waking; a worker that finds
// more work than it can take passes the wakeup on. So a burst of requests
// costs the loop thread a few atomic operations each and a handful of system
// calls in all, instead of one futex wake per request.

#include <phaseloop/version.hpp>
#include <phaseloop/concepts.hpp>
#include <phaseloop/inbox.hpp>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#if !defined(_WIN32)
#include <signal.h>
#endif

namespace phaseloop {

class thread_pool_executor {
 public:
  /// Workers when neither the options nor the environment say otherwise (libuv's 4).
  static constexpr std::size_t default_threads = 4;
  /// The most workers a pool will run (libuv's limit).
  static constexpr std::size_t max_threads = 1024;

  /// The pool size `options` and the environment ask for: options.threads
  /// when non-zero, else PHASELOOP_THREADPOOL_SIZE when it is a positive
  /// number, else 4; at most max_threads.
  static std::size_t configured_threads(const executor_options& options) noexcept {
    std::size_t n = options.threads;
    if (n == 0) {
      n = default_threads;
      if (const char* env = std::getenv("PHASELOOP_THREADPOOL_SIZE")) {
        // Decimal digits only (what std::from_chars accepts, without
        // <charconv>'s cost in every file that includes the pool); a value
        // too large for any type saturates at max_threads.
        std::size_t value = 0;
        bool digits = *env != '\0';
        for (const char* c = env; *c != '\0'; ++c) {
          if (*c < '0' || *c > '9') {
            digits = false;
            break;
          }
          value = value * 10 + static_cast<std::size_t>(*c - '0');
          if (value > max_threads) value = max_threads + 1;
        }
        if (digits && value > 0) n = value;
      }
    }
    return n > max_threads ? max_threads : n;
  }

  thread_pool_executor(inbox& completions, const executor_options& options)
      : inbox_(&completions),
        size_(configured_threads(options)),
        slow_limit_((size_ + 1) / 2) {}

  thread_pool_executor(const thread_pool_executor&) = delete;
  thread_pool_executor& operator=(const thread_pool_executor&) = delete;

  ~thread_pool_executor() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  /// Queue `r` for a worker (loop thread only). Starts the workers on first
  /// use. If no thread can be started at all, the request runs at once on
  /// this thread (as the inline executor would) and is still delivered
  /// through the inbox.
  void submit(work_request& r) {
    if (!started_) start_threads();
    if (threads_.empty()) {
      run(r);
      return;
    }
    r.state.store(queued, std::memory_order_relaxed);
    r.next = submitted_.load(std::memory_order_relaxed);
    while (!submitted_.compare_exchange_weak(r.next, &r, std::memory_order_seq_cst,
                                             std::memory_order_relaxed)) {
    }
    // Pairs with a worker's "count myself idle, then look at submitted_".
    if (idle_.load(std::memory_order_seq_cst) > 0) wake_one();
  }

  /// {} when `r` was still queued: it is taken out and will never run (the
  /// loop delivers it as cancelled). device_or_resource_busy when a worker
  /// has picked it up, it finished, or it was cancelled before.
  /// O(queued requests): a walk of the queues under the pool's lock.
  std::error_code cancel(work_request& r) noexcept {
    const auto busy = std::make_error_code(std::errc::device_or_resource_busy);
    if (r.state.load(std::memory_order_acquire) != queued) return busy;
    std::lock_guard<std::mutex> lock(mutex_);
    if (r.state.load(std::memory_order_relaxed) != queued) return busy;
    bool removed = (r.kind == work_kind::slow ? slow_ : fast_).remove(r);
    if (!removed) {
      // Still on the submitted stack. Workers take it only under mutex_ and
      // only this thread pushes, so it holds still while we edit it.
      work_request* prev = nullptr;
      for (work_request* it = submitted_.load(std::memory_order_acquire); it != nullptr;
           prev = it, it = it->next) {
        if (it != &r) continue;
        if (prev != nullptr)
          prev->next = it->next;
        else
          submitted_.store(it->next, std::memory_order_release);
        removed = true;
        break;
      }
    }
    if (!removed) return busy;  // not ours; cannot happen for a request we queued
    r.next = nullptr;
    r.state.store(cancelled, std::memory_order_relaxed);
    return {};
  }

  /// The number of workers the pool runs once started.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  /// How many slow requests may run at once: (size() + 1) / 2.
  [[nodiscard]] std::size_t slow_limit() const noexcept { return slow_limit_; }

  /// Workers started so far (0 until the first submit). Loop thread only.
  [[nodiscard]] std::size_t threads_started() const noexcept { return threads_.size(); }

 private:
  /// Values of work_request::state while this executor owns a request. The
  /// loop resets it to `fresh` before each submit.
  enum : std::uint8_t { fresh = 0, queued = 1, running = 2, done = 3, cancelled = 4 };

  /// A FIFO of requests through their intrusive `next` links.
  struct request_queue {
    work_request* head = nullptr;
    work_request* tail = nullptr;

    [[nodiscard]] bool empty() const noexcept { return head == nullptr; }

    void push(work_request& r) noexcept {
      r.next = nullptr;
      (tail != nullptr ? tail->next : head) = &r;
      tail = &r;
    }

    work_request* pop() noexcept {
      work_request* r = head;
      if (r != nullptr) {
        head = r->next;
        if (head == nullptr) tail = nullptr;
        r->next = nullptr;
      }
      return r;
    }

    bool remove(work_request& r) noexcept {
      work_request* prev = nullptr;
      for (work_request* it = head; it != nullptr; prev = it, it = it->next) {
        if (it != &r) continue;
        (prev != nullptr ? prev->next : head) = it->next;
        if (tail == it) tail = prev;
        it->next = nullptr;
        return true;
      }
      return false;
    }
  };

  // Loop thread. Workers inherit a fully blocked signal mask, so process
  // signals go to threads that want them (the loop's), never to a worker.
  void start_threads() {
    started_ = true;
#if !defined(_WIN32)
    sigset_t all;
    sigset_t old;
    sigfillset(&all);
    const bool masked = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
#endif
    try {
      threads_.reserve(size_);
      while (threads_.size() < size_) threads_.emplace_back([this] { worker(); });
    } catch (...) {
      // Out of threads or memory: run with the workers we have (or inline).
    }
#if !defined(_WIN32)
    if (masked) pthread_sigmask(SIG_SETMASK, &old, nullptr);
#endif
  }

  // Wake one sleeping worker unless one is already on its way (any thread
  // but a worker holding mutex_). Decided under mutex_: a worker counted in
  // sleepers_ is inside wait(), so the notification finds it.
  void wake_one() {
    // seq_cst throughout: if a sleeper is already being woken, it clears
    // waking_ after this load and only then takes the submitted stack, so it
    // sees what the caller pushed before calling.
    if (waking_.load(std::memory_order_seq_cst)) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (sleepers_ == 0 || waking_.load(std::memory_order_seq_cst)) return;
      waking_.store(true, std::memory_order_seq_cst);
    }
    wake_.notify_one();
  }

  // Run a request and hand it to the loop. After deliver() the request
  // belongs to the loop again and may be reused at once: not touched here.
  void run(work_request& r) noexcept {
    r.state.store(running, std::memory_order_relaxed);
    try {
      r.work();
    } catch (...) {
      r.exception = std::current_exception();
    }
    r.state.store(done, std::memory_order_release);
    inbox_->deliver(r);
  }

  // mutex_ held: move the submitted stack, oldest first, to the queues.
  void take_submitted() noexcept {
    work_request* stack = submitted_.exchange(nullptr, std::memory_order_seq_cst);
    work_request* fifo = nullptr;
    while (stack != nullptr) {  // the stack is newest first: reverse it
      work_request* next = stack->next;
      stack->next = fifo;
      fifo = stack;
      stack = next;
    }
    while (fifo != nullptr) {
      work_request* next = fifo->next;
      (fifo->kind == work_kind::slow ? slow_ : fast_).push(*fifo);
      fifo = next;
    }
  }

  // mutex_ held: the next request this worker may run, or nullptr.
  work_request* take(bool& slow) noexcept {
    for (int pass = 0; pass < 2; ++pass) {
      if (slow_running_ < slow_limit_) {
        if (work_request* r = slow_.pop()) {
          slow = true;
          return r;
        }
      }
      if (work_request* r = fast_.pop()) {
        slow = false;
        return r;
      }
      if (pass == 0) take_submitted();
    }
    return nullptr;
  }

  // mutex_ held: whether work waits that an idle worker could take.
  bool more_work() const noexcept {
    return !fast_.empty() || (!slow_.empty() && slow_running_ < slow_limit_);
  }

  void worker() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      if (stopping_) return;
      bool slow = false;
      work_request* r = take(slow);
      if (r == nullptr) {
        // Count myself idle, then look once more: a submit either pushed
        // before the look (seen here) or sees the count and wakes a worker.
        idle_.fetch_add(1, std::memory_order_seq_cst);
        if (submitted_.load(std::memory_order_seq_cst) == nullptr && !stopping_) {
          ++sleepers_;
          wake_.wait(lock);
          --sleepers_;
          waking_.store(false, std::memory_order_seq_cst);  // whoever was notified is up
        }
        idle_.fetch_sub(1, std::memory_order_relaxed);
        continue;
      }
      // Under the lock: from here on cancel() sees the request as running.
      r->state.store(running, std::memory_order_relaxed);
      if (slow) ++slow_running_;
      const bool pass_on = more_work() && idle_.load(std::memory_order_relaxed) > 0;
      lock.unlock();
      if (pass_on) wake_one();
      run(*r);
      lock.lock();
      if (slow) --slow_running_;
    }
  }

  inbox* inbox_;
  const std::size_t size_;
  const std::size_t slow_limit_;

  // Loop thread only.
  bool started_ = false;  // start_threads() was tried
  std::vector<std::thread> threads_;

  // Shared. submitted_: requests submit() pushed since the workers last
  // looked, newest first. idle_: workers that found nothing to do and may be
  // asleep. waking_: a sleeper has been notified and has not woken yet (set
  // under mutex_).
  std::atomic<work_request*> submitted_{nullptr};
  std::atomic<std::size_t> idle_{0};
  std::atomic<bool> waking_{false};

  // Workers' side, under mutex_.
  std::mutex mutex_;
  std::condition_variable wake_;
  request_queue fast_;
  request_queue slow_;
  std::size_t slow_running_ = 0;  // slow requests running now
  std::size_t sleepers_ = 0;      // workers inside wake_.wait()
  bool stopping_ = false;
};

static_assert(executor<thread_pool_executor>);

}  // namespace phaseloop
