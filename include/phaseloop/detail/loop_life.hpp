#pragma once
// loop_lives: a process-wide table that says whether a loop still exists, so
// a timer or immediate handle used after its loop was destroyed is a stale
// handle (every call does nothing), never a read of freed memory.
//
// Each live loop holds one entry, set to a number no other loop of the
// process ever had; the loop zeroes it when it is destroyed and the entry
// goes back to a free list. Entries live in chunks that are never freed, so
// a handle may read its entry (one relaxed load) at any time. Only loop
// construction and destruction take the lock.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace phaseloop::detail {

/// One loop's entry: its number while it lives, 0 once it is gone.
struct loop_life {
  std::atomic<std::uint64_t> id{0};
  loop_life* next_free = nullptr;
};

class loop_lives {
 public:
  /// The process's table (a function-local static: no global constructor).
  static loop_lives& instance() noexcept {
    static loop_lives table;
    return table;
  }

  /// Takes an entry for a new loop and gives it a number never used before.
  loop_life& acquire() {
    std::lock_guard<std::mutex> lock(mutex_);
    loop_life* e = free_;
    if (e != nullptr) {
      free_ = e->next_free;
    } else {
      if (used_ == chunk_size) {
        // Never freed: a handle may read its entry after its loop is gone.
        current_ = new loop_life[chunk_size];  // NOLINT(cppcoreguidelines-owning-memory)
        used_ = 0;
      }
      e = &current_[used_++];
    }
    e->next_free = nullptr;
    e->id.store(++next_id_, std::memory_order_relaxed);
    return *e;
  }

  /// The loop is gone: its handles become stale.
  void release(loop_life& e) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    e.id.store(0, std::memory_order_relaxed);
    e.next_free = free_;
    free_ = &e;
  }

 private:
  static constexpr std::size_t chunk_size = 256;
  loop_lives() = default;
  std::mutex mutex_;
  loop_life* free_ = nullptr;
  loop_life* current_ = nullptr;
  std::size_t used_ = chunk_size;
  std::uint64_t next_id_ = 0;
};

}  // namespace phaseloop::detail
