#pragma once
// read_buffers: a loop's pool of receive buffers, shared by every socket kind
// (a stream reads into one, a datagram socket receives into one), so a
// connection that closes hands its buffer to the next socket of any kind and
// steady-state reads allocate nothing.

#include <phaseloop/version.hpp>
#include <phaseloop/fwd.hpp>

#include <cstddef>
#include <memory>
#include <vector>

namespace phaseloop::detail {

/// A per-loop service (loop_core::service<read_buffers>()).
struct read_buffers {
  /// Every buffer's size: a whole TCP read, or the largest UDP datagram.
  static constexpr std::size_t size = 64 * 1024;
  /// Free buffers kept for reuse; more are freed.
  static constexpr std::size_t kept = 1024;

  explicit read_buffers(loop_core&) {}

  std::byte* take() {
    if (free.empty()) return new std::byte[size];
    std::byte* b = free.back().release();
    free.pop_back();
    return b;
  }
  void give(std::byte* b) noexcept {
    if (b == nullptr) return;
    if (free.size() < kept) {
      try {
        free.emplace_back(b);
        return;
      } catch (...) {  // no room to keep it: free it
      }
    }
    delete[] b;
  }

  std::vector<std::unique_ptr<std::byte[]>> free;
};

}  // namespace phaseloop::detail
