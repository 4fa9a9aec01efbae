#pragma once
// The loop's thread-safe inbox: callbacks posted from any thread and work
// requests finished by the executor. Producers take a short lock and wake the
// loop once per batch; the loop empties the inbox in its poll phase.

#include <phaseloop/detail/function.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <exception>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

namespace phaseloop {

/// How an executor schedules a request: slow work (DNS lookups) may occupy at
/// most half of a thread pool, so it cannot starve file operations.
enum class work_kind : std::uint8_t { fast, slow };

/// A unit of blocking work, owned by the loop, run by the executor.
struct work_request {
  detail::unique_function<void()> work;  ///< runs on the executor
  work_kind kind = work_kind::fast;
  std::error_code error;                 ///< operation_canceled when cancelled before it ran
  std::exception_ptr exception;          ///< what `work` threw, rethrown on the loop thread
  std::atomic<std::uint8_t> state{0};    ///< executor-private
  work_request* next = nullptr;          ///< executor and inbox private link
};

class inbox {
 public:
  using wake_function = void (*)(void* context) noexcept;

  inbox(wake_function wake, void* context) noexcept : wake_(wake), context_(context) {}
  inbox(const inbox&) = delete;
  inbox& operator=(const inbox&) = delete;

  /// Thread-safe: queue a callback for the loop's poll phase.
  void post(detail::unique_function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      posted_.push_back(std::move(fn));
    }
    signal();
  }

  /// Thread-safe: hand a finished (or cancelled) request back to the loop.
  void deliver(work_request& request) noexcept {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      request.next = nullptr;
      (done_tail_ != nullptr ? done_tail_->next : done_head_) = &request;
      done_tail_ = &request;
    }
    signal();
  }

  /// True when something arrived since the loop last emptied the inbox.
  [[nodiscard]] bool pending() const noexcept { return signaled_.load(std::memory_order_acquire); }

  /// Loop thread: move everything out. `posted` must be empty on entry; the
  /// vectors swap, so their capacity is reused batch after batch.
  work_request* take(std::vector<detail::unique_function<void()>>& posted) noexcept {
    signaled_.store(false, std::memory_order_release);
    std::lock_guard<std::mutex> lock(mutex_);
    posted.swap(posted_);
    work_request* done = std::exchange(done_head_, nullptr);
    done_tail_ = nullptr;
    return done;
  }

  /// Loop thread: give back what a batch from take() did not run (an
  /// exception left), ahead of everything that arrived since, in order:
  /// the finished requests from `done` on, and posted[from...].
  void put_back(work_request* done, std::vector<detail::unique_function<void()>>& posted, std::size_t from) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (done != nullptr) {
        work_request* last = done;
        while (last->next != nullptr) last = last->next;
        last->next = done_head_;
        if (done_head_ == nullptr) done_tail_ = last;
        done_head_ = done;
      }
      if (from < posted.size()) {
        posted_.insert(posted_.begin(), std::make_move_iterator(posted.begin() + static_cast<std::ptrdiff_t>(from)),
                       std::make_move_iterator(posted.end()));
      }
    }
    signal();
  }

  /// Thread-safe: wake the loop so it looks at its state again (coalesced).
  void signal() noexcept {
    if (!signaled_.exchange(true, std::memory_order_acq_rel)) wake_(context_);
  }

 private:

  wake_function wake_;
  void* context_;
  std::atomic<bool> signaled_{false};
  std::mutex mutex_;
  std::vector<detail::unique_function<void()>> posted_;
  work_request* done_head_ = nullptr;
  work_request* done_tail_ = nullptr;
};

}  // namespace phaseloop
