#pragma once
// What every test includes: phaseloop through its umbrella header (or the
// generated single header), Catch2, the loop types the suites run on, and
// helpers to compare traces.

#if defined(PHASELOOP_TEST_SINGLE_HEADER)
#include <phaseloop.hpp>
#else
#include <phaseloop/phaseloop.hpp>
#endif
#if defined(__linux__) && !defined(PHASELOOP_TEST_SINGLE_HEADER)
#include <phaseloop/backend/io_uring.hpp>  // not in the umbrella yet
#endif

#include <catch2/catch.hpp>

#include <boost/pfr.hpp>

#include <chrono>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace phaseloop::test {

using namespace std::chrono_literals;

/// A trace of printed lines, as the conformance scenarios print them.
using trace = std::vector<std::string>;

/// The loops whose scheduling must match Node's: every timer store on the
/// mock backend (virtual time) and on each real backend of this platform.
using mock_heap_loop = basic_loop<mock_backend, heap_timers, inline_executor>;
using mock_wheel_loop = basic_loop<mock_backend, wheel_timers, inline_executor>;
#if defined(__linux__)
using epoll_heap_loop = basic_loop<epoll_backend, heap_timers, inline_executor>;
using epoll_wheel_loop = basic_loop<epoll_backend, wheel_timers, inline_executor>;
using poll_heap_loop = basic_loop<poll_backend, heap_timers, inline_executor>;
#define PHASELOOP_TEST_REAL_LOOPS                                                                       \
  , phaseloop::test::epoll_heap_loop, phaseloop::test::epoll_wheel_loop, phaseloop::test::poll_heap_loop \
      PHASELOOP_TEST_KQUEUE_TAIL
#else
#define PHASELOOP_TEST_REAL_LOOPS PHASELOOP_TEST_KQUEUE_TAIL
#endif
/// The two executors on this platform's real backend (the mock where there
/// is none yet): suites parameterised by the Executor policy run on these.
#if defined(__linux__)
using pool_loop = basic_loop<epoll_backend, heap_timers, thread_pool_executor>;
using inline_io_loop = basic_loop<epoll_backend, heap_timers, inline_executor>;
#else
using pool_loop = basic_loop<mock_backend, heap_timers, thread_pool_executor>;
using inline_io_loop = basic_loop<mock_backend, heap_timers, inline_executor>;
#endif
#define PHASELOOP_TEST_EXECUTOR_LOOPS \
  phaseloop::test::inline_io_loop, phaseloop::test::pool_loop PHASELOOP_TEST_KQUEUE_EXECUTOR_TAIL

#define PHASELOOP_TEST_MOCK_LOOPS phaseloop::test::mock_heap_loop, phaseloop::test::mock_wheel_loop
#define PHASELOOP_TEST_ALL_LOOPS PHASELOOP_TEST_MOCK_LOOPS PHASELOOP_TEST_REAL_LOOPS
/// One loop per backend (heap timers): the mock's virtual network and each
/// real backend, for the I/O suites. Each further backend adds its loops
/// through its own tail, a list that starts with a comma (empty when that
/// backend is not built).
// io_uring: its header is included at the top (the single header has it
// when it defines PHASELOOP_HAS_IO_URING).
#if defined(__linux__) && defined(PHASELOOP_HAS_IO_URING)
using uring_heap_loop = basic_loop<io_uring_backend, heap_timers, inline_executor>;
#define PHASELOOP_TEST_IO_URING_TAIL , phaseloop::test::uring_heap_loop
#endif
#if !defined(PHASELOOP_TEST_IO_URING_TAIL)
#define PHASELOOP_TEST_IO_URING_TAIL
#endif
// kqueue: natively on Apple and the BSDs, over libkqueue on Linux
// (tests/CMakeLists.txt defines PHASELOOP_TEST_WITH_KQUEUE for both). It
// joins the real loops (conformance), the I/O loops (net, dgram) and the
// executor loops (fs, dns) with its thread-pool loop.
#if defined(PHASELOOP_TEST_WITH_KQUEUE) && defined(PHASELOOP_HAS_KQUEUE_BACKEND)
using kqueue_heap_loop = basic_loop<kqueue_backend, heap_timers, inline_executor>;
using kqueue_pool_loop = basic_loop<kqueue_backend, heap_timers, thread_pool_executor>;
#define PHASELOOP_TEST_KQUEUE_TAIL , phaseloop::test::kqueue_heap_loop
#define PHASELOOP_TEST_KQUEUE_EXECUTOR_TAIL , phaseloop::test::kqueue_pool_loop
#elif defined(PHASELOOP_TEST_WITH_KQUEUE)
#error "PHASELOOP_TEST_WITH_KQUEUE: kqueue_backend is not built (PHASELOOP_WITH_KQUEUE and <sys/event.h> needed)"
#endif
#if !defined(PHASELOOP_TEST_KQUEUE_TAIL)
#define PHASELOOP_TEST_KQUEUE_TAIL
#endif
#if !defined(PHASELOOP_TEST_KQUEUE_EXECUTOR_TAIL)
#define PHASELOOP_TEST_KQUEUE_EXECUTOR_TAIL
#endif
#if defined(__linux__)
#define PHASELOOP_TEST_REAL_IO_LOOPS                                                                        \
  phaseloop::test::epoll_heap_loop, phaseloop::test::poll_heap_loop PHASELOOP_TEST_IO_URING_TAIL \
      PHASELOOP_TEST_KQUEUE_TAIL
#define PHASELOOP_TEST_IO_LOOPS phaseloop::test::mock_heap_loop, PHASELOOP_TEST_REAL_IO_LOOPS
#else
#define PHASELOOP_TEST_IO_LOOPS phaseloop::test::mock_heap_loop PHASELOOP_TEST_KQUEUE_TAIL
#define PHASELOOP_TEST_REAL_IO_LOOPS
#endif
/// PHASELOOP_TEST_KQUEUE_ONLY (the kqueue stage, which runs only what runs
/// on kqueue): the real-backend lists hold kqueue's loops alone, so the
/// build does not instantiate every suite for epoll and poll as well.
#if defined(PHASELOOP_TEST_KQUEUE_ONLY) && defined(PHASELOOP_TEST_WITH_KQUEUE)
#undef PHASELOOP_TEST_REAL_LOOPS
#undef PHASELOOP_TEST_EXECUTOR_LOOPS
#undef PHASELOOP_TEST_REAL_IO_LOOPS
#undef PHASELOOP_TEST_IO_LOOPS
#define PHASELOOP_TEST_REAL_LOOPS PHASELOOP_TEST_KQUEUE_TAIL
#define PHASELOOP_TEST_EXECUTOR_LOOPS phaseloop::test::kqueue_pool_loop
#define PHASELOOP_TEST_REAL_IO_LOOPS phaseloop::test::kqueue_heap_loop
#define PHASELOOP_TEST_IO_LOOPS phaseloop::test::kqueue_heap_loop
#endif

/// A promise's rejection as its error code's name (error_name), or "not a
/// system_error" when it was something else.
inline std::string rejection_name(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::system_error& err) {
    return error_name(err.code());
  } catch (...) {
    return "not a system_error";
  }
}

/// Reads tests/conformance/expected/NAME.expected: what Node v20 printed.
inline trace expected_trace(const std::string& name) {
  std::ifstream in(std::string(PHASELOOP_CONFORMANCE_DIR) + "/" + name + ".expected");
  trace lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace phaseloop::test

// Test aggregates (loop_metrics and the traces' steps) print field by field
// through Boost.PFR, with no hand-written operators.
namespace phaseloop::test {
template <class T>
std::string describe_aggregate(const T& value) {
  std::ostringstream out;
  out << '{';
  boost::pfr::for_each_field(value, [&](const auto& field, std::size_t i) {
    if (i != 0) out << ", ";
    if constexpr (requires { field.count(); })
      out << field.count();
    else
      out << field;
  });
  out << '}';
  return out.str();
}
}  // namespace phaseloop::test
namespace Catch {
template <>
struct StringMaker<phaseloop::loop_metrics> {
  static std::string convert(const phaseloop::loop_metrics& m) {
    return phaseloop::test::describe_aggregate(m);
  }
};
}  // namespace Catch
