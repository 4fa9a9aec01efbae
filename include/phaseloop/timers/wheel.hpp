#pragma once
// wheel_timers: a hierarchical timing wheel keyed by due time, ties in
// insertion order, with O(1) insert and erase, exact order and an exact
// next_due(). Eight levels (4096 one-millisecond slots, then 256 per level),
// no per-millisecond ticks, cascades that keep insertion order; the layout,
// the order argument and the costs are in docs/timer-wheel.md.

#include <phaseloop/version.hpp>
#include <phaseloop/concepts.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>
#include <vector>

namespace phaseloop {

namespace detail {

/// Hints that `p` and the cache line after it will be read soon.
inline void wheel_prefetch(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p);
  __builtin_prefetch(static_cast<const char*>(p) + 64);
#else
  (void)p;
#endif
}

/// What a timer carries for the wheel: its due time, its slot and the links
/// of its slot's list.
struct wheel_node {
  std::uint64_t due = 0;
  wheel_node* prev = nullptr;
  wheel_node* next = nullptr;
  std::uint32_t slot = 0;  ///< slot index, or a position in the refined heap, or overdue
};

/// Geometry and slot storage of wheel_timers.
struct wheel_storage {
  static constexpr unsigned level0_bits = 12;  ///< level 0: 4096 slots of 1 ms
  static constexpr unsigned level_bits = 8;    ///< levels 1..7: 256 slots each
  static constexpr unsigned levels = 8;        ///< 12 + 7 * 8 >= 64 bits
  static constexpr unsigned level0_slots = 1u << level0_bits;
  static constexpr unsigned upper_slots = 1u << level_bits;
  static constexpr unsigned upper_count = (levels - 1) * upper_slots;
  static constexpr unsigned slot_count = level0_slots + upper_count;
  static_assert(level0_bits + (levels - 1) * level_bits >= 64);

  /// Lowest bit of level k's digit.
  static constexpr unsigned shift(unsigned k) noexcept { return k == 0 ? 0 : level0_bits + level_bits * (k - 1); }
  /// Bits in level k's digit.
  static constexpr unsigned width(unsigned k) noexcept { return k == 0 ? level0_bits : level_bits; }
  /// Index of level k's first slot.
  static constexpr unsigned first_slot(unsigned k) noexcept {
    return k == 0 ? 0 : level0_slots + upper_slots * (k - 1);
  }
  /// The level of slot idx.
  static constexpr unsigned level_of(unsigned idx) noexcept {
    return idx < level0_slots ? 0 : 1 + (idx - level0_slots) / upper_slots;
  }

  wheel_node* head[slot_count] = {};          ///< circular list per slot; tail is head->prev
  // Levels >= 1 only, indexed by idx - level0_slots:
  std::uint64_t min_due[upper_count] = {};    ///< earliest due per slot
  std::uint32_t min_count[upper_count] = {};  ///< timers at min_due in the slot
  std::uint64_t stale[upper_count / 64] = {}; ///< bit per slot: min_due needs a rescan
};

}  // namespace detail

/// A hierarchical timing wheel: O(1) insert/erase, (due, insertion) order, exact
/// next_due(), any 64-bit due time. A drop-in alternative to heap_timers.
class wheel_timers {
 public:
  /// What a timer carries for the wheel (28 bytes).
  using node = detail::wheel_node;

 private:
  using storage = detail::wheel_storage;
  static constexpr unsigned levels = storage::levels;
  static constexpr unsigned words = storage::slot_count / 64;  // occupancy bitmap words
  static constexpr unsigned up = storage::level0_slots;        // first slot of level 1
  static constexpr std::uint32_t overdue_index = UINT32_MAX;
  static constexpr std::uint32_t refined_flag = std::uint32_t{1} << 31;  // slot: position in refined_
  static constexpr std::uint32_t no_slot = UINT32_MAX;
  static constexpr unsigned rescan_limit = 64;  // longer stale slots get an index instead

 public:
  wheel_timers() noexcept = default;
  wheel_timers(const wheel_timers&) = delete;
  wheel_timers& operator=(const wheel_timers&) = delete;
  /// Moving keeps every inserted node in place; the source is left empty.
  wheel_timers(wheel_timers&& other) noexcept { swap(other); }
  wheel_timers& operator=(wheel_timers&& other) noexcept {
    if (this != &other) {
      wheel_timers tmp(std::move(other));
      swap(tmp);
    }
    return *this;
  }
  ~wheel_timers() = default;

  /// Adds n (not in the store), due at `due`. Allocates only the first time.
  void insert(node& n, std::uint64_t due) {
    if (!store_) [[unlikely]]
      store_ = std::make_unique<storage>();
    n.due = due;
    if (n.due < cur_) [[unlikely]]
      insert_overdue(n);
    else
      place(n);
    ++size_;
  }

  /// Removes n (which is in the store).
  void erase(node& n) noexcept {
    --size_;
    const std::uint32_t idx = n.slot;
    if (idx == overdue_index) [[unlikely]] {
      overdue_ = unlink(overdue_, n);
      return;
    }
    if (idx & refined_flag) [[unlikely]] {
      erase_refined(n);
      return;
    }
    node*& head = store_->head[idx];
    head = unlink(head, n);
    if (head == nullptr) {
      clear_bit(idx);
    } else if (idx >= up && n.due == store_->min_due[idx - up] && !is_stale(idx)) {
      if (--store_->min_count[idx - up] == 0) set_stale(idx);
    }
  }

  /// Removes and returns the earliest timer with due <= now, or nullptr.
  node* pop_expired(std::uint64_t now) noexcept {
    if (overdue_ != nullptr) [[unlikely]] {
      if (overdue_->due > now) return nullptr;
      node* n = overdue_;
      overdue_ = unlink(overdue_, *n);
      --size_;
      return n;
    }
    for (;;) {
      if (level_mask_ == 0) {
        if (now > cur_) cur_ = now;
        return nullptr;
      }
      const unsigned k = static_cast<unsigned>(std::countr_zero(level_mask_));
      const unsigned s = lowest_slot(k);
      const std::uint64_t start = slot_start(k, s);
      if (start > now) {
        if (now > cur_) cur_ = now;  // nothing starts before `now`: placements stay valid
        return nullptr;
      }
      cur_ = start;
      const unsigned idx = storage::first_slot(k) + s;
      if (k == 0) {
        node*& head = store_->head[idx];
        node* n = head;
        head = unlink(head, *n);
        if (head == nullptr)
          clear_bit(idx);
        else
          detail::wheel_prefetch(head);  // the next pop's timer: fetched while this one's callback runs
        --size_;
        return n;
      }
      cascade(idx);
    }
  }

  /// The earliest due time, or UINT64_MAX when empty.
  [[nodiscard]] std::uint64_t next_due() const noexcept {
    if (overdue_ != nullptr) [[unlikely]]
      return overdue_->due;
    if (level_mask_ == 0) return UINT64_MAX;
    const unsigned k = static_cast<unsigned>(std::countr_zero(level_mask_));
    const unsigned s = lowest_slot(k);
    if (k == 0) return slot_start(0, s);
    const unsigned idx = storage::first_slot(k) + s;
    if (idx == refined_idx_) return refined_.front().due;
    if (is_stale(idx) && !rescan(idx)) return refine(idx);
    return store_->min_due[idx - up];
  }

  /// Number of timers in the store.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  /// The wheel's position: every timer with due < position() has been popped.
  [[nodiscard]] std::uint64_t position() const noexcept { return cur_; }

 private:
  // -- slot placement ------------------------------------------------------

  [[nodiscard]] static constexpr std::uint64_t below(unsigned bits) noexcept {
    return bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
  }

  /// First due time of level k slot s, relative to cur_.
  [[nodiscard]] std::uint64_t slot_start(unsigned k, unsigned s) const noexcept {
    return (cur_ & ~below(storage::shift(k) + storage::width(k))) | (std::uint64_t{s} << storage::shift(k));
  }

  /// Links n (due >= cur_) at the end of its slot.
  void place(node& n) {
    const std::uint64_t diff = n.due ^ cur_;
    const unsigned b = static_cast<unsigned>(std::bit_width(diff | 1) - 1);  // highest differing bit
    const unsigned k = b < storage::level0_bits ? 0 : 1 + (b - storage::level0_bits) / storage::level_bits;
    const unsigned s = static_cast<unsigned>(n.due >> storage::shift(k)) & ((1u << storage::width(k)) - 1);
    const unsigned idx = storage::first_slot(k) + s;
    n.slot = idx;
    node* head = store_->head[idx];
    if (head == nullptr || idx == refined_idx_) {
      place_first_or_refined(n, idx);
      return;
    }
    append(head, n);
    if (idx >= up) {
      std::uint64_t& m = store_->min_due[idx - up];
      if (n.due < m) {  // also repairs a stale minimum: n is the earliest now
        m = n.due;
        store_->min_count[idx - up] = 1;
        clear_stale(idx);
      } else if (n.due == m && !is_stale(idx)) {
        ++store_->min_count[idx - up];
      }
    }
  }

  /// place() into an empty slot, or into the refined slot (kept out of line:
  /// the common case is appending to a slot that already has timers).
  void place_first_or_refined(node& n, unsigned idx) {
    node*& head = store_->head[idx];
    if (head == nullptr) {
      n.prev = n.next = &n;
      head = &n;
      set_bit(idx);
      if (idx >= up) {
        store_->min_due[idx - up] = n.due;
        store_->min_count[idx - up] = 1;
        clear_stale(idx);
      }
      return;
    }
    // The refined slot. Only from insert() (a cascade never targets the
    // earliest slot); the one allocation comes first, so a bad_alloc leaves
    // everything as it was.
    refined_.push_back(refined_entry{n.due, &n});
    append(head, n);
    refined_up(refined_.size() - 1, refined_.back());
  }

  /// Re-places every timer of a higher slot relative to cur_ (== the slot's start).
  void cascade(unsigned idx) noexcept {
    if (idx == refined_idx_) {  // every node gets a new slot below
      refined_idx_ = no_slot;
      refined_.clear();
    }
    node* n = store_->head[idx];
    store_->head[idx] = nullptr;
    clear_bit(idx);
    n->prev->next = nullptr;  // open the ring; order is preserved below
    while (n != nullptr) {
      node* next = n->next;
      place(*n);
      n = next;
    }
  }

  void insert_overdue(node& n) noexcept {
    n.slot = overdue_index;
    if (overdue_ == nullptr) {
      n.prev = n.next = &n;
      overdue_ = &n;
      return;
    }
    // Sorted by due, ties in insertion order: walk back from the tail.
    node* after = overdue_->prev;
    while (before(n, *after)) {
      if (after == overdue_) {  // n becomes the new head
        link_after(*overdue_->prev, n);
        overdue_ = &n;
        return;
      }
      after = after->prev;
    }
    link_after(*after, n);
  }

  [[nodiscard]] static bool before(const node& a, const node& b) noexcept { return a.due < b.due; }

  // -- circular lists --------------------------------------------------------

  static void link_after(node& pos, node& n) noexcept {
    n.prev = &pos;
    n.next = pos.next;
    pos.next->prev = &n;
    pos.next = &n;
  }

  /// Appends n to a non-empty ring.
  static void append(node* head, node& n) noexcept { link_after(*head->prev, n); }

  /// Unlinks n from the ring starting at head; returns the new head (nullptr if empty).
  static node* unlink(node* head, node& n) noexcept {
    node* next = n.next;
    if (next == &n) {
      n.prev = n.next = nullptr;
      return nullptr;
    }
    n.prev->next = next;
    next->prev = n.prev;
    n.prev = n.next = nullptr;
    return head == &n ? next : head;
  }

  // -- occupancy bitmaps ---------------------------------------------------------

  // Level 0's 64 words have a summary word (bit w: word w is non-zero);
  // a higher level's 4 words are scanned directly.

  void set_bit(unsigned idx) noexcept {
    const unsigned w = idx / 64;
    bits_[w] |= std::uint64_t{1} << (idx % 64);
    if (idx < up) {
      summary0_ |= std::uint64_t{1} << w;
      level_mask_ |= 1u;
    } else {
      level_mask_ |= 1u << storage::level_of(idx);
    }
  }

  void clear_bit(unsigned idx) noexcept {
    const unsigned w = idx / 64;
    bits_[w] &= ~(std::uint64_t{1} << (idx % 64));
    if (idx < up) {
      if (bits_[w] == 0) {
        summary0_ &= ~(std::uint64_t{1} << w);
        if (summary0_ == 0) level_mask_ &= ~1u;
      }
    } else {
      const unsigned k = storage::level_of(idx);
      const std::uint64_t* l = &bits_[storage::first_slot(k) / 64];
      if ((l[0] | l[1] | l[2] | l[3]) == 0) level_mask_ &= ~(1u << k);
    }
  }

  /// The lowest occupied slot of (non-empty) level k, as a digit of that level.
  [[nodiscard]] unsigned lowest_slot(unsigned k) const noexcept {
    if (k == 0) {
      const unsigned w = static_cast<unsigned>(std::countr_zero(summary0_));
      return w * 64 + static_cast<unsigned>(std::countr_zero(bits_[w]));
    }
    const std::uint64_t* l = &bits_[storage::first_slot(k) / 64];
    unsigned i = 0;
    while (l[i] == 0) ++i;
    return i * 64 + static_cast<unsigned>(std::countr_zero(l[i]));
  }

  void set_stale(unsigned idx) noexcept {
    store_->stale[(idx - up) / 64] |= std::uint64_t{1} << ((idx - up) % 64);
  }
  void clear_stale(unsigned idx) noexcept {
    store_->stale[(idx - up) / 64] &= ~(std::uint64_t{1} << ((idx - up) % 64));
  }
  [[nodiscard]] bool is_stale(unsigned idx) const noexcept {
    return (store_->stale[(idx - up) / 64] >> ((idx - up) % 64)) & 1;
  }

  /// Recomputes a higher slot's minimum due (after its minimum was erased).
  /// With a limit, gives up (false) on slots longer than rescan_limit.
  bool rescan(unsigned idx, bool limited = true) const noexcept {
    const node* head = store_->head[idx];
    std::uint64_t m = head->due;
    std::uint32_t count = 1;
    unsigned seen = 1;
    for (const node* n = head->next; n != head; n = n->next) {
      if (limited && ++seen > rescan_limit) return false;
      if (n->due < m) {
        m = n->due;
        count = 1;
      } else if (n->due == m) {
        ++count;
      }
    }
    store_->min_due[idx - up] = m;
    store_->min_count[idx - up] = count;
    store_->stale[(idx - up) / 64] &= ~(std::uint64_t{1} << ((idx - up) % 64));
    return true;
  }

  // -- the refined slot --------------------------------------------------------
  // When the earliest slot is a long higher-level slot whose minimum was
  // erased, rescanning it before every blocking poll would cost O(slot) each
  // time (say, idle timeouts refreshed in the order they were set, which
  // always clears the earliest). Instead that one slot gets a binary min-heap
  // of its due times, built once in O(slot): its minimum is then exact at
  // O(log slot) per insert and erase into that slot, until it cascades.
  // Its nodes keep their place in the slot's list (order is untouched) and
  // carry their heap position in slot.

  struct refined_entry {
    std::uint64_t due;
    node* timer;
  };

  /// Builds the refined index of slot idx and returns its minimum due.
  std::uint64_t refine(unsigned idx) const noexcept {
    if (refined_idx_ != no_slot) unrefine();
    node* head = store_->head[idx];
    try {
      refined_.clear();
      node* n = head;
      do {
        refined_.push_back(refined_entry{n->due, n});
        n = n->next;
      } while (n != head);
    } catch (const std::bad_alloc&) {
      refined_.clear();
      rescan(idx, false);  // no memory for an index: scan the whole slot
      return store_->min_due[idx - up];
    }
    for (std::size_t i = refined_.size() / 2; i-- > 0;) refined_down(i, refined_[i]);
    for (std::size_t i = 0; i < refined_.size(); ++i)
      refined_[i].timer->slot = refined_flag | static_cast<std::uint32_t>(i);
    refined_idx_ = idx;
    return refined_.front().due;
  }

  /// Drops the refined index. The slot's stale mark (set when it was refined,
  /// never cleared while refined) makes the next look rescan it.
  void unrefine() const noexcept {
    const unsigned idx = refined_idx_;
    refined_idx_ = no_slot;
    refined_.clear();
    node* head = store_->head[idx];
    node* n = head;
    do {
      n->slot = idx;
      n = n->next;
    } while (n != head);
  }

  void erase_refined(node& n) noexcept {
    const unsigned idx = refined_idx_;
    node*& head = store_->head[idx];
    head = unlink(head, n);
    if (head == nullptr) {
      clear_bit(idx);
      refined_idx_ = no_slot;
      refined_.clear();
      return;
    }
    const std::size_t i = n.slot & ~refined_flag;
    const refined_entry last = refined_.back();
    refined_.pop_back();
    if (i == refined_.size()) return;
    if (i > 0 && last.due < refined_[(i - 1) / 2].due)
      refined_up(i, last);
    else
      refined_down(i, last);
  }

  void refined_set(std::size_t i, const refined_entry& e) const noexcept {
    refined_[i] = e;
    e.timer->slot = refined_flag | static_cast<std::uint32_t>(i);
  }

  void refined_up(std::size_t i, const refined_entry e) const noexcept {
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (!(e.due < refined_[parent].due)) break;
      refined_set(i, refined_[parent]);
      i = parent;
    }
    refined_set(i, e);
  }

  void refined_down(std::size_t i, const refined_entry e) const noexcept {
    const std::size_t n = refined_.size();
    for (;;) {
      std::size_t c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && refined_[c + 1].due < refined_[c].due) ++c;
      if (!(refined_[c].due < e.due)) break;
      refined_set(i, refined_[c]);
      i = c;
    }
    refined_set(i, e);
  }

  void swap(wheel_timers& o) noexcept {
    using std::swap;
    swap(store_, o.store_);
    swap(overdue_, o.overdue_);
    swap(cur_, o.cur_);
    swap(size_, o.size_);
    swap(level_mask_, o.level_mask_);
    swap(summary0_, o.summary0_);
    for (unsigned i = 0; i < words; ++i) swap(bits_[i], o.bits_[i]);
    swap(refined_, o.refined_);
    swap(refined_idx_, o.refined_idx_);
  }

  std::unique_ptr<storage> store_;  ///< slots, allocated on first insert
  node* overdue_ = nullptr;   ///< sorted ring of timers inserted with due < cur_
  std::uint64_t cur_ = 0;           ///< position: timers with due < cur_ were all popped
  std::size_t size_ = 0;
  std::uint32_t level_mask_ = 0;                   ///< bit k: level k has an occupied slot
  std::uint64_t summary0_ = 0;                     ///< bit w: bits_[w] (level 0) is non-zero
  std::uint64_t bits_[words] = {};                 ///< occupied slots
  mutable std::vector<refined_entry> refined_;     ///< heap of the refined slot's due times
  mutable std::uint32_t refined_idx_ = no_slot;    ///< the refined slot, if any
};

static_assert(timer_store<wheel_timers>);

}  // namespace phaseloop
