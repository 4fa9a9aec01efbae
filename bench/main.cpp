// The benchmark binary's main, shared by every bench/*.cpp: Google
// Benchmark's run, then the side-by-side ratio table (compare.hpp).
#include "compare.hpp"

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  phaseloop::bench::print_ratio_table();
  return 0;
}
