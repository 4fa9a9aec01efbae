#pragma once
// monotonic_ms_clock: CLOCK_MONOTONIC in whole milliseconds, for a loop that
// reads its clock every time a timer is set (Node semantics).
//
// A vDSO clock_gettime costs ~20 ns, and on x86 it is worse than that: its
// TSC read is ordered (lfence; rdtsc), so the cache misses of the code around
// it stop overlapping. A loop resetting request timeouts paid several times
// the clock's own cost for that. Between millisecond boundaries the answer
// cannot change, so on x86-64 with an invariant TSC that Linux itself uses as
// its clocksource, each real read also computes the TSC value before which
// the next boundary cannot have passed, and later reads compare a plain
// (unordered) rdtsc against it. The deadline uses a lower bound of the TSC
// rate measured from two real reads, each bracketed by TSC reads, lowered by
// a further 0.1% for NTP slewing of CLOCK_MONOTONIC, so it is never late: a
// fast read returns what clock_gettime would have returned, except that an
// unordered rdtsc may run a few cycles ahead of the instructions before it.
// Until the rate is known, when the TSC goes backwards (another CPU), and
// everywhere else, every read is a real one. When CLOCK_MONOTONIC_COARSE has
// 1 ms resolution or better, that cheap read is used instead, as libuv does.

#include <phaseloop/version.hpp>

#if defined(__linux__)

#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

// The TSC is read with the compiler's builtin, not through <x86intrin.h>
// (48,000 preprocessed lines for one instruction); CPUID through <cpuid.h>
// (a few hundred lines of macros and one inline function). MSVC has both in
// <intrin.h>, which it needs anyway.
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define PHASELOOP_DETAIL_HAS_TSC 1
#elif defined(_M_X64) && defined(_MSC_VER)
#include <intrin.h>
#define PHASELOOP_DETAIL_HAS_TSC 1
#else
#define PHASELOOP_DETAIL_HAS_TSC 0
#endif

namespace phaseloop::detail {

#if PHASELOOP_DETAIL_HAS_TSC
/// An unordered rdtsc.
inline std::uint64_t read_tsc() noexcept {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_ia32_rdtsc();
#else
  return __rdtsc();
#endif
}

/// CPUID leaf `leaf` (EAX, EBX, ECX, EDX), or false when the CPU lacks it.
inline bool read_cpuid(unsigned leaf, unsigned (&regs)[4]) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  return __get_cpuid(leaf, &regs[0], &regs[1], &regs[2], &regs[3]) != 0;
#else
  int r[4] = {};
  __cpuid(r, static_cast<int>(leaf & 0x80000000u));  // the highest leaf of this range, as __get_cpuid
  if (static_cast<unsigned>(r[0]) < leaf) return false;
  __cpuid(r, static_cast<int>(leaf));
  for (int i = 0; i < 4; ++i) regs[i] = static_cast<unsigned>(r[i]);
  return true;
#endif
}
#endif

class monotonic_ms_clock {
 public:
  monotonic_ms_clock() noexcept {
    timespec res{};
    if (::clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 && res.tv_sec == 0 && res.tv_nsec <= 1000000)
      source_ = source::coarse;
    else if (tsc_usable())
      source_ = source::tsc;
  }

  /// Milliseconds of CLOCK_MONOTONIC, as clock_gettime would give them now.
  [[nodiscard]] std::uint64_t now_ms() const noexcept {
#if PHASELOOP_DETAIL_HAS_TSC
    if (source_ == source::tsc) {
      const std::uint64_t t = read_tsc();
      if (t - tsc_base_ < tsc_window_) return ms_;
      return read_and_calibrate();
    }
#endif
    timespec ts{};
    ::clock_gettime(source_ == source::coarse ? CLOCK_MONOTONIC_COARSE : CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
  }

  /// Whether reads between millisecond boundaries skip clock_gettime.
  [[nodiscard]] bool uses_tsc() const noexcept { return source_ == source::tsc; }
  /// Whether reads use CLOCK_MONOTONIC_COARSE (up to 1 ms behind, as libuv's).
  [[nodiscard]] bool uses_coarse() const noexcept { return source_ == source::coarse; }
  /// Whether the rate is known yet (fast reads need it).
  [[nodiscard]] bool calibrated() const noexcept { return ticks_per_ns_ > 0; }

 private:
#if PHASELOOP_DETAIL_HAS_TSC
  /// Invariant TSC (CPUID 0x80000007 EDX bit 8), and the kernel's own
  /// clocksource is the TSC, so it considers it synchronised across CPUs.
  static bool tsc_usable() noexcept {
    static const bool usable = [] {
      unsigned regs[4] = {};
      if (!read_cpuid(0x80000000u, regs) || regs[0] < 0x80000007u) return false;
      if (!read_cpuid(0x80000007u, regs) || (regs[3] & (1u << 8)) == 0) return false;
      std::FILE* f = std::fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
      if (f == nullptr) return false;
      char name[32] = {};
      const bool read = std::fgets(name, sizeof name, f) != nullptr;
      std::fclose(f);
      return read && std::strncmp(name, "tsc\n", 4) == 0;
    }();
    return usable;
  }

  std::uint64_t read_and_calibrate() const noexcept {
    timespec ts{};
    const std::uint64_t before = read_tsc();
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const std::uint64_t after = read_tsc();
    const std::uint64_t ns = static_cast<std::uint64_t>(ts.tv_sec) * 1000000000 + static_cast<std::uint64_t>(ts.tv_nsec);
    ms_ = ns / 1000000;
    tsc_window_ = 0;
    // A pair is only as exact as the TSC reads around it: skip pairs where
    // the thread was interrupted in between.
    if (after < before || after - before > max_bracket) return ms_;
    if (anchor_ns_ == 0) {
      anchor_ns_ = ns;
      anchor_tsc_after_ = after;
    } else if (ns - anchor_ns_ >= calibration_span_ns && before > anchor_tsc_after_) {
      // At anchor_ns_ the TSC was at most anchor_tsc_after_; at ns at least
      // `before`: the true rate is at least this.
      ticks_per_ns_ = static_cast<double>(before - anchor_tsc_after_) / static_cast<double>(ns - anchor_ns_) * 0.999;
    }
    if (ticks_per_ns_ > 0) {
      tsc_base_ = before;
      const std::uint64_t to_boundary = (ms_ + 1) * 1000000 - ns;
      tsc_window_ = static_cast<std::uint64_t>(static_cast<double>(to_boundary) * ticks_per_ns_);
    }
    return ms_;
  }

  static constexpr std::uint64_t max_bracket = 100000;            // TSC ticks: ~30 us
  static constexpr std::uint64_t calibration_span_ns = 2000000;  // 2 ms between the two reads
#else
  static bool tsc_usable() noexcept { return false; }
#endif

  enum class source : unsigned char { monotonic, coarse, tsc };
  source source_ = source::monotonic;
  mutable std::uint64_t ms_ = 0;
  mutable std::uint64_t tsc_base_ = 0;
  mutable std::uint64_t tsc_window_ = 0;  // fast reads while rdtsc() - tsc_base_ < this
  mutable double ticks_per_ns_ = 0;       // lower bound of the TSC rate, 0 until measured
  mutable std::uint64_t anchor_ns_ = 0;
  mutable std::uint64_t anchor_tsc_after_ = 0;
};

}  // namespace phaseloop::detail

#endif  // __linux__
