#!/usr/bin/env bash
# Off Linux: every header compiles with mingw-w64 (Linux-only code sits behind
# platform guards), and the portable tests and examples, built against
# single_include/phaseloop.hpp alone, run under Wine.
#
# Portable sources: every test or example .cpp with a line
# `// phaseloop: portable` (only the mock backend and the inline executor;
# Linux-only parts behind #if defined(__linux__)).
source "$(dirname "$0")/lib.bash"
b=$root/build/pkg-windows
toolchain=$root/cmake/toolchains/mingw-w64-x86_64.cmake

for tool in x86_64-w64-mingw32-g++-posix; do
  command -v "$tool" >/dev/null || { echo "60-windows: $tool not found (scripts/install-deps installs it)" >&2; exit 1; }
done
[ -x /usr/lib/wine/wine64 ] || command -v wine64 >/dev/null || command -v wine >/dev/null ||
  { echo "60-windows: wine not found (scripts/install-deps installs it)" >&2; exit 1; }

export WINEPREFIX=$b/wineprefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY WAYLAND_DISPLAY
mkdir -p "$b" "$WINEPREFIX"

echo "--- system headers beyond the C++ standard library only behind platform guards"
python3 "$root/tests/package/portable_includes_check.py" "$root/include"

echo "--- every header compiles on its own with mingw-w64 (PHASELOOP_VERIFY_HEADERS)"
cmake -S "$root" -B "$b/headers" --toolchain "$toolchain" -DCMAKE_BUILD_TYPE=Release \
  -DPHASELOOP_BUILD_TESTS=OFF -DPHASELOOP_BUILD_EXAMPLES=OFF -DPHASELOOP_BUILD_BENCH=OFF \
  -DPHASELOOP_VERIFY_HEADERS=ON >/dev/null
cmake --build "$b/headers" -j "$jobs"

echo "--- portable tests and examples against the single header, under Wine"
third_party=$b/third-party-include
mkdir -p "$third_party"
ln -sfn /usr/include/catch2 "$third_party/catch2"
ln -sfn /usr/include/boost "$third_party/boost"

tests=() examples=()
for f in $(grep -l -s '^// phaseloop: portable' "$root"/tests/unit/*.cpp "$root"/tests/conformance/*.cpp || true); do
  [ -f "$f" ] && [[ " ${tests[*]} " != *" $f "* ]] && tests+=("$f")
done
for f in $(grep -l -s '^// phaseloop: portable' "$root"/examples/*.cpp || true); do
  [ -f "$f" ] && [[ " ${examples[*]} " != *" $f "* ]] && examples+=("$f")
done
echo "tests: ${tests[*]#"$root/"}"
echo "examples: ${examples[*]#"$root/"}"
[ ${#tests[@]} -gt 0 ] || { echo "60-windows: no portable test sources" >&2; exit 1; }

join() { local IFS=';'; echo "$*"; }
cmake -S "$root/tests/package/windows" -B "$b/portable" --toolchain "$toolchain" -DCMAKE_BUILD_TYPE=Release \
  -DPHASELOOP_ROOT="$root" -DPHASELOOP_THIRD_PARTY_DIR="$third_party" \
  "-DPHASELOOP_TEST_SOURCES=$(join "${tests[@]}")" "-DPHASELOOP_EXAMPLE_SOURCES=$(join "${examples[@]}")" >/dev/null
cmake --build "$b/portable" -j "$jobs"
# Wine's first start creates the prefix (~10 s); ctest runs every program through
# the toolchain's CMAKE_CROSSCOMPILING_EMULATOR, one at a time.
ctest --test-dir "$b/portable" --output-on-failure
