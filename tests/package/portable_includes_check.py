#!/usr/bin/env python3
"""Every header under include/ reaches the operating system only behind a
platform guard: an #include of anything but the C++ standard library (and
the C headers it shares with every platform) must sit inside an #if.

mingw-w64 ships <unistd.h> and <pthread.h>, so compiling with it alone would
not catch a stray POSIX include that breaks MSVC; this check does.

    portable_includes_check.py INCLUDE_DIR
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

C_STANDARD = set("""
    assert.h complex.h ctype.h errno.h fenv.h float.h inttypes.h iso646.h limits.h locale.h
    math.h setjmp.h signal.h stdalign.h stdarg.h stdatomic.h stdbool.h stddef.h stdint.h
    stdio.h stdlib.h string.h tgmath.h time.h uchar.h wchar.h wctype.h
""".split())
DIRECTIVE = re.compile(r"^\s*#\s*(\w+)\s*(.*)$")
INCLUDE = re.compile(r"""^<([^>]+)>|^"([^"]+)\"""")


def portable(name: str) -> bool:
    if name.startswith("phaseloop/"):
        return True
    if "/" in name or name.endswith(".hpp"):
        return False
    return "." not in name or name in C_STANDARD


def check(path: Path, rel: str) -> list[str]:
    problems = []
    depth = 0
    in_comment = False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if in_comment:
            if "*/" in line:
                in_comment = False
            continue
        if line.lstrip().startswith("/*") and "*/" not in line:
            in_comment = True
            continue
        m = DIRECTIVE.match(line)
        if not m:
            continue
        kind, rest = m.groups()
        if kind in ("if", "ifdef", "ifndef"):
            depth += 1
        elif kind == "endif":
            depth -= 1
        elif kind == "include" and depth == 0:
            inc = INCLUDE.match(rest.strip())
            if inc and not portable(inc.group(1) or inc.group(2)):
                problems.append(f"{rel}:{n}: {line.strip()} is outside any platform guard")
    return problems


def main() -> int:
    root = Path(sys.argv[1])
    headers = sorted(p for p in root.rglob("*.hpp"))
    problems = [p for h in headers for p in check(h, h.relative_to(root).as_posix())]
    for p in problems:
        print(p, file=sys.stderr)
    print(f"portable includes: {len(headers)} headers, {len(problems)} unguarded system includes")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
