#!/usr/bin/env bash
# The API reference: Doxygen over the public headers, README and docs/, with
# every warning an error (a broken reference, an unknown command or parameter).
source "$(dirname "$0")/lib.bash"
b=$root/build/docs
cmake -S "$root" -B "$b" -DPHASELOOP_BUILD_TESTS=OFF -DPHASELOOP_BUILD_EXAMPLES=OFF -DPHASELOOP_BUILD_BENCH=OFF \
  -DPHASELOOP_DOCS_WARN_AS_ERROR=ON >/dev/null
rm -rf "$b/docs/html" "$b/docs/warnings.txt"
if ! cmake --build "$b" --target phaseloop_docs; then
  cat "$b/docs/warnings.txt" >&2 || true
  exit 1
fi
[ -s "$b/docs/html/index.html" ] || { echo "70-docs: no index.html was generated" >&2; exit 1; }
if [ -s "$b/docs/warnings.txt" ]; then
  cat "$b/docs/warnings.txt" >&2
  exit 1
fi
echo "70-docs: $(find "$b/docs/html" -name '*.html' | wc -l) pages in build/docs/docs/html, no warning"
