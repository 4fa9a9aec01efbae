#pragma once
// An intrusive doubly linked list whose iteration survives the removal of any
// node, the current one included: callbacks run from a list may stop, start
// or close any handle of that list.

namespace phaseloop::detail {

struct list_hook {
  list_hook* prev = nullptr;
  list_hook* next = nullptr;
  bool linked = false;
};

template <class T>  // T derives from list_hook
class intrusive_list {
 public:
  [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
  [[nodiscard]] T* front() const noexcept { return static_cast<T*>(head_); }

  void push_back(T& node) noexcept {
    list_hook& h = node;
    h.prev = tail_;
    h.next = nullptr;
    h.linked = true;
    (tail_ != nullptr ? tail_->next : head_) = &h;
    tail_ = &h;
  }

  void push_front(T& node) noexcept {
    list_hook& h = node;
    h.prev = nullptr;
    h.next = head_;
    h.linked = true;
    (head_ != nullptr ? head_->prev : tail_) = &h;
    head_ = &h;
  }

  void remove(T& node) noexcept {
    list_hook& h = node;
    if (!h.linked) return;
    if (cursor_ == &h) cursor_ = h.next;
    (h.prev != nullptr ? h.prev->next : head_) = h.next;
    (h.next != nullptr ? h.next->prev : tail_) = h.prev;
    h.prev = h.next = nullptr;
    h.linked = false;
  }

  /// Moves every node of `other` to the back of this list, in order.
  void splice_back(intrusive_list& other) noexcept {
    if (other.head_ == nullptr) return;
    other.head_->prev = tail_;
    (tail_ != nullptr ? tail_->next : head_) = other.head_;
    tail_ = other.tail_;
    other.head_ = other.tail_ = nullptr;
  }

  /// Moves every node of `other` to the front of this list, in order.
  void splice_front(intrusive_list& other) noexcept {
    if (other.head_ == nullptr) return;
    other.tail_->next = head_;
    (head_ != nullptr ? head_->prev : tail_) = other.tail_;
    head_ = other.head_;
    other.head_ = other.tail_ = nullptr;
  }

  T* pop_front() noexcept {
    T* node = front();
    if (node != nullptr) remove(*node);
    return node;
  }

  /// Calls f(node) for each node that is in the list when the walk reaches
  /// it; nodes appended during the walk are visited too, so callers that must
  /// skip them compare an epoch. Safe against any removal from inside f.
  template <class F>
  void for_each_safe(F&& f) {
    list_hook* saved = cursor_;
    struct restore {
      intrusive_list* self;
      list_hook* saved;
      ~restore() { self->cursor_ = saved; }
    } guard{this, saved};
    cursor_ = head_;
    while (cursor_ != nullptr) {
      list_hook* current = cursor_;
      cursor_ = current->next;
      f(*static_cast<T*>(current));
    }
  }

 private:
  list_hook* head_ = nullptr;
  list_hook* tail_ = nullptr;
  list_hook* cursor_ = nullptr;
};

}  // namespace phaseloop::detail
