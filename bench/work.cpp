// Thread-pool benchmarks (PERFORMANCE.md), phaseloop beside libuv in one run:
//   queue_work  100,000 small jobs (64 dependent multiply-adds) through a
//               4-thread pool, all submitted up front, each completion on
//               the loop thread. libuv: uv_queue_work on its (global,
//               4-thread) pool.
//   fs_stat     10,000 stat() calls of one path, all submitted up front.
//               libuv: uv_fs_stat with a callback.

#include "compare.hpp"

#include <phaseloop/phaseloop.hpp>

#if defined(PHASELOOP_BENCH_HAVE_LIBUV)
#include <uv.h>
#endif

#include <cstdint>
#include <system_error>
#include <vector>

#if !defined(_WIN32)

namespace {

using phaseloop::bench::item_timer;
using phaseloop::bench::scaled;

using pool_loop = phaseloop::basic_loop<phaseloop::epoll_backend, phaseloop::heap_timers,
                                        phaseloop::thread_pool_executor>;

/// The job: 64 dependent multiply-adds.
inline std::uint64_t spin64(std::uint64_t x) {
  for (int i = 0; i < 64; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return x;
}

const char* stat_path() { return "/"; }

void BM_queue_work_phaseloop(benchmark::State& state) {
  const std::int64_t n = scaled(100'000);
  item_timer timer(state, "queue_work", "phaseloop pool(4)");
  std::vector<std::uint64_t> slots(static_cast<std::size_t>(n));
  // One loop for every iteration: its request pool is warm after the first,
  // as libuv's requests (a vector reused across iterations) are.
  pool_loop loop(phaseloop::loop_options{.executor = {.threads = 4}});
  for (auto _ : state) {
    std::int64_t done = 0;
    timer.start();
    for (std::int64_t i = 0; i < n; ++i) {
      std::uint64_t* slot = &slots[static_cast<std::size_t>(i)];
      *slot = static_cast<std::uint64_t>(i);
      loop.queue_work([slot] { *slot = spin64(*slot); }, [&done](std::error_code) { ++done; });
    }
    loop.run();
    timer.stop(static_cast<double>(n));
    if (done != n) state.SkipWithError("lost completions");
    benchmark::DoNotOptimize(slots.data());
  }
}
BENCHMARK(BM_queue_work_phaseloop)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_fs_stat_phaseloop(benchmark::State& state) {
  const std::int64_t n = scaled(10'000);
  item_timer timer(state, "fs_stat", "phaseloop pool(4)");
  pool_loop loop(phaseloop::loop_options{.executor = {.threads = 4}});
  for (auto _ : state) {
    std::int64_t done = 0;
    timer.start();
    for (std::int64_t i = 0; i < n; ++i)
      phaseloop::fs::stat(loop, stat_path(), [&done](std::error_code ec, const phaseloop::fs::stats&) {
        if (!ec) ++done;
      });
    loop.run();
    timer.stop(static_cast<double>(n));
    if (done != n) state.SkipWithError("stat failed");
  }
}
BENCHMARK(BM_fs_stat_phaseloop)->Unit(benchmark::kMillisecond)->UseRealTime();

#if defined(PHASELOOP_BENCH_HAVE_LIBUV)

struct uv_job {
  uv_work_t req;
  std::uint64_t value;
  std::int64_t* done;
};

void BM_queue_work_libuv(benchmark::State& state) {
  const std::int64_t n = scaled(100'000);
  item_timer timer(state, "queue_work", "libuv");
  std::vector<uv_job> jobs(static_cast<std::size_t>(n));
  for (auto _ : state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    std::int64_t done = 0;
    timer.start();
    for (std::int64_t i = 0; i < n; ++i) {
      uv_job& j = jobs[static_cast<std::size_t>(i)];
      j.value = static_cast<std::uint64_t>(i);
      j.done = &done;
      uv_queue_work(
          &loop, &j.req,
          [](uv_work_t* r) {
            auto* job = reinterpret_cast<uv_job*>(r);
            job->value = spin64(job->value);
          },
          [](uv_work_t* r, int) { ++*reinterpret_cast<uv_job*>(r)->done; });
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    timer.stop(static_cast<double>(n));
    if (done != n) state.SkipWithError("lost completions");
    uv_loop_close(&loop);
  }
}
BENCHMARK(BM_queue_work_libuv)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_fs_stat_libuv(benchmark::State& state) {
  const std::int64_t n = scaled(10'000);
  item_timer timer(state, "fs_stat", "libuv");
  struct stat_req {
    uv_fs_t req;
    std::int64_t* done;
  };
  std::vector<stat_req> reqs(static_cast<std::size_t>(n));
  for (auto _ : state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    std::int64_t done = 0;
    timer.start();
    for (std::int64_t i = 0; i < n; ++i) {
      stat_req& s = reqs[static_cast<std::size_t>(i)];
      s.done = &done;
      uv_fs_stat(&loop, &s.req, stat_path(), [](uv_fs_t* r) {
        if (r->result == 0) ++*reinterpret_cast<stat_req*>(r)->done;
        uv_fs_req_cleanup(r);
      });
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    timer.stop(static_cast<double>(n));
    if (done != n) state.SkipWithError("stat failed");
    uv_loop_close(&loop);
  }
}
BENCHMARK(BM_fs_stat_libuv)->Unit(benchmark::kMillisecond)->UseRealTime();

#endif  // PHASELOOP_BENCH_HAVE_LIBUV

}  // namespace

#endif  // !defined(_WIN32)
