# phaseloop as a vcpkg overlay port, built from the checkout that holds it:
#   vcpkg install phaseloop --overlay-ports=<checkout>/packaging/vcpkg/ports
# or, in manifest mode, list "phaseloop" in vcpkg.json and point
# VCPKG_OVERLAY_PORTS at packaging/vcpkg/ports.
# It installs through phaseloop's own CMake install rules, so the package is
# exactly what `cmake --install` gives, plus vcpkg's usage and copyright files.

set(VCPKG_BUILD_TYPE release)  # header-only: one configuration is the whole package

# From a registry, the source would come from a release instead:
#   vcpkg_from_github(OUT_SOURCE_PATH SOURCE_PATH REPO <owner>/phaseloop
#                     REF "v${VERSION}" SHA512 <hash of the archive> HEAD_REF main)
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../../../.." ABSOLUTE)
if(NOT EXISTS "${SOURCE_PATH}/include/phaseloop/version.hpp")
  message(FATAL_ERROR "phaseloop: ${SOURCE_PATH} is not a phaseloop checkout; "
                      "use this port from packaging/vcpkg/ports inside one")
endif()

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    -DPHASELOOP_INSTALL=ON
    -DPHASELOOP_BUILD_TESTS=OFF
    -DPHASELOOP_BUILD_EXAMPLES=OFF
    -DPHASELOOP_BUILD_BENCH=OFF
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(PACKAGE_NAME phaseloop CONFIG_PATH share/phaseloop)
vcpkg_fixup_pkgconfig()

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
