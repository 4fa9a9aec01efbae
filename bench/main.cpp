// The benchmark binary's main: Google Benchmark's, shared by every bench/*.cpp.
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();
