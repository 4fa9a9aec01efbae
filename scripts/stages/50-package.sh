#!/usr/bin/env bash
# phaseloop as a package: header self-containment, the CMake install tree
# (config, version file, header set, relocatable phaseloop.pc), and every
# documented way to consume it (tests/package, README.md):
# find_package on the installed (and then moved) prefix, FetchContent of the
# checkout, add_subdirectory, pkg-config, -I single_include. Then the vcpkg
# port and the Conan recipe, checked without vcpkg and Conan.
source "$(dirname "$0")/lib.bash"
b=$root/build/pkg-package
pkg=$root/tests/package
rm -rf "$b"
mkdir -p "$b"
version=$(sed -n 's/^#define PHASELOOP_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
  "$root/include/phaseloop/version.hpp" | paste -sd.)
echo "phaseloop $version"
warn="-Wall -Wextra -Wpedantic -Werror"
fail() { echo "50-package: $*" >&2; exit 1; }

# run_app DIR: the consumer program must print Node's order (it checks itself too).
run_app() {
  local out
  out=$("$1") || fail "$1 failed: $out"
  echo "$out"
  grep -q "^phaseloop $version mock backend: sync tick microtask immediate timeout(1ms) timeout(2ms)$" <<<"$out" ||
    fail "$1 printed something unexpected"
}

# consumer NAME SRC [cmake args...]: configure, build and run a consumer project.
consumer() {
  local name=$1 src=$2; shift 2
  echo "--- consumer: $name"
  cmake -S "$src" -B "$b/$name-build" -DCMAKE_CXX_COMPILER=g++ "-DCMAKE_CXX_FLAGS=$warn" "$@" >/dev/null
  cmake --build "$b/$name-build" -j "$jobs"
  run_app "$b/$name-build/app"
}

# project_copy NAME: tests/package/NAME with the shared main.cpp, as a user's project.
project_copy() {
  rm -rf "$b/$1-src"
  cp -r "$pkg/$1" "$b/$1-src"
  cp "$pkg/app/main.cpp" "$b/$1-src/main.cpp"
  echo "$b/$1-src"
}

echo "--- install; every header compiled on its own with g++ and clang++ (PHASELOOP_VERIFY_HEADERS)"
cmake -S "$root" -B "$b/project" -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Release \
  -DPHASELOOP_BUILD_TESTS=OFF -DPHASELOOP_BUILD_EXAMPLES=OFF -DPHASELOOP_BUILD_BENCH=OFF \
  -DPHASELOOP_INSTALL=ON -DPHASELOOP_VERIFY_HEADERS=ON >/dev/null
cmake --build "$b/project" -j "$jobs"
cmake --install "$b/project" --prefix "$b/staging" >/dev/null
cmake -S "$root" -B "$b/headers-clang" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Release \
  -DPHASELOOP_BUILD_TESTS=OFF -DPHASELOOP_BUILD_EXAMPLES=OFF -DPHASELOOP_BUILD_BENCH=OFF \
  -DPHASELOOP_INSTALL=OFF -DPHASELOOP_VERIFY_HEADERS=ON >/dev/null
cmake --build "$b/headers-clang" -j "$jobs"

echo "--- README's install commands on a machine without the test packages"
# Catch2, Boost and Google Benchmark hidden: configure still succeeds at top
# level, says what it skipped, and installs the same tree.
nodeps=$(cmake -S "$root" -B "$b/no-test-deps" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ \
  -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON -DCMAKE_DISABLE_FIND_PACKAGE_Boost=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON 2>&1) || fail "configure without the test packages failed: $nodeps"
grep -q "the tests need Catch2" <<<"$nodeps" || fail "configure without Catch2 did not say the tests are skipped"
grep -q "the benchmarks need Google Benchmark" <<<"$nodeps" || fail "configure without Google Benchmark did not say so"
cmake --install "$b/no-test-deps" --prefix "$b/no-test-deps-prefix" >/dev/null
diff -r "$b/staging/include" "$b/no-test-deps-prefix/include" >/dev/null || fail "the install without test packages differs"
if cmake -S "$root" -B "$b/no-test-deps-required" -DPHASELOOP_REQUIRE_TEST_DEPS=ON \
     -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON >/dev/null 2>&1; then
  fail "PHASELOOP_REQUIRE_TEST_DEPS accepted a missing Catch2"
fi
echo "--- the installed tree is exactly the headers, the CMake package and phaseloop.pc"
(cd "$root/include" && find phaseloop -type f -name '*.hpp' | sed 's|^|include/|'
 printf '%s\n' share/phaseloop/phaseloopConfig.cmake share/phaseloop/phaseloopConfigVersion.cmake \
   share/phaseloop/phaseloopTargets.cmake share/pkgconfig/phaseloop.pc) | LC_ALL=C sort >"$b/expected-files"
(cd "$b/staging" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) >"$b/installed-files"
diff -u "$b/expected-files" "$b/installed-files" || fail "unexpected installed tree (- expected, + installed)"
while read -r f; do
  [[ $f == include/* ]] || continue
  cmp "$b/staging/$f" "$root/$f" || fail "installed $f differs from the source"
done <"$b/installed-files"
grep -q 'find_dependency(Threads)' "$b/staging/share/phaseloop/phaseloopConfig.cmake" || fail "config lacks find_dependency(Threads)"
grep -A1 'requested no architecture check' "$b/staging/share/phaseloop/phaseloopConfigVersion.cmake" |
  grep -qF 'if("TRUE")' || fail "the version file is not ARCH_INDEPENDENT"
grep -q 'FILE_SET "HEADERS"' "$b/staging/share/phaseloop/phaseloopTargets.cmake" || fail "targets lack the header set"
grep -qx "Version: $version" "$b/staging/share/pkgconfig/phaseloop.pc" || fail "phaseloop.pc has the wrong version"
if grep -rn -F -e "$b" -e "$root" "$b/staging"; then fail "the installed tree mentions a build or source path"; fi

echo "--- the prefix is relocatable: move it, then consume it from the new place"
mv "$b/staging" "$b/moved-prefix"
prefix=$b/moved-prefix

consumer find_package "$(project_copy find_package)" "-DCMAKE_PREFIX_PATH=$prefix"
grep -q "phaseloop_DIR:PATH=$prefix/share/phaseloop" "$b/find_package-build/CMakeCache.txt" ||
  fail "find_package did not use the installed prefix"

echo "--- find_package honours the version file"
cat >"$b/version-probe.cmake" <<PROBE
cmake_minimum_required(VERSION 3.23)
project(probe LANGUAGES CXX)
find_package(phaseloop \${WANT} QUIET)
message(STATUS "found=\${phaseloop_FOUND}")
PROBE
probe() {
  mkdir -p "$b/probe-$1" && cp "$b/version-probe.cmake" "$b/probe-$1/CMakeLists.txt"
  cmake -S "$b/probe-$1" -B "$b/probe-$1/build" "-DWANT=$1" "-DCMAKE_PREFIX_PATH=$prefix" 2>&1 | grep -o 'found=[01]'
}
major=${version%%.*} minor=${version#*.}; minor=${minor%%.*}
[ "$(probe "$major.$minor")" = found=1 ] || fail "find_package(phaseloop $major.$minor) failed"
[ "$(probe "$major.$((minor + 1))")" = found=0 ] || fail "find_package(phaseloop $major.$((minor + 1))) accepted $version"
[ "$(probe "$((major + 1))")" = found=0 ] || fail "find_package(phaseloop $((major + 1))) accepted $version"

echo "--- consumer: pkg-config (the relocated phaseloop.pc)"
src=$(project_copy find_package)
flags=$(PKG_CONFIG_PATH=$prefix/share/pkgconfig pkg-config --cflags --libs phaseloop)
echo "pkg-config --cflags --libs phaseloop: $flags"
incdir=$(sed -n 's/.*-I\([^ ]*\).*/\1/p' <<<"$flags")
[ "$(realpath "$incdir")" = "$prefix/include" ] || fail "pkg-config's include dir $incdir is not the moved prefix's"
(cd "$src" && g++ -std=c++20 $warn main.cpp $flags -o app)
run_app "$src/app"

echo "--- consumer: -I single_include, g++ and clang++"
src=$(project_copy find_package)
(cd "$src" && g++ -std=c++20 $warn -DPHASELOOP_CONSUMER_SINGLE_HEADER -I "$root/single_include" main.cpp -pthread -o app)
run_app "$src/app"
(cd "$src" && clang++ -std=c++20 $warn -DPHASELOOP_CONSUMER_SINGLE_HEADER -I "$root/single_include" main.cpp -pthread -o app-clang)
run_app "$src/app-clang"

echo "--- a snapshot of the checkout as a git repository, tagged v$version"
snap=$b/checkout.git
mkdir -p "$snap"
(cd "$root" && git ls-files -z -co --exclude-standard | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
  tar --null -T - -cf -) | tar -C "$snap" -xf -
git -C "$snap" init -q
git -C "$snap" add -A
git -C "$snap" -c user.name=phaseloop -c user.email=phaseloop@invalid commit -q -m snapshot
git -C "$snap" tag "v$version"

src=$(project_copy fetchcontent)
url=$(sed -n 's/^ *GIT_REPOSITORY *\([^ )]*\).*/\1/p' "$src/CMakeLists.txt")
tag=$(sed -n 's/^ *GIT_TAG *\([^ )]*\).*/\1/p' "$src/CMakeLists.txt")
[ "$tag" = "v$version" ] || fail "tests/package/fetchcontent pins $tag, not v$version"
# The documented URL, rewritten by git to the snapshot: FetchContent really clones.
GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="url.$snap.insteadOf" GIT_CONFIG_VALUE_0="$url" \
  consumer fetchcontent "$src"
[ -d "$b/fetchcontent-build/_deps/phaseloop-src/.git" ] || fail "FetchContent did not clone"
[ ! -e "$b/fetchcontent-build/_deps/phaseloop-build/tests" ] && [ ! -e "$b/fetchcontent-build/_deps/phaseloop-build/examples" ] ||
  fail "phaseloop built its tests or examples as a subproject"

src=$(project_copy add_subdirectory)
mkdir -p "$src/third_party"
ln -s "$snap" "$src/third_party/phaseloop"
consumer add_subdirectory "$src"
[ ! -e "$b/add_subdirectory-build/third_party/phaseloop/tests" ] || fail "phaseloop built its tests as a subproject"

echo "--- README.md shows each consumer project exactly"
for way in find_package fetchcontent add_subdirectory; do
  python3 - "$root/README.md" "$pkg/$way/CMakeLists.txt" <<'PY' || fail "README.md lacks tests/package/$way/CMakeLists.txt verbatim"
import sys
doc, snippet = (open(p, encoding="utf-8").read() for p in sys.argv[1:])
sys.exit(0 if "```cmake\n" + snippet + "```" in doc else 1)
PY
done
grep -qF 'pkg-config --cflags --libs phaseloop' "$root/README.md" || fail "README.md lacks the pkg-config line"
for v in $(grep -o -E '(phaseloop/|GIT_TAG +v)[0-9]+\.[0-9]+\.[0-9]+' "$root/README.md" | grep -o -E '[0-9.]+$'); do
  [ "$v" = "$version" ] || fail "README.md names version $v, not $version"
done
grep -qF -- '-I phaseloop/single_include' "$root/README.md" || fail "README.md lacks the single-header line"

echo "--- vcpkg overlay port (packaging/vcpkg/ports/phaseloop), run without vcpkg"
# The reference: a plain install with the options the port passes.
cmake -S "$root" -B "$b/reference" -DCMAKE_BUILD_TYPE=Release -DPHASELOOP_INSTALL=ON \
  -DPHASELOOP_BUILD_TESTS=OFF -DPHASELOOP_BUILD_EXAMPLES=OFF -DPHASELOOP_BUILD_BENCH=OFF >/dev/null
cmake --install "$b/reference" --prefix "$b/reference-prefix" >/dev/null
cmake -DPORT_DIR="$root/packaging/vcpkg/ports/phaseloop" -DWORK_DIR="$b/vcpkg" \
  -DREFERENCE_PREFIX="$b/reference-prefix" -DVERSION="$version" -P "$pkg/vcpkg_port_check.cmake" 2>&1 | grep -v '^-- Installing'

echo "--- Conan recipe (packaging/conan), run without Conan"
python3 "$pkg/conan_recipe_check.py" "$root/packaging/conan" "$b/reference-prefix" "$version" "$b/conan"
echo "--- consumer: the Conan test_package, against the installed prefix"
cmake -S "$root/packaging/conan/test_package" -B "$b/conan-test_package" -DCMAKE_CXX_COMPILER=g++ \
  "-DCMAKE_CXX_FLAGS=$warn" "-DCMAKE_PREFIX_PATH=$prefix" >/dev/null
cmake --build "$b/conan-test_package" -j "$jobs"
"$b/conan-test_package/test_package"
