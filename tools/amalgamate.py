#!/usr/bin/env python3
"""Generate single_include/phaseloop.hpp from include/.

The single header is the umbrella header include/phaseloop/phaseloop.hpp with
every project header (`#include <phaseloop/...>`, or a quoted include that
resolves inside include/) inlined in place, in the order the preprocessor
would first reach it, so each header lands after everything it depends on.
Each inlined header is preceded by a breadcrumb comment, `// #include
<phaseloop/...>`, and followed by `// end of <phaseloop/...>`; a later include
of a header that is already present becomes a breadcrumb alone.

Everything else is copied verbatim: system includes stay where they were,
preprocessor conditionals (platform guards such as `#if defined(__linux__)`)
stay around what they guarded. A header is taken as "already present" only
when every conditional it was inlined under is also active at the later
include (conditions made only of platform macros such as `_WIN32` or
`__linux__` compare by their text, so `#if !defined(_WIN32)` in two headers is
one condition). A header first reached inside a guard and later outside it is
inlined again, and each of its copies gets an include guard, so the single
header is right on every platform, not just the one it was generated on.

The output is a pure function of the files under include/: no timestamps, no
absolute paths, `\\n` line endings.

    tools/amalgamate.py                 regenerate single_include/phaseloop.hpp
    tools/amalgamate.py -o OUT          write somewhere else
    tools/amalgamate.py --check         exit 1 if the committed file is stale
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ENTRY = "phaseloop/phaseloop.hpp"

DIRECTIVE = re.compile(r"^\s*#\s*([A-Za-z_]+)\b(.*)$")
INCLUDE = re.compile(r"""^\s*#\s*include\s*([<"])([^>"]+)[>"]""")
PRAGMA_ONCE = re.compile(r"^\s*#\s*pragma\s+once\b")
IFNDEF = re.compile(r"^\s*#\s*ifndef\s+([A-Za-z_][A-Za-z0-9_]*)\s*$")
DEFINE = re.compile(r"^\s*#\s*define\s+([A-Za-z_][A-Za-z0-9_]*)\s*$")


class AmalgamationError(Exception):
    pass


def strip_comments_state(line: str, in_comment: bool) -> tuple[bool, bool]:
    """Return (line_starts_in_comment, ends_in_comment) for a C++ source line.

    Rough but enough for headers: tracks /* */ across lines, ignores // and
    string and character literals.
    """
    starts = in_comment
    i, n = 0, len(line)
    quote = None
    while i < n:
        c = line[i]
        if in_comment:
            if line.startswith("*/", i):
                in_comment = False
                i += 2
                continue
        elif quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif line.startswith("//", i):
            break
        elif line.startswith("/*", i):
            in_comment = True
            i += 2
            continue
        elif c in "\"'":
            # Skip digit separators (1'000) and raw strings are not expected in headers.
            if c == "'" and i > 0 and line[i - 1].isalnum():
                i += 1
                continue
            quote = c
        i += 1
    return starts, in_comment


@dataclass
class Header:
    name: str  # "phaseloop/x.hpp", relative to the include dir, with '/'
    lines: list[str]
    guard_span: tuple[int, int] | None = None  # classic include guard: (#ifndef line, #endif line)


@dataclass
class State:
    include_dir: Path
    guarded: set[str]  # headers wrapped in their own include guard
    cache: dict[str, Header] = field(default_factory=dict)
    emitted: dict[str, list[tuple]] = field(default_factory=dict)
    active: list[str] = field(default_factory=list)  # headers being inlined (cycle check)
    next_branch: int = 0
    order: list[str] = field(default_factory=list)


def load(state: State, name: str, where: str) -> Header:
    if name in state.cache:
        return state.cache[name]
    path = state.include_dir / name
    if not path.is_file():
        raise AmalgamationError(f"{where}: project header <{name}> not found under include/")
    text = path.read_text(encoding="utf-8")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    header = Header(name, lines, classic_guard(lines))
    state.cache[name] = header
    return header


def directives(lines: list[str]):
    """Yield (index, keyword, line) for every preprocessor directive line."""
    in_comment = False
    continued = False
    for i, line in enumerate(lines):
        starts_in_comment, in_comment = strip_comments_state(line, in_comment)
        is_continuation = continued
        continued = line.endswith("\\")
        if starts_in_comment or is_continuation:
            continue
        m = DIRECTIVE.match(line)
        if m:
            yield i, m.group(1), line


def classic_guard(lines: list[str]) -> tuple[int, int] | None:
    """Find an `#ifndef G / #define G ... #endif` guard around the whole file."""
    found = list(directives(lines))
    if len(found) < 3:
        return None
    (i0, k0, l0), (_, k1, l1) = found[0], found[1]
    if k0 != "ifndef" or k1 != "define":
        return None
    m0, m1 = IFNDEF.match(l0), DEFINE.match(l1)
    if not (m0 and m1 and m0.group(1) == m1.group(1)):
        return None
    depth = 0
    for i, k, _ in found:
        if k in ("if", "ifdef", "ifndef"):
            depth += 1
        elif k == "endif":
            depth -= 1
            if depth == 0:
                # The guard must close at the last directive and nothing but
                # comments and blank lines may follow.
                if (i, k) != found[-1][:2]:
                    return None
                if any(l.strip() and not l.strip().startswith("//") for l in lines[i + 1:]):
                    return None
                if any(l.strip() and not l.strip().startswith("//") for l in lines[:i0]):
                    return None
                return i0, i
    return None


def resolve(state: State, includer: str, bracket: str, target: str) -> str | None:
    """The project-relative name of an include target, or None if it is not ours."""
    target = target.strip()
    if bracket == "<":
        return target if target.startswith("phaseloop/") else None
    # Quoted include: relative to the including file first, then the include dir.
    for base in (PurePosixPath(includer).parent, PurePosixPath()):
        candidate = os.path.normpath(str(base / target)).replace(os.sep, "/")
        if not candidate.startswith("..") and (state.include_dir / candidate).is_file():
            return candidate
    return None


def guard_macro(name: str) -> str:
    return "PHASELOOP_SINGLE_INCLUDE_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


# Macros the compiler predefines for the platform: a condition made only of
# these has one value in the whole translation unit, wherever it appears.
PLATFORM_MACROS = frozenset("""
    _WIN32 _WIN64 __CYGWIN__ __MINGW32__ __MINGW64__ _MSC_VER
    __linux__ __linux __ANDROID__ __APPLE__ __MACH__ __FreeBSD__ __NetBSD__
    __OpenBSD__ __DragonFly__ __unix__ __unix __sun _AIX __HAIKU__ __EMSCRIPTEN__
    __GNUC__ __clang__ __x86_64__ __aarch64__ __i386__ __arm__
""".split())


def normalize_condition(kind: str, rest: str) -> str:
    rest = re.sub(r"//.*$|/\*.*?\*/", "", rest).strip()
    if kind in ("ifdef", "elifdef"):
        rest = f"defined({rest})"
    elif kind in ("ifndef", "elifndef"):
        rest = f"!defined({rest})"
    rest = re.sub(r"\bdefined\s*\(?\s*([A-Za-z_]\w*)\s*\)?", r"defined(\1)", rest)
    return re.sub(r"\s+", "", rest)


def platform_constant(condition: str) -> bool:
    names = set(re.findall(r"[A-Za-z_]\w*", condition)) - {"defined"}
    return names <= PLATFORM_MACROS


def present(state: State, name: str, branches: tuple) -> bool:
    """Whether `name` is certainly defined at a point inside `branches`.

    A branch is a unique id (its #if could have any value here), or, for a
    chain of platform-macro conditions, the conditions themselves, so
    `#if !defined(_WIN32)` in two headers is one branch. A copy inlined under
    branches S is certainly present wherever all of S are active.
    """
    if name in state.active:
        return True  # an include cycle: #pragma once makes the inner include a no-op
    here = set(branches)
    return any(set(s) <= here for s in state.emitted.get(name, []))


def inline(state: State, name: str, branches: tuple, where: str, out: list[str]) -> None:
    header = load(state, name, where)
    state.emitted.setdefault(name, []).append(branches)
    if name not in state.order:
        state.order.append(name)
    state.active.append(name)
    guard = name in state.guarded
    if guard:
        macro = guard_macro(name)
        out += [f"#ifndef {macro}", f"#define {macro}"]

    stack = list(branches)
    chains: list[list[str]] = []  # the conditions so far of each open #if chain in this file
    directive_at = {i: k for i, k, _ in directives(header.lines)}
    skip = set()
    if header.guard_span:
        # the #define is the directive after the #ifndef, not necessarily the next line
        after = [i for i in sorted(directive_at) if i > header.guard_span[0]]
        skip = {header.guard_span[0], after[0], header.guard_span[1]}
    for i, line in enumerate(header.lines):
        kind = directive_at.get(i)
        if kind is None:
            out.append(line)
            continue
        if i in skip:
            continue  # the file's own include guard: the single header has one
        if kind == "pragma" and PRAGMA_ONCE.match(line):
            continue
        if kind in ("if", "ifdef", "ifndef", "elif", "else", "elifdef", "elifndef"):
            rest = DIRECTIVE.match(line).group(2)
            cond = "else" if kind == "else" else normalize_condition(kind, rest)
            if kind.startswith("if"):
                chains.append([])
            elif len(stack) <= len(branches):
                raise AmalgamationError(f"{name}:{i + 1}: #{kind} without #if")
            else:
                stack.pop()
            chain = chains[-1]
            chain.append(cond)
            if all(c == "else" or platform_constant(c) for c in chain):
                stack.append(("platform",) + tuple(chain))
            else:
                stack.append(state.next_branch)
                state.next_branch += 1
        elif kind == "endif":
            if len(stack) <= len(branches):
                raise AmalgamationError(f"{name}:{i + 1}: #endif without #if")
            stack.pop()
            chains.pop()
        elif kind == "include":
            m = INCLUDE.match(line)  # no match: a computed include, kept as it is
            target = resolve(state, name, m.group(1), m.group(2)) if m else None
            if target is not None:
                crumb = f"// #include <{target}>"
                here = tuple(stack)
                if present(state, target, here):
                    out.append(crumb + "  (inlined above)")
                else:
                    out.append(crumb)
                    inline(state, target, here, f"{name}:{i + 1}", out)
                    out.append(f"// end of <{target}>")
                continue
        out.append(line)

    if len(stack) != len(branches):
        raise AmalgamationError(f"{name}: unterminated #if")
    if guard:
        out.append(f"#endif  // {guard_macro(name)}")
    state.active.pop()


def read_version(include_dir: Path) -> str:
    text = (include_dir / "phaseloop/version.hpp").read_text(encoding="utf-8")
    parts = []
    for part in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(rf"#define\s+PHASELOOP_VERSION_{part}\s+(\d+)", text)
        if not m:
            raise AmalgamationError(f"phaseloop/version.hpp: no PHASELOOP_VERSION_{part}")
        parts.append(m.group(1))
    return ".".join(parts)


def amalgamate(include_dir: Path, entries: list[str]) -> tuple[str, list[str]]:
    """Return (text of the single header, project headers in inlining order)."""
    guarded: set[str] = set()
    while True:
        state = State(include_dir, guarded)
        body: list[str] = []
        for entry in entries:
            body.append(f"// #include <{entry}>")
            inline(state, entry, (), "command line", body)
            body.append(f"// end of <{entry}>")
        twice = {n for n, where in state.emitted.items() if len(where) > 1}
        if twice <= guarded:
            break
        guarded |= twice  # inlined more than once: give those copies include guards

    version = read_version(include_dir)
    sources = ", ".join(f"include/{e}" for e in entries)
    head = [
        f"// phaseloop {version}: Node.js's event loop for C++20, header-only.",
        "//",
        f"// The single-header distribution: {sources}",
        "// with every phaseloop header it reaches inlined once, in dependency order.",
        "// Generated by tools/amalgamate.py; do not edit. Change include/ and run",
        "//     python3 tools/amalgamate.py",
        "#pragma once",
        "",
    ]
    return "\n".join(head + body) + "\n", state.order


def all_headers(include_dir: Path) -> list[str]:
    return sorted(p.relative_to(include_dir).as_posix()
                  for p in include_dir.rglob("*") if p.is_file() and p.suffix in (".hpp", ".h"))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--include-dir", type=Path, default=ROOT / "include",
                    help="the project's include directory (default: include/ beside tools/)")
    ap.add_argument("--entry", action="append",
                    help=f"header to amalgamate, relative to the include dir (default: {DEFAULT_ENTRY}); repeatable")
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "single_include" / "phaseloop.hpp")
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if OUTPUT differs from a fresh generation")
    ap.add_argument("--list", action="store_true", help="print the inlined headers in order")
    args = ap.parse_args(argv)

    entries = args.entry or [DEFAULT_ENTRY]
    try:
        text, order = amalgamate(args.include_dir, entries)
    except AmalgamationError as e:
        print(f"amalgamate.py: error: {e}", file=sys.stderr)
        return 2

    unreached = [h for h in all_headers(args.include_dir) if h not in order]
    if unreached:
        print("amalgamate.py: note: not reachable from "
              f"{', '.join(entries)}, so not in the single header: {', '.join(unreached)}",
              file=sys.stderr)
    if args.list:
        print("\n".join(order))

    if args.check:
        try:
            old = args.output.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = ""
        if old == text:
            return 0
        print(f"amalgamate.py: {args.output.name} is stale: it differs from a fresh generation "
              "from include/; run `python3 tools/amalgamate.py` and commit the result.",
              file=sys.stderr)
        diff = list(difflib.unified_diff(old.splitlines(), text.splitlines(),
                                         "committed", "generated", n=1, lineterm=""))
        sys.stderr.write("\n".join(diff[:40]) + ("\n  ...\n" if len(diff) > 40 else "\n"))
        return 1

    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
