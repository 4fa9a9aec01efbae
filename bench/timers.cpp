// Timer benchmarks (PERFORMANCE.md): each workload on phaseloop with each
// timer store and, in the same binary, on libuv, so every figure has its
// ratio. Each reports ns_per_item (wall time per timer or per reset, set-up
// and clean-up excluded) and, for timers_1m, the memory the live timers took;
// the ratio table at the end has one workload per store ("timers_1m [wheel]")
// with libuv's figure beside it.
//
//   timers_1m       1M one-shot timers, timeout of timer i = 1 + (i*7919 mod 100)
//                   ms, start all, run until all fired (a real epoll loop: it
//                   really waits for the last ones, as libuv does)
//   timers_churn    100k armed 10-11 s timers; 1M resets (cancel + start a new
//                   10-11 s timeout of timer k*7919 mod 100k) in batches of 1000
//                   with one non-blocking loop turn between batches
//   timers_same_due 1M timers at one due time, start all, run until all fired
//                   (phaseloop on the mock backend, whose clock stands still
//                   while they are set, so the due time really is the same;
//                   libuv's uv_timer_start uses its cached time, same effect)
//   store_*         the timer stores alone, without a loop: where the time goes
//
// PHASELOOP_BENCH_SCALE=N divides the sizes (the test suite's smoke run uses it).

#include "compare.hpp"

#include <phaseloop/phaseloop.hpp>

#if defined(PHASELOOP_BENCH_HAVE_LIBUV)
#include <uv.h>
#endif

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using phaseloop::basic_loop;
using phaseloop::heap_timers;
using phaseloop::inline_executor;
using phaseloop::run_mode;
using phaseloop::wheel_timers;
using phaseloop::bench::item_timer;
using phaseloop::bench::scaled;

/// Bytes the process holds from malloc (glibc's mallinfo2: exact, and not
/// fooled by memory an earlier benchmark freed but the process kept);
/// elsewhere the resident set (Linux), or 0.
double allocated_bytes() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 info = ::mallinfo2();
  return static_cast<double>(info.uordblks + info.hblkhd);
#else
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long pages = 0, resident = 0;
  const int got = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  return got == 2 ? static_cast<double>(resident) * 4096.0 : 0;
#endif
}

template <class Store>
constexpr const char* store_name() {
  return std::is_same_v<Store, heap_timers> ? "heap" : "wheel";
}

/// "timers_1m [heap]": one row of the ratio table per store.
template <class Store>
std::string workload(const char* name) {
  return std::string(name) + " [" + store_name<Store>() + "]";
}

/// Moves a peer's figure for `name` beside each store's row of `name` (and
/// of `also`, a variant the peer has no cheaper way to do).
void share_peer_figure(const char* name, const char* peer, const char* also = nullptr) {
  auto& table = phaseloop::bench::results();
  const auto it = table.find(name);
  if (it == table.end()) return;
  const auto figure = it->second.find(peer);
  if (figure == it->second.end()) return;
  const std::vector<double> runs = figure->second;
  table.erase(it);
  for (const char* target : {name, also}) {
    if (target == nullptr) continue;
    for (const char* store : {"heap", "wheel"}) {
      auto& row = table[std::string(target) + " [" + store + "]"][peer];
      row.insert(row.end(), runs.begin(), runs.end());
    }
  }
}

std::chrono::milliseconds timeout_1m(std::int64_t i) { return std::chrono::milliseconds(1 + (i * 7919) % 100); }
std::chrono::milliseconds timeout_churn(std::int64_t k) {
  return std::chrono::milliseconds(10'000 + (k * 7919) % 1000);
}

// ----------------------------------------------------------------- phaseloop

template <class Store>
using epoll_loop = basic_loop<phaseloop::epoll_backend, Store, inline_executor>;
template <class Store>
using mock_loop = basic_loop<phaseloop::mock_backend, Store, inline_executor>;

template <class Store>
void timers_1m(benchmark::State& state) {
  const std::int64_t n = scaled(1'000'000);
  auto loop = std::make_unique<epoll_loop<Store>>();
  std::int64_t fired = 0;
  auto start_all = [&] {
    for (std::int64_t i = 0; i < n; ++i) loop->set_timeout([f = &fired] { ++*f; }, timeout_1m(i));
  };
  {  // memory of n live timers, measured once on a fresh loop
    auto fresh = std::make_unique<epoll_loop<Store>>();
    const double before = allocated_bytes();
    for (std::int64_t i = 0; i < n; ++i) fresh->set_timeout([f = &fired] { ++*f; }, timeout_1m(i));
    state.counters["MiB"] = (allocated_bytes() - before) / (1024.0 * 1024.0);
    fresh->run();
  }
  item_timer timer(state, workload<Store>("timers_1m"), "phaseloop");
  for (auto _ : state) {
    fired = 0;
    timer.start();
    start_all();
    loop->run();
    timer.stop(static_cast<double>(n));
    if (fired != n) state.SkipWithError("not every timer fired");
  }
}

/// How timers_churn resets a timer: clear + set (what libuv's stop + start
/// does), or Node's refresh().
enum class reset_by { clear_and_set, refresh };

template <class Store, reset_by how>
void timers_churn(benchmark::State& state) {
  const std::int64_t armed = scaled(100'000), resets = scaled(1'000'000), batch = 1000;
  auto loop = std::make_unique<epoll_loop<Store>>();
  using handle = typename epoll_loop<Store>::timer_handle;
  std::vector<handle> timers(static_cast<std::size_t>(armed));
  for (std::int64_t i = 0; i < armed; ++i) timers[static_cast<std::size_t>(i)] = loop->set_timeout([] {}, timeout_churn(i));
  {
    item_timer timer(state, workload<Store>(how == reset_by::refresh ? "timers_churn (refresh)" : "timers_churn"),
                     "phaseloop");
    for (auto _ : state) {
      timer.start();
      for (std::int64_t k = 0; k < resets; ++k) {
        handle& t = timers[static_cast<std::size_t>((k * 7919) % armed)];
        if constexpr (how == reset_by::refresh) {
          t.refresh();
        } else {
          loop->clear_timeout(t);
          t = loop->set_timeout([] {}, timeout_churn(k));
        }
        if ((k + 1) % batch == 0) loop->run(run_mode::nowait);
      }
      timer.stop(static_cast<double>(resets));
    }
  }
  for (const handle& t : timers) loop->clear_timeout(t);
}

template <class Store>
void timers_same_due(benchmark::State& state) {
  const std::int64_t n = scaled(1'000'000);
  auto loop = std::make_unique<mock_loop<Store>>();
  std::int64_t fired = 0;
  item_timer timer(state, workload<Store>("timers_same_due"), "phaseloop");
  for (auto _ : state) {
    fired = 0;
    timer.start();
    for (std::int64_t i = 0; i < n; ++i) loop->set_timeout([f = &fired] { ++*f; }, 1ms);
    loop->run();
    timer.stop(static_cast<double>(n));
    if (fired != n) state.SkipWithError("not every timer fired");
  }
}

// ------------------------------------------------------- the stores alone

template <class Store>
void store_1m(benchmark::State& state) {
  const std::int64_t n = scaled(1'000'000);
  std::vector<typename Store::node> nodes(static_cast<std::size_t>(n));
  Store store;
  std::uint64_t now = 1'000'000;
  item_timer timer(state, "store_1m (store alone)", store_name<Store>());
  for (auto _ : state) {
    timer.start();
    for (std::int64_t i = 0; i < n; ++i) {
      store.insert(nodes[static_cast<std::size_t>(i)], now + static_cast<std::uint64_t>(timeout_1m(i).count()));
    }
    std::int64_t popped = 0;
    while (store.size() != 0) {
      now = store.next_due();
      while (store.pop_expired(now) != nullptr) ++popped;
    }
    timer.stop(static_cast<double>(n));
    benchmark::DoNotOptimize(popped);
  }
}

template <class Store>
void store_churn(benchmark::State& state) {
  const std::int64_t armed = scaled(100'000), resets = scaled(1'000'000);
  std::vector<typename Store::node> nodes(static_cast<std::size_t>(armed));
  Store store;
  std::uint64_t now = 1'000'000;
  for (std::int64_t i = 0; i < armed; ++i)
    store.insert(nodes[static_cast<std::size_t>(i)], now + static_cast<std::uint64_t>(timeout_churn(i).count()));
  item_timer timer(state, "store_churn (store alone)", store_name<Store>());
  for (auto _ : state) {
    timer.start();
    for (std::int64_t k = 0; k < resets; ++k) {
      auto& node = nodes[static_cast<std::size_t>((k * 7919) % armed)];
      store.erase(node);
      store.insert(node, now + static_cast<std::uint64_t>(timeout_churn(k).count()));
      if ((k + 1) % 1000 == 0) {
        ++now;  // a non-blocking loop turn a millisecond later (no next_due: it does not block)
        benchmark::DoNotOptimize(store.pop_expired(now));
      }
    }
    timer.stop(static_cast<double>(resets));
  }
}

// ---------------------------------------------------------------------- libuv

#if defined(PHASELOOP_BENCH_HAVE_LIBUV)

struct uv_loop_owner {
  uv_loop_t loop{};
  uv_loop_owner() { uv_loop_init(&loop); }
  ~uv_loop_owner() {
    uv_walk(&loop, [](uv_handle_t* h, void*) { if (!uv_is_closing(h)) uv_close(h, nullptr); }, nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
};

void uv_close_all(uv_loop_t* loop, std::vector<uv_timer_t>& timers) {
  for (uv_timer_t& t : timers) uv_close(reinterpret_cast<uv_handle_t*>(&t), nullptr);
  uv_run(loop, UV_RUN_DEFAULT);
}

void uv_count(uv_timer_t* t) { ++*static_cast<std::int64_t*>(t->data); }

void libuv_timers_1m(benchmark::State& state) {
  const std::int64_t n = scaled(1'000'000);
  uv_loop_owner owner;
  uv_loop_t* loop = &owner.loop;
  std::int64_t fired = 0;
  {
    const double before = allocated_bytes();
    std::vector<uv_timer_t> timers(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      uv_timer_t& t = timers[static_cast<std::size_t>(i)];
      uv_timer_init(loop, &t);
      t.data = &fired;
      uv_timer_start(&t, uv_count, static_cast<std::uint64_t>(timeout_1m(i).count()), 0);
    }
    state.counters["MiB"] = (allocated_bytes() - before) / (1024.0 * 1024.0);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close_all(loop, timers);
  }
  std::vector<uv_timer_t> timers(static_cast<std::size_t>(n));
  {
    item_timer timer(state, "timers_1m", "libuv");
    for (auto _ : state) {
      fired = 0;
      timer.start();
      uv_update_time(loop);
      for (std::int64_t i = 0; i < n; ++i) {
        uv_timer_t& t = timers[static_cast<std::size_t>(i)];
        uv_timer_init(loop, &t);
        t.data = &fired;
        uv_timer_start(&t, uv_count, static_cast<std::uint64_t>(timeout_1m(i).count()), 0);
      }
      uv_run(loop, UV_RUN_DEFAULT);
      timer.stop(static_cast<double>(n));
      if (fired != n) state.SkipWithError("not every timer fired");
      uv_close_all(loop, timers);  // so the handles can be initialized again
    }
  }
  share_peer_figure("timers_1m", "libuv");
}

void libuv_timers_churn(benchmark::State& state) {
  const std::int64_t armed = scaled(100'000), resets = scaled(1'000'000), batch = 1000;
  uv_loop_owner owner;
  uv_loop_t* loop = &owner.loop;
  std::vector<uv_timer_t> timers(static_cast<std::size_t>(armed));
  auto noop = [](uv_timer_t*) {};
  for (std::int64_t i = 0; i < armed; ++i) {
    uv_timer_init(loop, &timers[static_cast<std::size_t>(i)]);
    uv_timer_start(&timers[static_cast<std::size_t>(i)], noop, static_cast<std::uint64_t>(timeout_churn(i).count()), 0);
  }
  {
    item_timer timer(state, "timers_churn", "libuv");
    for (auto _ : state) {
      timer.start();
      for (std::int64_t k = 0; k < resets; ++k) {
        uv_timer_t& t = timers[static_cast<std::size_t>((k * 7919) % armed)];
        uv_timer_stop(&t);
        uv_timer_start(&t, noop, static_cast<std::uint64_t>(timeout_churn(k).count()), 0);
        if ((k + 1) % batch == 0) uv_run(loop, UV_RUN_NOWAIT);
      }
      timer.stop(static_cast<double>(resets));
    }
  }
  share_peer_figure("timers_churn", "libuv", "timers_churn (refresh)");  // libuv: stop + start
  uv_close_all(loop, timers);
}

void libuv_timers_same_due(benchmark::State& state) {
  const std::int64_t n = scaled(1'000'000);
  uv_loop_owner owner;
  uv_loop_t* loop = &owner.loop;
  std::vector<uv_timer_t> timers(static_cast<std::size_t>(n));
  std::int64_t fired = 0;
  {
    item_timer timer(state, "timers_same_due", "libuv");
    for (auto _ : state) {
      fired = 0;
      timer.start();
      uv_update_time(loop);
      for (std::int64_t i = 0; i < n; ++i) {
        uv_timer_t& t = timers[static_cast<std::size_t>(i)];
        uv_timer_init(loop, &t);
        t.data = &fired;
        uv_timer_start(&t, uv_count, 1, 0);
      }
      uv_run(loop, UV_RUN_DEFAULT);
      timer.stop(static_cast<double>(n));
      if (fired != n) state.SkipWithError("not every timer fired");
      uv_close_all(loop, timers);
    }
  }
  share_peer_figure("timers_same_due", "libuv");
}

#endif  // PHASELOOP_BENCH_HAVE_LIBUV

}  // namespace

// Side by side: libuv first, then each store, per workload.
#if defined(PHASELOOP_BENCH_HAVE_LIBUV)
BENCHMARK(libuv_timers_1m)->Name("timers_1m/libuv")->Unit(benchmark::kMillisecond);
#endif
BENCHMARK(timers_1m<heap_timers>)->Name("timers_1m/heap")->Unit(benchmark::kMillisecond);
BENCHMARK(timers_1m<wheel_timers>)->Name("timers_1m/wheel")->Unit(benchmark::kMillisecond);

#if defined(PHASELOOP_BENCH_HAVE_LIBUV)
BENCHMARK(libuv_timers_churn)->Name("timers_churn/libuv")->Unit(benchmark::kMillisecond);
#endif
BENCHMARK(timers_churn<heap_timers, reset_by::clear_and_set>)->Name("timers_churn/heap")->Unit(benchmark::kMillisecond);
BENCHMARK(timers_churn<wheel_timers, reset_by::clear_and_set>)->Name("timers_churn/wheel")->Unit(benchmark::kMillisecond);
BENCHMARK(timers_churn<heap_timers, reset_by::refresh>)->Name("timers_churn_refresh/heap")->Unit(benchmark::kMillisecond);
BENCHMARK(timers_churn<wheel_timers, reset_by::refresh>)->Name("timers_churn_refresh/wheel")->Unit(benchmark::kMillisecond);

#if defined(PHASELOOP_BENCH_HAVE_LIBUV)
BENCHMARK(libuv_timers_same_due)->Name("timers_same_due/libuv")->Unit(benchmark::kMillisecond);
#endif
BENCHMARK(timers_same_due<heap_timers>)->Name("timers_same_due/heap")->Unit(benchmark::kMillisecond);
BENCHMARK(timers_same_due<wheel_timers>)->Name("timers_same_due/wheel")->Unit(benchmark::kMillisecond);

BENCHMARK(store_1m<heap_timers>)->Name("store_1m/heap")->Unit(benchmark::kMillisecond);
BENCHMARK(store_1m<wheel_timers>)->Name("store_1m/wheel")->Unit(benchmark::kMillisecond);
BENCHMARK(store_churn<heap_timers>)->Name("store_churn/heap")->Unit(benchmark::kMillisecond);
BENCHMARK(store_churn<wheel_timers>)->Name("store_churn/wheel")->Unit(benchmark::kMillisecond);
