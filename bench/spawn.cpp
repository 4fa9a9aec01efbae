// Spawning: 1,000 spawns of /bin/true, one after another (each waits for the
// previous child's exit), every descriptor on /dev/null. phaseloop's
// child_process::spawn on epoll, beside libuv's uv_spawn (when installed)
// and Node's child_process.spawn (bench/node/spawn.js, when `node` is on
// PATH) in the same run.

#include "compare.hpp"

#include <phaseloop/phaseloop.hpp>
#include <phaseloop/child_process.hpp>

#include <string>

#if defined(PHASELOOP_BENCH_HAVE_LIBUV)
#include <uv.h>
#endif

namespace {

using phaseloop::bench::item_timer;
using phaseloop::bench::scaled;

#if defined(__linux__)
void BM_spawn_true_phaseloop(benchmark::State& state) {
  namespace cp = phaseloop::child_process;
  const std::int64_t n = scaled(1000);
  item_timer timer(state, "spawn_true", "phaseloop epoll");
  cp::spawn_options o;
  o.file = "/bin/true";
  o.stdio = {cp::stdio_spec::ignore(), cp::stdio_spec::ignore(), cp::stdio_spec::ignore()};
  for (auto _ : state) {
    phaseloop::basic_loop<phaseloop::epoll_backend, phaseloop::heap_timers, phaseloop::thread_pool_executor> loop;
    std::int64_t left = n;
    bool failed = false;
    timer.start();
    auto next = [&](auto& self) -> void {
      auto c = cp::spawn(loop, o);
      c.on_error([&](std::error_code) { failed = true; });
      c.on_exit([&, self_ptr = &self](int code, int) {
        if (code != 0) failed = true;
        if (--left > 0 && !failed) (*self_ptr)(*self_ptr);
      });
    };
    next(next);
    loop.run();
    timer.stop(static_cast<double>(n));
    if (failed || left != 0) state.SkipWithError("a spawn failed");
  }
}
BENCHMARK(BM_spawn_true_phaseloop)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif

#if defined(PHASELOOP_BENCH_HAVE_LIBUV)
struct uv_spawn_state {
  uv_loop_t* loop;
  uv_process_options_t options;
  uv_stdio_container_t stdio[3];
  char* args[2];
  std::int64_t left;
  bool failed;
};

void uv_spawn_next(uv_spawn_state& s);

void uv_spawn_next(uv_spawn_state& s) {
  auto* p = new uv_process_t;
  p->data = &s;
  if (uv_spawn(s.loop, p, &s.options) != 0) {
    s.failed = true;
    uv_close(reinterpret_cast<uv_handle_t*>(p), [](uv_handle_t* h) { delete reinterpret_cast<uv_process_t*>(h); });
  }
}

void BM_spawn_true_libuv(benchmark::State& state) {
  const std::int64_t n = scaled(1000);
  item_timer timer(state, "spawn_true", "libuv");
  for (auto _ : state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_spawn_state s{};
    s.loop = &loop;
    s.left = n;
    static char file[] = "/bin/true";
    s.args[0] = file;
    s.args[1] = nullptr;
    for (auto& c : s.stdio) c.flags = UV_IGNORE;
    s.options.file = file;
    s.options.args = s.args;
    s.options.stdio_count = 3;
    s.options.stdio = s.stdio;
    s.options.exit_cb = [](uv_process_t* p, int64_t status, int) {
      auto& st = *static_cast<uv_spawn_state*>(p->data);
      if (status != 0) st.failed = true;
      uv_close(reinterpret_cast<uv_handle_t*>(p), [](uv_handle_t* h) { delete reinterpret_cast<uv_process_t*>(h); });
      if (--st.left > 0 && !st.failed) uv_spawn_next(st);
    };
    timer.start();
    uv_spawn_next(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    timer.stop(static_cast<double>(n));
    if (s.failed || s.left != 0) state.SkipWithError("a spawn failed");
    uv_loop_close(&loop);
  }
}
BENCHMARK(BM_spawn_true_libuv)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif

// Node running bench/node/spawn.js with the same N, when `node` is on PATH.
void BM_spawn_true_node_reference(benchmark::State& state) {
  phaseloop::bench::run_node_reference(state, "spawn.js", scaled(1000), 3);
}
BENCHMARK(BM_spawn_true_node_reference)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
