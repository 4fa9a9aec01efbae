#pragma once
// Loop-owned record pools. Records live in fixed-size chunks, so their
// addresses never change while the pool grows; a freed slot's generation is
// bumped, so a handle (index + generation) to a finished record is detected
// as stale instead of touching reused memory.
//
// Slots are handed out in address order from a bump index and, once freed,
// from a LIFO free list. When the last live record is released the free list
// is dropped and the bump index restarts at slot 0: after a burst (a million
// timers set and fired) the next burst writes its records sequentially again
// instead of walking the free list in the scattered order they were freed.
//
// A generation never repeats within the process's life: a slot whose 32-bit
// generation is used up (2^31 reuses) is retired, never handed out again, so
// a stale handle cannot name a later record (one slot lost per 2^31 reuses).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>

namespace phaseloop::detail {

/// The chunk addresses of a slot_pool: one non-template growable array, so a
/// pool per record type does not instantiate a vector of unique_ptr each.
class chunk_table {
 public:
  chunk_table() = default;
  chunk_table(const chunk_table&) = delete;
  chunk_table& operator=(const chunk_table&) = delete;
  ~chunk_table() { delete[] chunks_; }

  /// Appends a chunk; on std::bad_alloc the table is unchanged.
  void push_back(void* chunk) {
    if (size_ == capacity_) {
      const std::size_t capacity = capacity_ == 0 ? 4 : capacity_ * 2;
      void** chunks = new void*[capacity];
      if (size_ != 0) std::memcpy(chunks, chunks_, size_ * sizeof(void*));
      delete[] chunks_;
      chunks_ = chunks;
      capacity_ = capacity;
    }
    chunks_[size_++] = chunk;
  }
  [[nodiscard]] void* operator[](std::size_t i) const noexcept { return chunks_[i]; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  void** chunks_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

/// What a pooled record carries: a generation, odd while the slot is in use,
/// and a link that is the next free slot while free and, while in use, the
/// slot's own index (so a record knows its index without another field) and
/// one bit for the record's owner, clear when the slot is acquired. Whole
/// 32-bit words, read and written whole: a narrower store followed by a wider
/// load of the same bytes would stall the loop's hot paths.
struct pool_slot {
  static constexpr std::uint32_t index_mask = 0x7fffffffu;
  std::uint32_t generation = 0;
  std::uint32_t link = 0;
  [[nodiscard]] bool in_use() const noexcept { return (generation & 1u) != 0; }
  [[nodiscard]] std::uint32_t slot_index() const noexcept { return link & index_mask; }
  [[nodiscard]] bool owner_bit() const noexcept { return (link >> 31) != 0; }
  void set_owner_bit(bool on) noexcept { link = (link & index_mask) | (on ? ~index_mask : 0u); }
};

template <class T, std::size_t ChunkSize = 256>
class slot_pool {
  static_assert((ChunkSize & (ChunkSize - 1)) == 0, "chunk size must be a power of two");

 public:
  /// No slot; indices stay below it (2^31 - 1 records at the most).
  static constexpr std::uint32_t npos = 0x7fffffffu;
  /// A free slot at or past this generation is retired (its next in-use
  /// generation would be the last odd one, or wrap).
  static constexpr std::uint32_t retired = 0xfffffffeu;

  slot_pool() = default;
  slot_pool(const slot_pool&) = delete;
  slot_pool& operator=(const slot_pool&) = delete;
  ~slot_pool() {
    for (std::size_t i = chunks_.size(); i-- > 0;) delete[] chunk(i);
  }

  /// Takes a free slot (growing by one chunk when none is free) and returns its index.
  std::uint32_t acquire() {
    std::uint32_t index = free_head_;
    if (index != npos) {
      free_head_ = (*this)[index].link;
    } else {
      do {
        if (bump_ == capacity()) grow();
        index = bump_++;
      } while ((*this)[index].generation >= retired);
    }
    T& record = (*this)[index];
    record.link = index;
    ++record.generation;
    ++live_;
    return index;
  }

  /// Returns a slot to the pool; handles to it become stale.
  void release(std::uint32_t index) noexcept {
    T& record = (*this)[index];
    ++record.generation;
    if (record.generation >= retired) [[unlikely]] {  // worn out: never handed out again
      record.generation = retired;
      if (--live_ == 0) {
        free_head_ = npos;
        bump_ = 0;
      }
      return;
    }
    if (--live_ == 0) {  // everything is free: hand slots out in address order again
      free_head_ = npos;
      bump_ = 0;
      return;
    }
    record.link = free_head_;
    free_head_ = index;
  }

  T& operator[](std::uint32_t index) noexcept { return chunk(index / ChunkSize)[index & (ChunkSize - 1)]; }
  const T& operator[](std::uint32_t index) const noexcept {
    return chunk(index / ChunkSize)[index & (ChunkSize - 1)];
  }

  /// The record a handle names, or nullptr when the handle is stale or out of range.
  T* find(std::uint32_t index, std::uint32_t generation) noexcept {
    if (index >= capacity()) return nullptr;
    T& record = (*this)[index];
    return record.in_use() && record.generation == generation ? &record : nullptr;
  }

  [[nodiscard]] std::size_t capacity() const noexcept { return chunks_.size() * ChunkSize; }
  [[nodiscard]] std::size_t live() const noexcept { return live_; }

  /// Calls f(index, record) for every record in use.
  template <class F>
  void for_each_live(F&& f) {
    for (std::uint32_t i = 0; i < capacity(); ++i)
      if ((*this)[i].in_use()) f(i, (*this)[i]);
  }

 private:
  void grow() {
    if (capacity() + ChunkSize > npos) throw std::length_error("phaseloop: too many live records in one pool");
    T* fresh = new T[ChunkSize]();
    try {
      chunks_.push_back(fresh);
    } catch (...) {
      delete[] fresh;
      throw;
    }
  }

  [[nodiscard]] T* chunk(std::size_t i) const noexcept { return static_cast<T*>(chunks_[i]); }

  chunk_table chunks_;
  std::uint32_t free_head_ = npos;  // freed slots below bump_, most recent first
  std::uint32_t bump_ = 0;          // slots from here on have not been handed out since the pool was last empty
  std::size_t live_ = 0;
};

}  // namespace phaseloop::detail
