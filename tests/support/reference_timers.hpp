#pragma once
// The reference timer store of the differential tests: a std::multimap keyed
// by (due, insertion number), as plainly correct as a timer store can be. It satisfies
// phaseloop::timer_store, so it can also run inside basic_loop; plus a small
// deterministic random generator shared by the differential tests (the
// standard distributions differ between standard libraries; this does not).

#include "support.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <utility>

namespace phaseloop::test {

/// Uptimes the timer tests cross: where 32-bit and double-precision clocks break.
inline constexpr std::uint64_t two31 = std::uint64_t{1} << 31;
inline constexpr std::uint64_t two32 = std::uint64_t{1} << 32;
inline constexpr std::uint64_t two53 = std::uint64_t{1} << 53;

/// std::multimap<(due, insertion number), node*>: the obviously correct timer store.
class reference_timers {
 public:
  struct node;

 private:
  using map = std::multimap<std::pair<std::uint64_t, std::uint64_t>, node*>;

 public:
  /// Where the timer sits in the map.
  struct node {
    map::iterator at{};
  };

  void insert(node& n, std::uint64_t due) { n.at = map_.emplace(std::pair{due, next_seq_++}, &n); }

  void erase(node& n) { map_.erase(n.at); }

  node* pop_expired(std::uint64_t now) {
    if (map_.empty() || map_.begin()->first.first > now) return nullptr;
    node* n = map_.begin()->second;
    map_.erase(map_.begin());
    return n;
  }

  [[nodiscard]] std::uint64_t next_due() const {
    return map_.empty() ? UINT64_MAX : map_.begin()->first.first;
  }

  [[nodiscard]] std::size_t size() const { return map_.size(); }

  /// The earliest timer, or nullptr (tests use it to clear the earliest).
  [[nodiscard]] node* peek() const { return map_.empty() ? nullptr : map_.begin()->second; }

 private:
  map map_;
  std::uint64_t next_seq_ = 0;
};

static_assert(timer_store<reference_timers>);

/// splitmix64: a tiny seeded generator whose streams are the same everywhere.
class det_random {
 public:
  explicit det_random(std::uint64_t seed) noexcept : state_(seed) {}

  std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  /// Uniform in [0, n) (n > 0; the modulo bias is irrelevant for tests).
  std::uint64_t below(std::uint64_t n) noexcept { return next() % n; }

  /// Uniform in [lo, hi].
  std::uint64_t between(std::uint64_t lo, std::uint64_t hi) noexcept {
    return hi - lo == UINT64_MAX ? next() : lo + below(hi - lo + 1);
  }

  /// True with probability percent/100.
  bool chance(unsigned percent) noexcept { return below(100) < percent; }

 private:
  std::uint64_t state_;
};

}  // namespace phaseloop::test
