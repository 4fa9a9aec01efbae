# Cross-compiling for 64-bit Windows with mingw-w64 (the posix thread model,
# for std::thread and std::mutex), running the results with Wine:
#   cmake -S . -B build/win --toolchain cmake/toolchains/mingw-w64-x86_64.cmake
# Executables link statically, so they run without mingw's DLLs beside them,
# and CMAKE_CROSSCOMPILING_EMULATOR makes ctest run them under Wine.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(PHASELOOP_MINGW_TRIPLE x86_64-w64-mingw32)

set(CMAKE_FIND_ROOT_PATH /usr/${PHASELOOP_MINGW_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

find_program(CMAKE_C_COMPILER NAMES ${PHASELOOP_MINGW_TRIPLE}-gcc-posix ${PHASELOOP_MINGW_TRIPLE}-gcc)
find_program(CMAKE_CXX_COMPILER NAMES ${PHASELOOP_MINGW_TRIPLE}-g++-posix ${PHASELOOP_MINGW_TRIPLE}-g++)
find_program(CMAKE_RC_COMPILER NAMES ${PHASELOOP_MINGW_TRIPLE}-windres)
if(NOT CMAKE_CXX_COMPILER)
  message(FATAL_ERROR "mingw-w64 not found: install g++-mingw-w64-x86-64-posix")
endif()

set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")

find_program(PHASELOOP_WINE NAMES wine64 wine PATHS /usr/lib/wine /usr/lib64/wine NO_CMAKE_FIND_ROOT_PATH)
if(PHASELOOP_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${PHASELOOP_WINE})
endif()
