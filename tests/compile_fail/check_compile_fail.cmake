# One compile-failure test (tests/compile_fail/CMakeLists.txt registers them):
# compiles SOURCE with -fsyntax-only and checks the outcome.
#
#   cmake -DCOMPILER=g++ -DINCLUDE_DIRS="dir|dir" -DSOURCE=not_a_backend.cpp
#         -DEXPECT=fail -DCONCEPT=backend -DTYPE=not_a_backend [-DFLAGS="..."]
#         -P check_compile_fail.cmake
#
# EXPECT=fail passes only when the compiler rejects the source and says that
# TYPE does not satisfy phaseloop's CONCEPT:
#   g++:     required for the satisfaction of 'backend<Backend>' [with Backend = not_a_backend]
#   clang++: 'not_a_backend' does not satisfy 'backend'
# (g++'s "template constraint failure" line lists every concept of
# basic_loop, so only these lines tell which one failed). An error for another
# reason (a header not found) fails the test. EXPECT=compile passes only when
# the source compiles: the control, so a wrong include path cannot make the
# others pass. INCLUDE_DIRS is a |-separated list; FLAGS (CMAKE_CXX_FLAGS) is
# split as a Unix command line.
cmake_minimum_required(VERSION 3.16)

foreach(var COMPILER SOURCE EXPECT INCLUDE_DIRS)
  if("${${var}}" STREQUAL "")
    message(FATAL_ERROR "check_compile_fail.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT EXPECT MATCHES "^(fail|compile)$")
  message(FATAL_ERROR "check_compile_fail.cmake: EXPECT is fail or compile, not '${EXPECT}'")
endif()
if(EXPECT STREQUAL "fail" AND "${CONCEPT}" STREQUAL "")
  message(FATAL_ERROR "check_compile_fail.cmake: EXPECT=fail needs -DCONCEPT=<the concept's name>")
endif()

set(args)
if(NOT "${FLAGS}" STREQUAL "")
  separate_arguments(extra UNIX_COMMAND "${FLAGS}")
  list(APPEND args ${extra})
endif()
list(APPEND args -std=c++20 -fsyntax-only -fdiagnostics-color=never)
string(REPLACE "|" ";" include_dirs "${INCLUDE_DIRS}")
foreach(dir IN LISTS include_dirs)
  if(NOT dir STREQUAL "")
    list(APPEND args "-I${dir}")
  endif()
endforeach()

# English diagnostics with ASCII quotes, whatever locale ctest runs in.
set(ENV{LC_ALL} C)
set(ENV{LANG} C)
unset(ENV{LANGUAGE})

execute_process(
  COMMAND "${COMPILER}" ${args} "${SOURCE}"
  RESULT_VARIABLE result
  OUTPUT_VARIABLE output
  ERROR_VARIABLE output)

string(REPLACE ";" " " shown "${COMPILER} ${args} ${SOURCE}")
get_filename_component(name "${SOURCE}" NAME)

if(EXPECT STREQUAL "compile")
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${name} should compile and did not (${result}):\n  ${shown}\n${output}")
  endif()
  message(STATUS "${name} compiles, as it should")
  return()
endif()

if(result EQUAL 0)
  message(FATAL_ERROR "${name} compiled, but its wrong policy should have been rejected:\n  ${shown}\n${output}")
endif()
if(output MATCHES "fatal error|[Nn]o such file or directory|file not found")
  message(FATAL_ERROR "${name} failed to compile for another reason than its policy:\n  ${shown}\n${output}")
endif()

# The names as regular expressions.
function(regex_escape out text)
  string(REGEX REPLACE "([][.*+?^$()|{}\\\\])" "\\\\\\1" escaped "${text}")
  set(${out} "${escaped}" PARENT_SCOPE)
endfunction()
regex_escape(concept_re "${CONCEPT}")
if("${TYPE}" STREQUAL "")
  set(type_re "[^']+")
else()
  regex_escape(type_re "${TYPE}")
endif()
set(gcc_re "satisfaction of '(phaseloop::)?${concept_re}<[^']*>' \\[with [A-Za-z_0-9]+ = ${type_re}\\]")
set(clang_re "'${type_re}' does not satisfy '(phaseloop::)?${concept_re}'")

foreach(re IN ITEMS "${gcc_re}" "${clang_re}")
  if(output MATCHES "${re}")
    message(STATUS "${name} is rejected, naming the concept: ${CMAKE_MATCH_0}")
    return()
  endif()
endforeach()
message(FATAL_ERROR
  "${name} was rejected (as it should), but the diagnostic does not say that "
  "${TYPE} does not satisfy ${CONCEPT} (looked for /${gcc_re}/ or /${clang_re}/):\n  ${shown}\n${output}")
