#!/usr/bin/env python3
"""Check packaging/conan without Conan.

The recipe runs against small stand-ins for the parts of Conan 2's API it
uses (ConanFile, copy, check_min_cppstd, basic_layout; CMake and cmake_layout
for test_package), following Conan's documented behaviour: copy() matches
fnmatch patterns against paths relative to src, keeps the relative path and
creates directories.

    conan_recipe_check.py RECIPE_DIR INSTALLED_PREFIX VERSION WORK_DIR

Passes when: the recipe is a header-library named phaseloop at VERSION; its
package_id() clears the package id; validate() calls check_min_cppstd(20); the
files package() puts under include/ are exactly the installed prefix's
include/ tree, byte for byte (and LICENSE under licenses/ when the project has
one); package_info() declares no lib or bin dirs and the names phaseloop,
phaseloop::phaseloop and phaseloop (pkg-config); test_package/ has a recipe
that requires the tested reference and a test() method.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import shutil
import sys
import types
from pathlib import Path

calls: list[tuple] = []


class Failure(Exception):
    pass


def fail(msg: str) -> None:
    raise Failure(msg)


# --- stand-ins for conan's modules ------------------------------------------


class _Setting(str):
    def get_safe(self, _name, default=None):
        return default


class _Settings:
    def __init__(self, **values):
        self._values = values

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return _Setting(self._values.get(name, ""))

    def get_safe(self, name, default=None):
        return self._values.get(name, default)


class _Info:
    def __init__(self):
        self.cleared = False
        self.settings = _Settings()

    def clear(self):
        self.cleared = True


class _CppInfo:
    def __init__(self):
        self.includedirs = ["include"]
        self.libdirs = ["lib"]
        self.bindirs = ["bin"]
        self.libs = []
        self.system_libs = []
        self.defines = []
        self.properties: dict[str, object] = {}

    def set_property(self, name, value):
        self.properties[name] = value


class ConanFile:
    name = None
    version = None
    package_type = None
    settings = ()
    generators = ()

    def __init__(self):
        self.info = _Info()
        self.cpp_info = _CppInfo()
        self.settings = _Settings(os="Linux", arch="x86_64", compiler="gcc", build_type="Release")
        self.folders = types.SimpleNamespace(source=".", build=".")


def copy(conanfile, pattern, src, dst, keep_path=True, excludes=None, ignore_case=True):
    src, dst = Path(src), Path(dst)
    copied = []
    if not src.is_dir():
        return copied
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(src).as_posix()
        match = fnmatch.fnmatch(rel.lower(), pattern.lower()) if ignore_case else fnmatch.fnmatchcase(rel, pattern)
        if not match or any(fnmatch.fnmatch(rel, e) for e in (excludes or ())):
            continue
        target = dst / (rel if keep_path else path.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        copied.append(str(target))
    calls.append(("copy", pattern, str(src), str(dst), len(copied)))
    return copied


def load(conanfile, path, encoding="utf-8"):
    return Path(path).read_text(encoding=encoding)


def check_min_cppstd(conanfile, cppstd, gnu_extensions=False):
    calls.append(("check_min_cppstd", str(cppstd)))


def can_run(conanfile):
    return True


def basic_layout(conanfile, src_folder="."):
    calls.append(("basic_layout", src_folder))


def cmake_layout(conanfile, *args, **kwargs):
    calls.append(("cmake_layout",))


class CMake:
    def __init__(self, conanfile):
        pass

    def configure(self, *a, **k):
        pass

    def build(self, *a, **k):
        pass


def install_stubs() -> None:
    modules = {
        "conan": {"ConanFile": ConanFile},
        "conan.tools": {},
        "conan.tools.build": {"check_min_cppstd": check_min_cppstd, "can_run": can_run},
        "conan.tools.files": {"copy": copy, "load": load},
        "conan.tools.layout": {"basic_layout": basic_layout},
        "conan.tools.cmake": {"CMake": CMake, "cmake_layout": cmake_layout},
    }
    for name, attrs in modules.items():
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        mod.__path__ = []  # a package, so submodules import
        sys.modules[name] = mod


def load_recipe(path: Path):
    spec = importlib.util.spec_from_file_location(f"recipe_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recipes = [v for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, ConanFile) and v is not ConanFile]
    if len(recipes) != 1:
        fail(f"{path}: expected one ConanFile subclass, found {len(recipes)}")
    return recipes[0]


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def check(recipe_dir: Path, prefix: Path, version: str, work: Path) -> str:
    install_stubs()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    cls = load_recipe(recipe_dir / "conanfile.py")
    if cls.name != "phaseloop":
        fail(f"the recipe's name is {cls.name!r}, not 'phaseloop'")
    if cls.version != version:
        fail(f"the recipe's version is {cls.version!r} but include/phaseloop/version.hpp says {version}")
    if cls.package_type != "header-library":
        fail(f"package_type is {cls.package_type!r}, not 'header-library'")

    recipe = cls()
    recipe.recipe_folder = str(recipe_dir)
    recipe.export_sources_folder = str(work / "export_source")
    recipe.package_folder = str(work / "package")
    (work / "export_source").mkdir()

    # conan create: export, export_sources, layout, validate, package_id, (build), package, package_info
    if hasattr(recipe, "export_sources"):
        recipe.export_sources()
    recipe.source_folder = recipe.export_sources_folder
    if hasattr(recipe, "layout"):
        recipe.layout()
    calls.clear()
    recipe.validate()
    if ("check_min_cppstd", "20") not in calls:
        fail("validate() does not call check_min_cppstd(self, 20)")
    recipe.package_id()
    if not recipe.info.cleared:
        fail("package_id() does not clear the id (self.info.clear()): a header-only package has one binary")
    recipe.package()
    recipe.package_info()

    packaged = tree(work / "package")
    installed = tree(prefix)
    pkg_headers = {k: v for k, v in packaged.items() if k.startswith("include/")}
    inst_headers = {k: v for k, v in installed.items() if k.startswith("include/")}
    if set(pkg_headers) != set(inst_headers):
        fail("the recipe's include/ is not the installed include/ tree:\n"
             f"  only in the recipe: {sorted(set(pkg_headers) - set(inst_headers))}\n"
             f"  only installed: {sorted(set(inst_headers) - set(pkg_headers))}")
    for name, content in pkg_headers.items():
        if content != inst_headers[name]:
            fail(f"{name} differs between the recipe's package and the installed tree")
    license_src = recipe_dir / ".." / ".." / "LICENSE"
    others = sorted(set(packaged) - set(pkg_headers))
    want_others = ["licenses/LICENSE"] if license_src.is_file() else []
    if others != want_others:
        fail(f"the recipe packages {others} beside the headers; expected {want_others}")

    info = recipe.cpp_info
    if info.libdirs or info.bindirs:
        fail(f"package_info() leaves libdirs={info.libdirs} bindirs={info.bindirs}; a header-only package has none")
    want = {"cmake_file_name": "phaseloop", "cmake_target_name": "phaseloop::phaseloop",
            "pkg_config_name": "phaseloop"}
    for key, value in want.items():
        if info.properties.get(key) != value:
            fail(f"package_info() sets {key}={info.properties.get(key)!r}, expected {value!r}")

    # test_package: a consumer recipe and CMake project; the CMake project is
    # built against the installed prefix by the package stage.
    tp = recipe_dir / "test_package"
    for f in ("conanfile.py", "CMakeLists.txt"):
        if not (tp / f).is_file():
            fail(f"test_package/{f} is missing")
    tcls = load_recipe(tp / "conanfile.py")
    t = tcls()
    t.tested_reference_str = f"phaseloop/{version}"
    required = []
    t.requires = lambda ref, **kw: required.append(ref)
    t.requirements()
    if required != [t.tested_reference_str]:
        fail(f"test_package requires {required}, expected the tested reference")
    if not callable(getattr(t, "test", None)):
        fail("test_package has no test() method")

    if not license_src.is_file():
        print("conan recipe check: warning: the project has no LICENSE; the package has no licenses/",
              file=sys.stderr)
    return f"conan recipe check passed: version {version}, {len(pkg_headers)} headers = installed include/ tree"


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    recipe_dir, prefix, version, work = Path(argv[0]).resolve(), Path(argv[1]), argv[2], Path(argv[3])
    try:
        print(check(recipe_dir, prefix, version, work))
    except Failure as e:
        print(f"conan recipe check FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
