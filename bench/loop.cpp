// Loop-turn benchmarks (PERFORMANCE.md), phaseloop beside libuv in one run:
//   immediate_chain  1M setImmediate-style callbacks, each scheduling the
//                    next: one loop iteration each. libuv: an idle handle
//                    (one epoll_wait(0) per turn, as Node's setImmediate).
//   async_wakeup     a second thread posts 1M callbacks as fast as it can.
//                    phaseloop delivers every one; libuv's uv_async_send
//                    coalesces, so its loop runs far fewer callbacks.
// Boost.Asio runs both too when its headers are found (a post chain on an
// io_context, and posts from another thread with a work guard).

#include "compare.hpp"

#include <phaseloop/phaseloop.hpp>

#if defined(PHASELOOP_BENCH_HAVE_LIBUV)
#include <uv.h>
#endif

#if defined(PHASELOOP_BENCH_HAVE_ASIO)
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#endif

#include <atomic>
#include <cstdint>
#include <thread>

namespace {

using phaseloop::bench::item_timer;
using phaseloop::bench::scaled;

template <class Loop>
struct chain_step {
  Loop* loop;
  std::int64_t* count;
  std::int64_t n;
  void operator()() const {
    if (++*count < n) loop->set_immediate(*this);
  }
};

template <class Loop>
void immediate_chain(benchmark::State& state, const char* name) {
  const std::int64_t n = scaled(1'000'000);
  item_timer timer(state, "immediate_chain", name);
  for (auto _ : state) {
    Loop loop;
    std::int64_t count = 0;
    timer.start();
    loop.set_immediate(chain_step<Loop>{&loop, &count, n});
    loop.run();
    timer.stop(static_cast<double>(n));
    if (count != n) state.SkipWithError("chain broke");
  }
}

void BM_immediate_chain_phaseloop_epoll(benchmark::State& state) {
  immediate_chain<phaseloop::basic_loop<phaseloop::epoll_backend, phaseloop::heap_timers,
                                        phaseloop::inline_executor>>(state, "phaseloop epoll");
}
void BM_immediate_chain_phaseloop_mock(benchmark::State& state) {
  immediate_chain<phaseloop::test_loop>(state, "phaseloop mock");
}
BENCHMARK(BM_immediate_chain_phaseloop_epoll)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_immediate_chain_phaseloop_mock)->Unit(benchmark::kMillisecond);

void BM_async_wakeup_phaseloop(benchmark::State& state) {
  const std::int64_t n = scaled(1'000'000);
  item_timer timer(state, "async_wakeup", "phaseloop epoll");
  for (auto _ : state) {
    phaseloop::basic_loop<phaseloop::epoll_backend, phaseloop::heap_timers, phaseloop::inline_executor> loop;
    std::int64_t delivered = 0;
    auto keep = loop.make_keep_alive();
    timer.start();
    std::thread producer([&] {
      for (std::int64_t i = 0; i < n; ++i)
        loop.post([&] {
          if (++delivered == n) keep.reset();
        });
    });
    loop.run();
    producer.join();
    timer.stop(static_cast<double>(n));
    state.counters["callbacks_run"] = static_cast<double>(delivered);
  }
}
BENCHMARK(BM_async_wakeup_phaseloop)->Unit(benchmark::kMillisecond)->UseRealTime();

#if defined(PHASELOOP_BENCH_HAVE_LIBUV)

void BM_immediate_chain_libuv(benchmark::State& state) {
  const std::int64_t n = scaled(1'000'000);
  item_timer timer(state, "immediate_chain", "libuv");
  for (auto _ : state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct context {
      std::int64_t count = 0;
      std::int64_t n = 0;
    } ctx{0, n};
    uv_idle_t idle;
    uv_idle_init(&loop, &idle);
    idle.data = &ctx;
    timer.start();
    uv_idle_start(&idle, [](uv_idle_t* h) {
      auto* c = static_cast<context*>(h->data);
      if (++c->count == c->n) uv_idle_stop(h);
    });
    uv_run(&loop, UV_RUN_DEFAULT);
    timer.stop(static_cast<double>(n));
    uv_close(reinterpret_cast<uv_handle_t*>(&idle), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
}
BENCHMARK(BM_immediate_chain_libuv)->Unit(benchmark::kMillisecond);

void BM_async_wakeup_libuv(benchmark::State& state) {
  const std::int64_t n = scaled(1'000'000);
  // uv_async_send coalesces: its loop runs a few hundred callbacks for 1M
  // sends, so this is a cost per send, not per delivered callback, and gets
  // a row of its own rather than a misleading ratio against phaseloop's.
  item_timer timer(state, "async_wakeup (libuv: per coalesced send)", "libuv");
  for (auto _ : state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct context {
      std::atomic<bool> done{false};
      std::int64_t callbacks = 0;
    } ctx;
    uv_async_t async;
    async.data = &ctx;
    uv_async_init(&loop, &async, [](uv_async_t* h) {
      auto* c = static_cast<context*>(h->data);
      ++c->callbacks;
      if (c->done.load()) uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
    });
    timer.start();
    std::thread producer([&] {
      for (std::int64_t i = 0; i < n; ++i) uv_async_send(&async);
      ctx.done = true;
      uv_async_send(&async);
    });
    uv_run(&loop, UV_RUN_DEFAULT);
    producer.join();
    timer.stop(static_cast<double>(n));
    state.counters["callbacks_run"] = static_cast<double>(ctx.callbacks);
    uv_loop_close(&loop);
  }
}
BENCHMARK(BM_async_wakeup_libuv)->Unit(benchmark::kMillisecond)->UseRealTime();

#endif  // PHASELOOP_BENCH_HAVE_LIBUV

#if defined(PHASELOOP_BENCH_HAVE_ASIO)

struct asio_step {
  boost::asio::io_context* io;
  std::int64_t* count;
  std::int64_t n;
  void operator()() const {
    if (++*count < n) boost::asio::post(*io, *this);
  }
};

void BM_immediate_chain_asio(benchmark::State& state) {
  const std::int64_t n = scaled(1'000'000);
  item_timer timer(state, "immediate_chain", "boost.asio post chain");
  for (auto _ : state) {
    boost::asio::io_context io;
    std::int64_t count = 0;
    timer.start();
    boost::asio::post(io, asio_step{&io, &count, n});
    io.run();
    timer.stop(static_cast<double>(n));
    if (count != n) state.SkipWithError("chain broke");
  }
}
BENCHMARK(BM_immediate_chain_asio)->Unit(benchmark::kMillisecond);

void BM_async_wakeup_asio(benchmark::State& state) {
  const std::int64_t n = scaled(1'000'000);
  item_timer timer(state, "async_wakeup", "boost.asio");
  for (auto _ : state) {
    boost::asio::io_context io;
    auto guard = boost::asio::make_work_guard(io);
    std::int64_t delivered = 0;
    timer.start();
    std::thread producer([&] {
      for (std::int64_t i = 0; i < n; ++i)
        boost::asio::post(io, [&] {
          if (++delivered == n) guard.reset();
        });
    });
    io.run();
    producer.join();
    timer.stop(static_cast<double>(n));
    state.counters["callbacks_run"] = static_cast<double>(delivered);
  }
}
BENCHMARK(BM_async_wakeup_asio)->Unit(benchmark::kMillisecond)->UseRealTime();

#endif  // PHASELOOP_BENCH_HAVE_ASIO

}  // namespace
