# phaseloop's Conan 2 recipe, exported from the checkout that holds it:
#   conan create packaging/conan --build=missing
# It packages the headers exactly as phaseloop's CMake install lays them out;
# Conan's CMakeDeps and PkgConfigDeps generators provide phaseloop::phaseloop
# and phaseloop.pc from package_info().
import os

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"


class PhaseloopConan(ConanFile):
    name = "phaseloop"
    version = "0.1.0"
    description = ("Node.js's event loop for C++20, header-only: timers, immediates, "
                   "nextTick, promises and I/O in Node's exact order.")
    license = "MIT"
    homepage = "https://github.com/phaseloop/phaseloop"
    url = "https://github.com/phaseloop/phaseloop"
    topics = ("event-loop", "nodejs", "libuv", "async", "coroutines", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    no_copy_source = True

    def _checkout(self):
        return os.path.join(self.recipe_folder, "..", "..")

    def export_sources(self):
        root = self._checkout()
        copy(self, "*.hpp", src=os.path.join(root, "include"),
             dst=os.path.join(self.export_sources_folder, "include"))
        copy(self, "LICENSE", src=root, dst=self.export_sources_folder)

    def layout(self):
        basic_layout(self, src_folder=".")

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)

    def package(self):
        copy(self, "LICENSE", src=self.source_folder,
             dst=os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", src=os.path.join(self.source_folder, "include"),
             dst=os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.set_property("cmake_file_name", "phaseloop")
        self.cpp_info.set_property("cmake_target_name", "phaseloop::phaseloop")
        self.cpp_info.set_property("pkg_config_name", "phaseloop")
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]
