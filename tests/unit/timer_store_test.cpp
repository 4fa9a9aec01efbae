// Timer stores on their own: heap_timers and wheel_timers against the
// timer_store contract, at the extremes of the 64-bit clock, with millions of
// timers, and differentially against a std::multimap reference over seeded
// random streams (the loop-level differential is timer_differential_test.cpp).
// phaseloop: portable (mock backend and inline executor only; built for Windows too)

#include "support.hpp"
#include "reference_timers.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace {

using phaseloop::heap_timers;
using phaseloop::wheel_timers;
using phaseloop::test::det_random;
using phaseloop::test::reference_timers;

using phaseloop::test::two31;
using phaseloop::test::two32;
using phaseloop::test::two53;
constexpr std::uint64_t max_delay = two31 - 1;  // Node's largest timeout

/// A store plus the nodes it orders, addressed by id, with each node's due
/// time and insertion number as of its last add.
template <class S>
struct fixture {
  using node = typename S::node;
  S store;
  std::vector<node> nodes;
  std::vector<std::uint64_t> due;
  std::vector<std::uint64_t> order;
  std::uint64_t inserted = 0;

  explicit fixture(std::size_t n = 64) : nodes(n), due(n), order(n) {}

  node& add(std::size_t id, std::uint64_t d) {
    node& n = nodes.at(id);
    due[id] = d;
    order[id] = ++inserted;
    store.insert(n, d);
    return n;
  }
  void remove(std::size_t id) { store.erase(nodes.at(id)); }
  [[nodiscard]] std::size_t id_of(const node* n) const { return static_cast<std::size_t>(n - nodes.data()); }

  /// Pops every timer due at `now`, as ids.
  std::vector<std::size_t> drain(std::uint64_t now) {
    std::vector<std::size_t> out;
    while (node* n = store.pop_expired(now)) out.push_back(id_of(n));
    return out;
  }
};

using ids = std::vector<std::size_t>;

}  // namespace

TEMPLATE_TEST_CASE("timer store: empty store", "[timers][wheel]", heap_timers, wheel_timers, reference_timers) {
  TestType s;
  CHECK(s.size() == 0);
  CHECK(s.next_due() == UINT64_MAX);
  CHECK(s.pop_expired(0) == nullptr);
  CHECK(s.pop_expired(UINT64_MAX) == nullptr);
  CHECK(s.next_due() == UINT64_MAX);
}

TEMPLATE_TEST_CASE("timer store: due order, ties in insertion order", "[timers][wheel]", heap_timers, wheel_timers, reference_timers) {
  fixture<TestType> f;
  f.add(0, 30);
  f.add(1, 10);
  f.add(2, 20);
  f.add(3, 10);
  f.add(4, 300);
  f.add(5, 10);
  CHECK(f.store.size() == 6);
  CHECK(f.store.next_due() == 10);
  CHECK(f.drain(9).empty());
  CHECK(f.drain(10) == ids{1, 3, 5});
  CHECK(f.store.next_due() == 20);
  CHECK(f.drain(299) == ids{2, 0});
  CHECK(f.store.next_due() == 300);
  CHECK(f.drain(1000) == ids{4});
  CHECK(f.store.size() == 0);
}

TEMPLATE_TEST_CASE("timer store: erase anywhere, including timers due in the current batch", "[timers][wheel]",
                   heap_timers, wheel_timers, reference_timers) {
  fixture<TestType> f;
  for (std::size_t i = 0; i < 10; ++i) f.add(i, 5 + (i % 3));  // dues 5 6 7 5 6 7 ...
  f.remove(3);
  CHECK(f.store.size() == 9);
  auto* first = f.store.pop_expired(100);
  REQUIRE(first == &f.nodes[0]);
  f.remove(6);  // due 5, later in this batch
  f.remove(2);  // due 7
  f.add(20, 101);
  CHECK(f.drain(100) == ids{9, 1, 4, 7, 5, 8});
  CHECK(f.store.next_due() == 101);
  CHECK(f.drain(101) == ids{20});
}

TEMPLATE_TEST_CASE("timer store: equal due times keep the order they were set in across cascades",
                   "[timers][wheel]", heap_timers, wheel_timers, reference_timers) {
  // The same due time set from ever closer positions: in a wheel the first
  // lands on a high level and is cascaded, later ones land lower.
  for (const std::uint64_t due : {std::uint64_t{1000}, std::uint64_t{70'000}, two31 + 5, two32 + 77, two53 + 1}) {
    fixture<TestType> f;
    std::uint64_t now = 0;
    std::size_t id = 0;
    f.add(id++, due);
    f.add(id++, due + 1);
    for (std::uint64_t gap : {due / 2, due / 4, std::uint64_t{300}, std::uint64_t{255}, std::uint64_t{1}}) {
      if (due - gap <= now) continue;
      now = due - gap;
      CHECK(f.drain(now).empty());
      f.add(id++, due + 1);
      f.add(id++, due);
    }
    CHECK(f.store.next_due() == due);
    const ids fired = f.drain(due + 1);
    REQUIRE(fired.size() == id);
    // Every due-time timer before every due+1 timer, each group in set order.
    ids expect;
    for (std::size_t i = 0; i < id; ++i)
      if (f.due[i] == due) expect.push_back(i);
    for (std::size_t i = 0; i < id; ++i)
      if (f.due[i] == due + 1) expect.push_back(i);
    CHECK(fired == expect);
  }
}

TEMPLATE_TEST_CASE("timer store: next_due is exact for far timers, also after erasing the earliest",
                   "[timers][wheel]", heap_timers, wheel_timers, reference_timers) {
  fixture<TestType> f;
  f.add(0, 123'456'789);
  f.add(1, 123'456'790);
  f.add(2, 123'456'788 + 1000);
  CHECK(f.store.next_due() == 123'456'789);
  f.remove(0);
  CHECK(f.store.next_due() == 123'456'790);
  CHECK(f.drain(123'456'789).empty());
  CHECK(f.store.next_due() == 123'456'790);
  f.remove(1);
  CHECK(f.store.next_due() == 123'457'788);
  f.add(3, two53 + two31);
  f.remove(2);
  CHECK(f.store.next_due() == two53 + two31);
  CHECK(f.drain(two53 + two31 - 1).empty());
  CHECK(f.store.next_due() == two53 + two31);
  CHECK(f.drain(two53 + two31) == ids{3});
  CHECK(f.store.next_due() == UINT64_MAX);
}

TEMPLATE_TEST_CASE("timer store: timers inserted at or before the store's position fire at the next pop",
                   "[timers][wheel]", heap_timers, wheel_timers, reference_timers) {
  fixture<TestType> f;
  f.add(0, 5000);
  CHECK(f.drain(1000).empty());  // a wheel moves its position to 1000 here
  f.add(1, 10);
  f.add(2, 1000);
  f.add(3, 5);
  f.add(4, 10);
  f.add(5, 1001);
  CHECK(f.store.next_due() == 5);
  CHECK(f.drain(4).empty());
  CHECK(f.drain(1000) == ids{3, 1, 4, 2});
  f.add(6, 999);
  CHECK(f.drain(1001) == ids{6, 5});
  CHECK(f.drain(6000) == ids{0});
}

TEMPLATE_TEST_CASE("timer store: a timer erased and inserted again goes behind its equals",
                   "[timers][wheel]", heap_timers, wheel_timers, reference_timers) {
  // What refresh() and a re-armed interval do: the timer is set anew.
  fixture<TestType> f;
  f.add(0, 700);
  f.add(1, 700);
  f.add(2, 70'000);
  f.add(3, 70'000);
  f.add(4, 70'000);
  f.remove(0);
  f.add(0, 700);
  f.remove(3);
  f.add(3, 70'000);
  CHECK(f.drain(700) == ids{1, 0});
  f.remove(2);
  f.add(2, 70'000);
  CHECK(f.drain(70'000) == ids{4, 3, 2});
}

TEMPLATE_TEST_CASE("timer store: a clock past 2^31, 2^32 and 2^53 ms, timeouts up to 2^31-1 ms",
                   "[timers][wheel]", heap_timers, wheel_timers, reference_timers) {
  for (const std::uint64_t start :
       {two31 - 3, two32 - 3, two53 - 3, two53 + two31, two53 + two32 - 1, (std::uint64_t{1} << 63) - 2}) {
    const std::uint64_t delays[] = {1, 2, 255, 256, 4095, 4096, 4097, 1'048'576, 1'000'000, two31 - 2, max_delay};
    std::vector<std::pair<std::uint64_t, std::uint64_t>> fired;
    std::vector<int> count(8 * std::size(delays), 0);
    // Arm timers from several positions straddling the power of two.
    fixture<TestType> g(count.size());
    std::uint64_t now = start;
    std::size_t id = 0;
    for (int step = 0; step < 8; ++step) {
      for (std::uint64_t d : delays) g.add(id++, now + d);
      for (std::size_t i : g.drain(now)) {
        ++count[i];
        fired.emplace_back(g.due[i], g.order[i]);
      }
      now += 1 + step;
    }
    // Run to the end, in exactly-computed jumps (next_due), as a loop would.
    while (g.store.size() != 0) {
      const std::uint64_t due = g.store.next_due();
      now = std::max(now, due);
      for (auto* n = g.store.pop_expired(now); n != nullptr; n = g.store.pop_expired(now)) {
        const std::size_t i = g.id_of(n);
        ++count[i];
        fired.emplace_back(g.due[i], g.order[i]);
        REQUIRE(g.due[i] <= now);
      }
    }
    CHECK(std::is_sorted(fired.begin(), fired.end()));
    CHECK(std::all_of(count.begin(), count.end(), [](int c) { return c == 1; }));
  }
}

TEST_CASE("wheel_timers: the position follows now and never passes it", "[wheel]") {
  wheel_timers w;
  CHECK(w.pop_expired(two53) == nullptr);
  CHECK(w.position() == two53);
  wheel_timers::node a;
  w.insert(a, two53 + max_delay);
  CHECK(w.pop_expired(two53 + 5) == nullptr);
  CHECK(w.position() == two53 + 5);
  CHECK(w.next_due() == two53 + max_delay);
  CHECK(w.pop_expired(two53 + 4) == nullptr);  // an older `now` is harmless
  CHECK(w.position() == two53 + 5);
  CHECK(w.pop_expired(UINT64_MAX - 1) == &a);
  CHECK(w.position() == two53 + max_delay);
  CHECK(w.size() == 0);
}

TEST_CASE("wheel_timers: moving keeps the timers", "[wheel]") {
  wheel_timers w;
  wheel_timers::node a, b;
  w.insert(a, 10);
  w.insert(b, 100'000);
  wheel_timers m(std::move(w));
  CHECK(m.size() == 2);
  wheel_timers n;
  n = std::move(m);
  CHECK(n.next_due() == 10);
  CHECK(n.pop_expired(200'000) == &a);
  n.erase(b);
  CHECK(n.size() == 0);
  CHECK(n.next_due() == UINT64_MAX);
}

TEMPLATE_TEST_CASE("timer store: millions of live timers", "[timers][wheel]", heap_timers, wheel_timers) {
  constexpr std::size_t count = 2'000'000;
  fixture<TestType> f(count);
  det_random rng(42);
  const std::uint64_t base = two53 - 1'000;
  for (std::size_t i = 0; i < count; ++i) f.add(i, base + 1 + rng.below(i % 4 == 0 ? max_delay : 100'000));
  // Clear a tenth of them.
  std::size_t cleared = 0;
  for (std::size_t i = 3; i < count; i += 10, ++cleared) f.remove(i);
  REQUIRE(f.store.size() == count - cleared);
  std::uint64_t now = base, last_due = 0, last_seq = 0, fired = 0;
  bool ordered = true;
  while (f.store.size() != 0) {
    now = std::max(now + 997, f.store.next_due());
    while (auto* n = f.store.pop_expired(now)) {
      const std::size_t i = f.id_of(n);
      ordered = ordered && (f.due[i] > last_due || (f.due[i] == last_due && f.order[i] > last_seq));
      last_due = f.due[i];
      last_seq = f.order[i];
      ++fired;
    }
  }
  CHECK(ordered);
  CHECK(fired == count - cleared);
}

TEMPLATE_TEST_CASE("timer store: a million timers at one due time", "[timers][wheel]", heap_timers, wheel_timers) {
  constexpr std::size_t count = 1'000'000;
  fixture<TestType> f(count);
  for (std::size_t i = 0; i < count; ++i) f.add(i, two32 + 1000);
  CHECK(f.store.next_due() == two32 + 1000);
  std::size_t expect = 0;
  bool ordered = true;
  while (auto* n = f.store.pop_expired(two32 + 1000)) {
    ordered = ordered && n == &f.nodes[expect];
    ++expect;
  }
  CHECK(ordered);
  CHECK(expect == count);
}

// ---------------------------------------------------------------------------
// Differential: the same seeded stream of operations on heap, wheel and the
// multimap reference; every popped timer, next_due() and size() must agree.

namespace {

/// How a stream picks its operations.
enum class profile {
  mixed,      ///< every kind of delay and clock jump
  clustered,  ///< thousands of far timers in a few wheel slots, the earliest cleared again and again
};

/// Runs one seeded stream on all three stores; returns the first mismatch, or "".
std::string run_store_stream(std::uint64_t seed, std::size_t ops, profile prof = profile::mixed) {
  det_random rng(seed);
  const bool clustered = prof == profile::clustered;
  static constexpr std::uint64_t starts[] = {
      0, 1, two31 - 50, two32 - 50, two53 - 50, two53 + two31, two53 + two32, (std::uint64_t{1} << 62) + 12345,
      UINT64_MAX - (std::uint64_t{1} << 40)};
  const std::uint64_t start = starts[rng.below(std::size(starts))];
  const std::size_t capacity = clustered ? 4096 : 512;

  fixture<heap_timers> h(capacity);
  fixture<wheel_timers> w(capacity);
  fixture<reference_timers> r(capacity);
  std::vector<std::size_t> live, free_ids;
  std::vector<std::size_t> where(capacity, 0);
  for (std::size_t i = capacity; i-- > 0;) free_ids.push_back(i);
  std::uint64_t now = start;
  const std::uint64_t limit = UINT64_MAX - (std::uint64_t{1} << 36);  // dues stay well below overflow

  auto fail = [&](std::size_t step, const std::string& what) {
    return "seed " + std::to_string(seed) + " step " + std::to_string(step) + ": " + what;
  };
  auto pick_delay = [&]() -> std::uint64_t {
    if (clustered) {
      // Mostly two crowded windows: 70-136 s ahead (a few level-1 slots of
      // the wheel) and 5.0-5.15 s ahead (one or two nearer level-1 slots),
      // so both get long and take turns at being the earliest slot.
      if (live.size() < 3000 || rng.chance(30)) return 70'000 + rng.below(rng.chance(50) ? 65'536 : 500);
      return rng.chance(90) ? 5'000 + rng.below(150) : 1 + rng.below(300);
    }
    switch (rng.below(8)) {
      case 0: return rng.below(3);  // 0 (due == now), 1, 2
      case 1: return 1 + rng.below(20);
      case 2: return 1 + rng.below(300);
      case 3: return 200 + rng.below(70'000);
      case 4: return 1 + rng.below(max_delay);
      case 5: return max_delay - rng.below(3);
      case 6: return (std::uint64_t{1} << (4 * (2 + rng.below(9)))) - 1 + rng.below(3);  // wheel digit boundaries
      default: return 1 + rng.below(5000);
    }
  };
  auto insert = [&](bool allow_past) {
    if (free_ids.empty()) return;
    const std::size_t id = free_ids.back();
    free_ids.pop_back();
    std::uint64_t due = std::min(now + pick_delay(), limit);
    if (allow_past && rng.below(50) == 0) due = now - std::min(now, rng.below(1000));  // at or before now
    h.add(id, due);
    w.add(id, due);
    r.add(id, due);
    where[id] = live.size();
    live.push_back(id);
  };
  auto forget = [&](std::size_t id) {
    const std::size_t pos = where[id];
    where[live.back()] = pos;
    live[pos] = live.back();
    live.pop_back();
    free_ids.push_back(id);
  };
  auto erase_random = [&] {
    if (live.empty()) return;
    std::size_t id = live[rng.below(live.size())];
    if (clustered && rng.chance(60)) id = r.id_of(r.store.peek());
    h.remove(id);
    w.remove(id);
    r.remove(id);
    forget(id);
  };

  if (clustered)
    for (std::size_t i = 0; i < 3000; ++i) insert(false);
  for (std::size_t step = 0; step < ops; ++step) {
    const std::uint64_t nd = r.store.next_due();
    if (h.store.next_due() != nd || w.store.next_due() != nd)
      return fail(step, "next_due heap " + std::to_string(h.store.next_due()) + " wheel " +
                            std::to_string(w.store.next_due()) + " reference " + std::to_string(nd));
    if (h.store.size() != r.store.size() || w.store.size() != r.store.size()) return fail(step, "size");
    const unsigned op = static_cast<unsigned>(rng.below(100));
    if (op < (clustered ? 50u : 40u)) {
      insert(true);
    } else if (op < (clustered ? 85u : 55u)) {
      erase_random();
    } else {
      // Advance the clock, then run a timers phase with callbacks that set
      // (always after now) and clear (also timers due in this batch).
      switch (clustered ? rng.below(5) : rng.below(7)) {
        case 0: break;
        case 1: now += rng.below(5); break;
        case 2: now += rng.below(400); break;
        case 3: if (nd != UINT64_MAX) now = std::max(now, nd); break;
        case 4: if (nd != UINT64_MAX && nd > now) now = nd - 1; break;
        case 5: now += rng.below(100'000); break;
        default: now += rng.chance(50) ? two31 + rng.below(two32) : rng.below(max_delay); break;
      }
      now = std::min(now, limit);
      for (;;) {
        auto* a = h.store.pop_expired(now);
        auto* b = w.store.pop_expired(now);
        auto* c = r.store.pop_expired(now);
        const auto ia = a ? a - h.nodes.data() : -1, ib = b ? b - w.nodes.data() : -1, ic = c ? c - r.nodes.data() : -1;
        if (ia != ic || ib != ic)
          return fail(step, "pop at " + std::to_string(now) + ": heap " + std::to_string(ia) + " wheel " +
                                std::to_string(ib) + " reference " + std::to_string(ic));
        if (c == nullptr) break;
        forget(static_cast<std::size_t>(ic));
        const unsigned cb = static_cast<unsigned>(rng.below(10));
        if (cb < 3) {
          const std::size_t before = free_ids.size();
          insert(false);
          if (free_ids.size() != before) {
            // Callbacks only ever set timers after now (Node: at least 1 ms).
            const std::size_t id = live.back();
            if (r.due[id] <= now) {
              h.remove(id), w.remove(id), r.remove(id);
              h.add(id, now + 1), w.add(id, now + 1), r.add(id, now + 1);
            }
          }
        } else if (cb < 5) {
          erase_random();
        }
      }
    }
  }
  return {};
}

}  // namespace

TEST_CASE("timer store differential: heap, wheel and reference agree on 1000 seeded streams", "[timers][wheel]") {
  for (std::uint64_t seed = 1; seed <= 1000; ++seed) {
    const std::string mismatch = run_store_stream(seed, 3000);
    if (!mismatch.empty()) FAIL(mismatch);
  }
  SUCCEED();
}

TEST_CASE("timer store differential: thousands of far timers, the earliest cleared before every look",
          "[timers][wheel]") {
  for (std::uint64_t seed = 5001; seed <= 5100; ++seed) {
    const std::string mismatch = run_store_stream(seed, 6000, profile::clustered);
    if (!mismatch.empty()) FAIL(mismatch);
  }
  SUCCEED();
}

TEST_CASE("timer store differential: long streams", "[timers][wheel]") {
  for (std::uint64_t seed = 100'001; seed <= 100'020; ++seed) {
    const std::string mismatch = run_store_stream(seed, 100'000);
    if (!mismatch.empty()) FAIL(mismatch);
  }
  SUCCEED();
}

TEST_CASE("wheel_timers: a long far slot whose earliest timer keeps being cleared", "[wheel]") {
  // A long far slot X (70 s) and later a long nearer slot Y (5 s),
  // cleared from the front while next_due() is asked after every change: the
  // wheel indexes the earliest long slot, and switches when Y comes first.
  fixture<wheel_timers> w(1000);
  fixture<heap_timers> h(1000);
  fixture<reference_timers> r(1000);
  std::vector<bool> live(1000, false);
  auto add = [&](std::size_t id, std::uint64_t due) {
    w.add(id, due), h.add(id, due), r.add(id, due);
    live[id] = true;
  };
  auto remove = [&](std::size_t id) {
    w.remove(id), h.remove(id), r.remove(id);
    live[id] = false;
  };
  auto earliest = [&] { return r.id_of(r.store.peek()); };
  det_random rng(3);
  for (std::size_t i = 0; i < 300; ++i) add(i, 70'000 + (i * 37) % 300);  // X, out of order
  CHECK(w.store.next_due() == 70'000);
  for (std::size_t i = 0; i < 250; ++i) {
    remove(earliest());
    REQUIRE(w.store.next_due() == h.store.next_due());
    if (i == 100) {
      for (std::size_t j = 0; j < 200; ++j) add(300 + j, 5'000 + (j * 7) % 200);  // Y
      REQUIRE(w.store.next_due() == 5'000);
      for (std::size_t j = 0; j < 150; ++j) {  // clear Y from the front, or anywhere
        std::size_t id = earliest();
        if (rng.chance(30))
          for (id = 300 + rng.below(200); !live[id]; id = 300 + rng.below(200)) {
          }
        remove(id);
        REQUIRE(w.store.next_due() == h.store.next_due());
      }
      for (std::size_t j = 300; j < 500; ++j)
        if (live[j]) remove(j);
      REQUIRE(w.store.next_due() == h.store.next_due());
    }
    if (i % 50 == 0) {  // and set new ones into X now and then
      for (std::size_t j = 0; j < 10; ++j) add(600 + (i / 50) * 10 + j, 70'150 + j * 3);
      REQUIRE(w.store.next_due() == h.store.next_due());
    }
  }
  // Random sets and clears inside the indexed slot, the earliest now and then.
  std::size_t next_id = 700;
  for (int op = 0; op < 5000; ++op) {
    const unsigned pick = static_cast<unsigned>(rng.below(10));
    if (pick < 4 && next_id < 1000) {
      add(next_id++, 70'000 + rng.below(60'000));
    } else if (pick < 8) {
      std::size_t id = rng.below(1000);
      for (int tries = 0; tries < 1000 && !live[id]; ++tries) id = rng.below(1000);
      if (live[id]) remove(id);
    } else if (h.store.size() != 0) {
      remove(earliest());
    }
    if (next_id == 1000)  // recycle ids that are free again
      for (std::size_t id = 700; id < 1000; ++id)
        if (!live[id]) {
          add(id, 70'000 + rng.below(60'000));
          break;
        }
    REQUIRE(w.store.next_due() == h.store.next_due());
  }
  while (h.store.size() != 0) {
    REQUIRE(w.store.next_due() == h.store.next_due());
    const std::uint64_t due = h.store.next_due();
    CHECK(w.drain(due) == h.drain(due));
  }
  CHECK(w.store.size() == 0);
}
