// Promise benchmarks, phaseloop beside Node running the same JavaScript
// (bench/node/promise_bench.js, when `node` is on PATH):
//   promise_then_chain     1M chained then() reactions: a chain built on a
//                          settled promise, then drained (one job each).
//   promise_await_settled  1M co_await resumptions of a settled promise.
//   promise_async_call     1M calls of a coroutine that returns at once,
//                          each awaited (a frame and a promise each).

#include "compare.hpp"

#include <phaseloop/phaseloop.hpp>

#include <cstdint>
#include <string>

namespace {

using phaseloop::promise;
using phaseloop::bench::item_timer;
using phaseloop::bench::scaled;

using epoll_loop =
    phaseloop::basic_loop<phaseloop::epoll_backend, phaseloop::heap_timers, phaseloop::inline_executor>;

/// One workload: on a fresh loop per iteration, `body(loop, n)` starts n
/// steps and returns a promise of the count it reached; the loop runs until
/// it settles, and the count must be n.
template <class Loop, class Body>
void count_to_n(benchmark::State& state, const char* workload, const char* name, Body body) {
  const std::int64_t n = scaled(1'000'000);
  item_timer timer(state, workload, name);
  for (auto _ : state) {
    Loop loop;
    std::int64_t result = 0;
    timer.start();
    body(loop, n).then([&](std::int64_t v) { result = v; });
    loop.run();
    timer.stop(static_cast<double>(n));
    if (result != n) state.SkipWithError("the count did not reach n");
  }
}

template <class Loop>
promise<std::int64_t> then_chain_body(Loop& loop, std::int64_t n) {
  promise<std::int64_t> p = loop.resolved(std::int64_t{0});
  for (std::int64_t i = 0; i < n; ++i) p = p.then([](std::int64_t v) { return v + 1; });
  return p;
}

template <class Loop>
promise<std::int64_t> await_settled_body(Loop& loop, std::int64_t n) {
  const promise<void> settled = loop.resolved();
  std::int64_t count = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    co_await settled;
    ++count;
  }
  co_return count;
}

template <class Loop>
promise<std::int64_t> increment(Loop&, std::int64_t v) {
  co_return v + 1;
}

template <class Loop>
promise<std::int64_t> async_call_body(Loop& loop, std::int64_t n) {
  std::int64_t count = 0;
  for (std::int64_t i = 0; i < n; ++i) count = co_await increment(loop, count);
  co_return count;
}

template <class Loop>
void then_chain(benchmark::State& state, const char* name) {
  count_to_n<Loop>(state, "promise_then_chain", name, then_chain_body<Loop>);
}
template <class Loop>
void await_settled(benchmark::State& state, const char* name) {
  count_to_n<Loop>(state, "promise_await_settled", name, await_settled_body<Loop>);
}
template <class Loop>
void async_call(benchmark::State& state, const char* name) {
  count_to_n<Loop>(state, "promise_async_call", name, async_call_body<Loop>);
}

void BM_promise_then_chain_phaseloop_mock(benchmark::State& s) { then_chain<phaseloop::test_loop>(s, "phaseloop mock"); }
void BM_promise_then_chain_phaseloop_epoll(benchmark::State& s) { then_chain<epoll_loop>(s, "phaseloop epoll"); }
void BM_promise_await_settled_phaseloop_mock(benchmark::State& s) {
  await_settled<phaseloop::test_loop>(s, "phaseloop mock");
}
void BM_promise_await_settled_phaseloop_epoll(benchmark::State& s) {
  await_settled<epoll_loop>(s, "phaseloop epoll");
}
void BM_promise_async_call_phaseloop_mock(benchmark::State& s) { async_call<phaseloop::test_loop>(s, "phaseloop mock"); }
void BM_promise_async_call_phaseloop_epoll(benchmark::State& s) { async_call<epoll_loop>(s, "phaseloop epoll"); }

BENCHMARK(BM_promise_then_chain_phaseloop_mock)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_promise_then_chain_phaseloop_epoll)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_promise_await_settled_phaseloop_mock)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_promise_await_settled_phaseloop_epoll)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_promise_async_call_phaseloop_mock)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_promise_async_call_phaseloop_epoll)->Unit(benchmark::kMillisecond);

// Node running bench/node/promise_bench.js with the same N (best of 5 rounds
// after a warm-up), when `node` is on PATH; its figures join the ratio table.
void BM_promise_node_reference(benchmark::State& state) {
  phaseloop::bench::run_node_reference(state, "promise_bench.js", scaled(1'000'000), 5);
}
BENCHMARK(BM_promise_node_reference)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
