#pragma once
// A growable FIFO ring buffer: push and pop allocate nothing once the
// capacity has grown to the queue's high-water mark.

#include <cstddef>
#include <memory>
#include <new>
#include <utility>

namespace phaseloop::detail {

template <class T>
class ring {
 public:
  ring() = default;
  ring(const ring&) = delete;
  ring& operator=(const ring&) = delete;
  ~ring() {
    clear();
    std::allocator<T>{}.deallocate(data_, capacity_);
  }

  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  void push_back(T value) {
    if (size_ == capacity_) grow();
    ::new (static_cast<void*>(data_ + ((head_ + size_) & (capacity_ - 1)))) T(std::move(value));
    ++size_;
  }

  /// Removes and returns the front element; the queue must not be empty.
  T pop_front() {
    T* slot = data_ + head_;
    T value(std::move(*slot));
    slot->~T();
    head_ = (head_ + 1) & (capacity_ - 1);
    --size_;
    return value;
  }

  void clear() noexcept {
    while (size_ != 0) {
      data_[head_].~T();
      head_ = (head_ + 1) & (capacity_ - 1);
      --size_;
    }
    head_ = 0;
  }

 private:
  void grow() {
    const std::size_t next = capacity_ == 0 ? 16 : capacity_ * 2;
    T* fresh = std::allocator<T>{}.allocate(next);
    for (std::size_t i = 0; i < size_; ++i) {
      T* from = data_ + ((head_ + i) & (capacity_ - 1));
      ::new (static_cast<void*>(fresh + i)) T(std::move(*from));
      from->~T();
    }
    std::allocator<T>{}.deallocate(data_, capacity_);
    data_ = fresh;
    capacity_ = next;
    head_ = 0;
  }

  T* data_ = nullptr;
  std::size_t capacity_ = 0;  // always zero or a power of two
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace phaseloop::detail
