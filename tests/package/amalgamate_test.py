#!/usr/bin/env python3
"""tools/amalgamate.py on small made-up include trees: each project header
once, in dependency order, breadcrumbs, platform guards kept, a header
reached first under a guard and later outside it still present everywhere,
include cycles, quoted includes, commented-out includes, classic include
guards, determinism. Each output is compiled as if on Linux and on Windows.

    amalgamate_test.py [CXX]     (default g++)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "amalgamate.py"
CXX = sys.argv[1] if len(sys.argv) > 1 else "g++"
VERSION = """#pragma once
#define PHASELOOP_VERSION_MAJOR 1
#define PHASELOOP_VERSION_MINOR 2
#define PHASELOOP_VERSION_PATCH 3
"""

failures = 0


def run_case(name: str, files: dict[str, str], check) -> None:
    global failures
    with tempfile.TemporaryDirectory() as tmp:
        inc = Path(tmp) / "include"
        for rel, text in {"phaseloop/version.hpp": VERSION, **files}.items():
            (inc / rel).parent.mkdir(parents=True, exist_ok=True)
            (inc / rel).write_text(text)
        out = Path(tmp) / "out.hpp"
        r = subprocess.run([sys.executable, str(TOOL), "--include-dir", str(inc), "-o", str(out)],
                           capture_output=True, text=True)
        try:
            if r.returncode != 0:
                raise AssertionError(f"amalgamate.py failed: {r.stderr}")
            text = out.read_text()
            again = Path(tmp) / "again.hpp"
            subprocess.run([sys.executable, str(TOOL), "--include-dir", str(inc), "-o", str(again)], check=True,
                           capture_output=True)
            assert again.read_text() == text, "not deterministic"
            assert tmp not in text, "absolute path in the output"
            for platform in (["-D__linux__"], ["-U__linux__", "-D_WIN32"]):
                c = subprocess.run([CXX, "-std=c++20", "-fsyntax-only", "-Wall", "-Werror", "-x", "c++", *platform,
                                    "-"], input=f'#include "{out}"\nint main() {{}}\n', capture_output=True, text=True)
                assert c.returncode == 0, f"does not compile with {platform}:\n{c.stderr}"
            check(text)
            print(f"ok   {name}")
        except AssertionError as e:
            failures += 1
            print(f"FAIL {name}: {e}")


def count(text: str, line: str) -> int:
    return sum(1 for l in text.splitlines() if l == line)


def order(text: str, *needles: str) -> bool:
    at = [text.index(n) for n in needles]
    return at == sorted(at)


def check_basic(t: str) -> None:
    assert t.startswith("// phaseloop 1.2.3:"), "header comment"
    assert count(t, "#pragma once") == 1, "one #pragma once"
    assert count(t, "struct a {};") == 1 and count(t, "struct b : a {};") == 1, "each header once"
    assert order(t, "struct a {};", "struct b : a {};", "struct c {"), "dependency order"
    assert "// #include <phaseloop/a.hpp>\n" in t, "breadcrumb"
    assert "// #include <phaseloop/a.hpp>  (inlined above)" in t, "breadcrumb for a repeated include"
    assert "#include <vector>" in t, "system include kept"


run_case("dependency order, each header once", {
    "phaseloop/phaseloop.hpp": "#pragma once\n#include <phaseloop/version.hpp>\n#include <phaseloop/c.hpp>\n"
                               "#include <phaseloop/a.hpp>\n",
    "phaseloop/a.hpp": "#pragma once\n#include <vector>\nstruct a {};\n",
    "phaseloop/b.hpp": "#pragma once\n#include \"a.hpp\"\nstruct b : a {};\n",
    "phaseloop/c.hpp": "#pragma once\n#include <phaseloop/b.hpp>\n#include <phaseloop/a.hpp>\n"
                       "struct c { b x; };\n",
}, check_basic)


def check_guards(t: str) -> None:
    assert count(t, "int shared_fn();") == 1, "a header under the same platform guard twice is inlined once"
    assert order(t, "#if defined(__linux__)", "#include <unistd.h>", "int linux_fn();"), "guard kept around system include"
    assert "#include <windows.h>" not in t or order(t, "#if defined(_WIN32)", "#include <windows.h>")


run_case("platform guards are kept; same guard text shares a copy", {
    "phaseloop/phaseloop.hpp": "#pragma once\n#include <phaseloop/lin.hpp>\n#include <phaseloop/other.hpp>\n",
    "phaseloop/lin.hpp": "#pragma once\n#if defined(__linux__)\n#include <unistd.h>\n#include <phaseloop/shared.hpp>\n"
                         "int linux_fn();\n#endif  // __linux__\n",
    "phaseloop/other.hpp": "#pragma once\n#ifdef __linux__\n#include <phaseloop/shared.hpp>\n#endif\n"
                           "int other_fn();\n",
    "phaseloop/shared.hpp": "#pragma once\nint shared_fn();\n",
}, check_guards)


def check_guarded_then_unguarded(t: str) -> None:
    assert "int fd_fn();" in t
    # present on Linux (first copy) and elsewhere (second copy), never twice: include guards
    assert count(t, "#ifndef PHASELOOP_SINGLE_INCLUDE_PHASELOOP_FD_HPP") >= 2, "copies carry include guards"


run_case("a header first reached under a guard, then outside it", {
    "phaseloop/phaseloop.hpp": "#pragma once\n#if defined(__linux__)\n#include <phaseloop/epoll.hpp>\n#endif\n"
                               "#include <phaseloop/net.hpp>\n",
    "phaseloop/epoll.hpp": "#pragma once\n#include <phaseloop/fd.hpp>\nint epoll_fn(fd);\n",
    "phaseloop/net.hpp": "#pragma once\n#include <phaseloop/fd.hpp>\nint net_fn(fd);\n",
    "phaseloop/fd.hpp": "#pragma once\nstruct fd {};\nint fd_fn();\n",
}, check_guarded_then_unguarded)


def check_misc(t: str) -> None:
    assert "nope.hpp" in t and "// #include <phaseloop/nope.hpp>" not in t, "commented-out include left alone"
    assert count(t, "int c1();") == 1 and count(t, "int c2();") == 1, "include cycle"
    assert "#ifndef OLD_STYLE_H" not in t, "classic include guard removed"
    assert count(t, "struct old {};") == 1


run_case("comments, cycles, classic include guards", {
    "phaseloop/phaseloop.hpp": "#pragma once\n/* #include <phaseloop/nope.hpp>\n*/\n#include \"cyc.hpp\"\n"
                               "#include <phaseloop/detail/old.hpp>\n#include <phaseloop/detail/old.hpp>\n",
    "phaseloop/cyc.hpp": "#pragma once\n#include \"cyc2.hpp\"\nint c1();\n",
    "phaseloop/cyc2.hpp": "#pragma once\n#include <phaseloop/cyc.hpp>\nint c2();\n",
    "phaseloop/detail/old.hpp": "// old style\n#ifndef OLD_STYLE_H\n#define OLD_STYLE_H\nstruct old {};\n"
                                "#endif  // OLD_STYLE_H\n",
}, check_misc)

print(f"amalgamate_test: {failures} failed")
sys.exit(1 if failures else 0)
