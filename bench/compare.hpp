#pragma once
// Side-by-side figures: each benchmark measures its own per-item time and
// records it under (workload, implementation); the binary's main prints a
// table with the ratio of each peer to phaseloop once every benchmark ran.
// With --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true
// (PERFORMANCE.md's method: the same row moves 20-30% between runs on a
// shared machine) each figure is the median of the interleaved runs.

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace phaseloop::bench {

/// `n` divided by PHASELOOP_BENCH_SCALE (the test suite's smoke run sets it).
inline std::int64_t scaled(std::int64_t n) {
  static const std::int64_t scale = [] {
    const char* env = std::getenv("PHASELOOP_BENCH_SCALE");
    const long long v = env != nullptr ? std::atoll(env) : 1;
    return v > 0 ? static_cast<std::int64_t>(v) : std::int64_t{1};
  }();
  return n / scale > 0 ? n / scale : 1;
}

/// workload -> implementation -> nanoseconds per item, one figure per run.
inline std::map<std::string, std::map<std::string, std::vector<double>>>& results() {
  static std::map<std::string, std::map<std::string, std::vector<double>>> table;
  return table;
}

/// The median of a workload's runs (the lower middle one for an even count).
inline double median(std::vector<double> runs) {
  if (runs.empty()) return 0;
  std::sort(runs.begin(), runs.end());
  return runs[(runs.size() - 1) / 2];
}

/// Times the benchmark loop by hand, so the per-item figure is exact.
class item_timer {
 public:
  item_timer(benchmark::State& state, std::string workload, std::string implementation)
      : state_(state), workload_(std::move(workload)), implementation_(std::move(implementation)) {}

  void start() { begin_ = std::chrono::steady_clock::now(); }
  void stop(double items_done) {
    elapsed_ += std::chrono::steady_clock::now() - begin_;
    items_ += items_done;
  }

  ~item_timer() {
    if (items_ <= 0) return;
    const double ns = std::chrono::duration<double, std::nano>(elapsed_).count() / items_;
    state_.counters["ns_per_item"] = ns;
    state_.SetItemsProcessed(static_cast<std::int64_t>(items_));
    results()[workload_][implementation_].push_back(ns);
  }

 private:
  benchmark::State& state_;
  std::string workload_;
  std::string implementation_;
  std::chrono::steady_clock::time_point begin_{};
  std::chrono::steady_clock::duration elapsed_{};
  double items_ = 0;
};

/// Runs `node bench/node/SCRIPT N ROUNDS` (when `node` is on PATH) and
/// records each line it prints, `workload ns_per_item`, as Node's figure for
/// that workload, beside phaseloop's in the ratio table.
inline void run_node_reference(benchmark::State& state, const std::string& script, std::int64_t n, int rounds) {
  const std::string file = __FILE__;  // bench/compare.hpp: bench/node/ is beside it
  const std::string path = file.substr(0, file.find_last_of("/\\") + 1) + "node/" + script;
  const std::string command =
      "node \"" + path + "\" " + std::to_string(n) + " " + std::to_string(rounds) + " 2>/dev/null";
  for (auto _ : state) {
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
      state.SkipWithError("cannot start node");
      return;
    }
    std::string text;
    char buffer[256];
    while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) text += buffer;
    const int status = pclose(pipe);
    std::istringstream lines(text);
    std::string workload;
    double ns = 0;
    int found = 0;
    while (lines >> workload >> ns) {
      results()[workload]["node"].push_back(ns);
      state.counters[workload] = ns;
      ++found;
    }
    if (status != 0 || found == 0) state.SkipWithError(("node not on PATH (or " + script + " failed)").c_str());
  }
}

/// Prints every workload with phaseloop's figure and each peer's ratio to it
/// (peer time / phaseloop time: above 1 means phaseloop is faster).
inline void print_ratio_table() {
  if (results().empty()) return;
  std::printf("\n%-42s %-22s %12s %10s %5s\n", "workload", "implementation", "ns/item", "vs phaseloop", "runs");
  for (const auto& [workload, impls] : results()) {
    // The phaseloop row the ratio is taken against: the fastest phaseloop variant.
    double base = 0;
    for (const auto& [impl, runs] : impls)
      if (impl.rfind("phaseloop", 0) == 0 && (base == 0 || median(runs) < base)) base = median(runs);
    for (const auto& [impl, runs] : impls) {
      const double ns = median(runs);
      if (base > 0 && impl.rfind("phaseloop", 0) != 0)
        std::printf("%-42s %-22s %12.1f %11.2fx %5zu\n", workload.c_str(), impl.c_str(), ns, ns / base, runs.size());
      else
        std::printf("%-42s %-22s %12.1f %12s %5zu\n", workload.c_str(), impl.c_str(), ns, "", runs.size());
    }
  }
}

}  // namespace phaseloop::bench
