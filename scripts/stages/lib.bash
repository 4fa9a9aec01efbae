# Shared by the stage scripts: configure, build and run the suite in one build tree.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
jobs=${PHASELOOP_JOBS:-2}

# build_and_test DIR [cmake args...]: configure DIR, build everything, run ctest.
build_and_test() {
  local dir=$1; shift
  cmake -S "$root" -B "$root/build/$dir" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Debug} -DPHASELOOP_REQUIRE_TEST_DEPS=ON "$@" >/dev/null
  cmake --build "$root/build/$dir" -j "$jobs"
  ctest --test-dir "$root/build/$dir" --output-on-failure -j "$jobs"
}
