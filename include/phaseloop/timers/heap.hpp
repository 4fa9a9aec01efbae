#pragma once
// heap_timers: a 4-ary min-heap keyed by (due, insertion number). Keys are
// kept in the heap array so a sift compares contiguous 24-byte entries
// instead of chasing timer records; each record keeps only its heap position
// (4 bytes), for O(log n) erase.

#include <phaseloop/version.hpp>
#include <phaseloop/concepts.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace phaseloop {

/// The default timer store: a 4-ary heap of (due, insertion number) keys with
/// intrusive positions. O(log n) insert, erase and pop; no allocation once
/// the array has grown to the number of live timers.
class heap_timers {
 public:
  /// What a timer carries for the heap: its position in the array.
  struct node {
    std::uint32_t heap_index = 0;
  };

 private:
  struct entry {
    std::uint64_t due;
    std::uint64_t seq;  // insertion number: ties on due pop in insertion order
    node* n;
    [[nodiscard]] bool before(const entry& other) const noexcept {
      return due < other.due || (due == other.due && seq < other.seq);
    }
  };
  static constexpr std::size_t arity = 4;

 public:
  /// Adds n (not in the store), due at `due`.
  void insert(node& n, std::uint64_t due) {
    heap_.push_back(entry{due, next_seq_++, &n});
    sift_up(heap_.size() - 1);
  }

  /// Removes n (which is in the store).
  void erase(node& n) noexcept {
    const std::size_t i = n.heap_index;
    const std::size_t last = heap_.size() - 1;
    if (i != last) {
      place(i, heap_[last]);
      heap_.pop_back();
      if (i > 0 && heap_[i].before(heap_[(i - 1) / arity]))
        sift_up(i);
      else
        sift_down(i);
    } else {
      heap_.pop_back();
    }
  }

  /// Removes and returns the earliest timer with due <= now, or nullptr.
  node* pop_expired(std::uint64_t now) noexcept {
    if (heap_.empty() || heap_.front().due > now) return nullptr;
    node* n = heap_.front().n;
    erase(*n);
    return n;
  }

  /// The earliest due time, or UINT64_MAX when empty.
  [[nodiscard]] std::uint64_t next_due() const noexcept {
    return heap_.empty() ? UINT64_MAX : heap_.front().due;
  }

  /// Number of timers in the store.
  [[nodiscard]] std::size_t size() const noexcept { return heap_.size(); }

 private:
  void place(std::size_t i, const entry& e) noexcept {
    heap_[i] = e;
    e.n->heap_index = static_cast<std::uint32_t>(i);
  }

  void sift_up(std::size_t i) noexcept {
    const entry moving = heap_[i];
    while (i > 0) {
      const std::size_t parent = (i - 1) / arity;
      if (!moving.before(heap_[parent])) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, moving);
  }

  void sift_down(std::size_t i) noexcept {
    const entry moving = heap_[i];
    const std::size_t n = heap_.size();
    for (;;) {
      const std::size_t first = i * arity + 1;
      if (first >= n) break;
      std::size_t best = first;
      const std::size_t end = first + arity < n ? first + arity : n;
      for (std::size_t c = first + 1; c < end; ++c)
        if (heap_[c].before(heap_[best])) best = c;
      if (!heap_[best].before(moving)) break;
      place(i, heap_[best]);
      i = best;
    }
    place(i, moving);
  }

  std::vector<entry> heap_;
  std::uint64_t next_seq_ = 0;
};

static_assert(timer_store<heap_timers>);

}  // namespace phaseloop
