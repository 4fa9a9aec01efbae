#pragma once
// The handles of timers and immediates: small copyable values (slot index +
// generation) naming a loop's pooled record. Once a one-shot timer has fired
// or any timer has been cleared (an immediate has run or been cleared), the
// handle is stale and every call on it is a no-op. A handle also goes stale
// when its loop is destroyed (detail/loop_life.hpp): using it then does
// nothing, never touches freed memory. Generations never repeat, so a stale
// handle never names a later timer or immediate.
//
// Precondition: a handle is given only to the loop that made it
// (PHASELOOP_ASSERT checks it), and is used on that loop's thread.

#include <phaseloop/detail/loop_life.hpp>

#include <atomic>
#include <cstdint>

namespace phaseloop {

/// A timer from set_timeout or set_interval on a Loop.
template <class Loop>
class basic_timer_handle {
 public:
  basic_timer_handle() = default;
  /// Restart the countdown from now with the original delay (Node's refresh()).
  basic_timer_handle& refresh() {
    if (auto* r = record()) loop_->refresh_timer(*r);
    return *this;
  }
  /// Make the timer keep the loop alive (the default).
  basic_timer_handle& ref() {
    if (auto* r = record()) loop_->set_timer_ref(*r, true);
    return *this;
  }
  /// Let the loop end while this timer is pending; it still fires if the loop runs.
  basic_timer_handle& unref() {
    if (auto* r = record()) loop_->set_timer_ref(*r, false);
    return *this;
  }
  [[nodiscard]] bool has_ref() const {
    const auto* r = record();
    return r != nullptr && r->refed();
  }
  /// Scheduled to fire (an interval stays active until cleared).
  [[nodiscard]] bool active() const {
    const auto* r = record();
    return r != nullptr && loop_->timer_active(*r);
  }
  friend bool operator==(const basic_timer_handle&, const basic_timer_handle&) = default;

 private:
  friend Loop;
  basic_timer_handle(Loop* loop, std::uint32_t index, std::uint32_t generation)
      : loop_(loop), life_(&loop->life_), life_id_(loop->life_id_), index_(index), generation_(generation) {}
  // Whether the loop that made this handle still exists (one relaxed load).
  [[nodiscard]] bool loop_alive() const noexcept {
    return loop_ != nullptr && life_->id.load(std::memory_order_relaxed) == life_id_;
  }
  auto* record() const { return loop_alive() ? loop_->timers_.find(index_, generation_) : nullptr; }
  Loop* loop_ = nullptr;
  const detail::loop_life* life_ = nullptr;
  std::uint64_t life_id_ = 0;
  std::uint32_t index_ = 0;
  std::uint32_t generation_ = 0;
};

/// An immediate from set_immediate on a Loop.
template <class Loop>
class basic_immediate_handle {
 public:
  basic_immediate_handle() = default;
  basic_immediate_handle& ref() {
    if (auto* r = record()) loop_->set_immediate_ref(*r, true);
    return *this;
  }
  basic_immediate_handle& unref() {
    if (auto* r = record()) loop_->set_immediate_ref(*r, false);
    return *this;
  }
  [[nodiscard]] bool has_ref() const {
    const auto* r = record();
    return r != nullptr && r->refed;
  }
  /// Queued and not yet run or cleared.
  [[nodiscard]] bool active() const { return record() != nullptr; }
  /// Queued and not yet run or cleared (the same as active()).
  [[nodiscard]] bool pending() const { return active(); }
  friend bool operator==(const basic_immediate_handle&, const basic_immediate_handle&) = default;

 private:
  friend Loop;
  basic_immediate_handle(Loop* loop, std::uint32_t index, std::uint32_t generation)
      : loop_(loop), life_(&loop->life_), life_id_(loop->life_id_), index_(index), generation_(generation) {}
  // Whether the loop that made this handle still exists (one relaxed load).
  [[nodiscard]] bool loop_alive() const noexcept {
    return loop_ != nullptr && life_->id.load(std::memory_order_relaxed) == life_id_;
  }
  auto* record() const {
    if (!loop_alive()) return static_cast<decltype(loop_->immediates_.find(0, 0))>(nullptr);
    auto* r = loop_->immediates_.find(index_, generation_);
    return r != nullptr && r->linked ? r : nullptr;
  }
  Loop* loop_ = nullptr;
  const detail::loop_life* life_ = nullptr;
  std::uint64_t life_id_ = 0;
  std::uint32_t index_ = 0;
  std::uint32_t generation_ = 0;
};

}  // namespace phaseloop
