#pragma once
// list_map: the few std::map operations the mock backend uses, as a list
// sorted by key. Iteration is in key order, references and iterators stay
// valid across inserts and the erase of other entries (as with std::map),
// and lookups are linear: the mock holds a handful of descriptors. <map> and
// <unordered_map> would cost every file that includes phaseloop ~10,000
// preprocessed lines.

namespace phaseloop::detail {

template <class K, class V>
class list_map {
 public:
  struct value_type {
    const K first;
    V second;
  };

 private:
  struct node {
    explicit node(const K& key) : value{key, V()} {}
    value_type value;
    node* next = nullptr;
  };

  template <class Value>
  class basic_iterator {
   public:
    basic_iterator() = default;
    Value& operator*() const noexcept { return at_->value; }
    Value* operator->() const noexcept { return &at_->value; }
    basic_iterator& operator++() noexcept {
      at_ = at_->next;
      return *this;
    }
    friend bool operator==(const basic_iterator&, const basic_iterator&) = default;

   private:
    friend class list_map;
    explicit basic_iterator(node* at) noexcept : at_(at) {}
    node* at_ = nullptr;
  };

 public:
  using iterator = basic_iterator<value_type>;
  using const_iterator = basic_iterator<const value_type>;

  list_map() = default;
  list_map(const list_map&) = delete;
  list_map& operator=(const list_map&) = delete;
  ~list_map() {
    while (node* n = head_) {
      head_ = n->next;
      delete n;
    }
  }

  iterator begin() noexcept { return iterator(head_); }
  iterator end() noexcept { return iterator(); }
  const_iterator begin() const noexcept { return const_iterator(head_); }
  const_iterator end() const noexcept { return const_iterator(); }

  iterator find(const K& key) noexcept { return iterator(find_node(key)); }
  const_iterator find(const K& key) const noexcept { return const_iterator(find_node(key)); }

  /// The value under `key`, value-initialized when it is new.
  V& operator[](const K& key) {
    node** link = &head_;
    while (*link != nullptr && (*link)->value.first < key) link = &(*link)->next;
    if (*link == nullptr || key < (*link)->value.first) {
      node* fresh = new node(key);
      fresh->next = *link;
      *link = fresh;
    }
    return (*link)->value.second;
  }

  void erase(iterator it) noexcept {
    node** link = &head_;
    while (*link != it.at_) link = &(*link)->next;
    *link = it.at_->next;
    delete it.at_;
  }

 private:
  node* find_node(const K& key) const noexcept {
    node* n = head_;
    while (n != nullptr && n->value.first < key) n = n->next;
    return n != nullptr && !(key < n->value.first) ? n : nullptr;
  }

  node* head_ = nullptr;
};

}  // namespace phaseloop::detail
