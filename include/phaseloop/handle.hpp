#pragma once
// What every handle module builds on (docs/design.md §1.1): the record base
// the loop manages, and the move-only RAII handle that owns a record.
//
// A module's record derives from handle_record and is made by
// loop_core::make_record<R>(), from a loop-owned pool of records of that
// type (no allocation per handle once the pool has grown). The loop keeps
// the active/ref counts, the phase lists and the close protocol: a closed
// handle's record is released in the close phase, once the backend has
// given back every operation the record owns (operation::owner), and its
// close callback runs then. A module says how to stop its handle (cancel its
// operations) with `stop`; the loop calls it from close().

#include <phaseloop/detail/intrusive_list.hpp>
#include <phaseloop/fwd.hpp>

#include <cstdint>
#include <utility>

namespace phaseloop {

/// The part of every handle's record that the loop manages.
struct handle_record : detail::list_hook {
  loop_core* loop = nullptr;
  handle* owner = nullptr;  ///< the RAII handle holding the record; null once closed or orphaned
  callback close_callback;  ///< close()'s callback, run in the close phase
  /// The module's stop step: deactivate and cancel what the handle has
  /// started (close() calls it first). May be null.
  void (*stop)(handle_record&) = nullptr;
  /// The module's last step in the close phase, once every operation is
  /// back and before the record is destroyed: its final events (a stream's
  /// cancelled writes and 'close'). May be null.
  void (*finish)(handle_record&) = nullptr;
  /// Runs the record's destructor and returns it to its pool (set by make_record).
  void (*destroy)(handle_record&) noexcept = nullptr;
  handle_record* prev_live = nullptr;  ///< every live record of the loop, for its teardown
  handle_record* next_live = nullptr;
  std::uint64_t serial = 0;  ///< unique among the loop's records, for record_ref
  const std::uint64_t* slot_serial = nullptr;  ///< the pool slot's serial: 0 once the record is gone
  std::uint64_t pass = 0;         ///< the phase pass during which it was started or closed
  std::uint32_t outstanding = 0;  ///< operations the backend still owns
  std::uint32_t pool_index = 0;
  bool active = false;
  bool refed = true;
  bool closing = false;

  handle_record() = default;
  handle_record(const handle_record&) = delete;
  handle_record& operator=(const handle_record&) = delete;
};

/// A copyable reference to a record that the loop owns until it is closed
/// (Node's lifetime for sockets and servers): get() gives the record, or
/// null once it has been released. Valid while its loop exists.
template <class R>
class record_ref {
 public:
  record_ref() noexcept = default;
  explicit record_ref(R& r) noexcept : record_(&r), slot_serial_(r.slot_serial), serial_(r.serial) {}
  [[nodiscard]] R* get() const noexcept {
    return slot_serial_ != nullptr && *slot_serial_ == serial_ ? record_ : nullptr;
  }
  friend bool operator==(const record_ref& a, const record_ref& b) noexcept {
    return a.slot_serial_ == b.slot_serial_ && a.serial_ == b.serial_;
  }

 private:
  R* record_ = nullptr;
  const std::uint64_t* slot_serial_ = nullptr;
  std::uint64_t serial_ = 0;
};

/// The move-only owner of a handle record. Destroying it closes the handle;
/// close(cb) runs cb in the close phase. Safe to use after the loop is gone:
/// the handle is then empty and every call does nothing.
class handle {
 public:
  handle(const handle&) = delete;
  handle& operator=(const handle&) = delete;

  /// False once closed, moved from, or when the loop is gone.
  explicit operator bool() const noexcept { return record_ != nullptr; }
  /// Started and not stopped or closed.
  [[nodiscard]] bool active() const noexcept { return record_ != nullptr && record_->active; }
  /// Whether an active handle keeps the loop alive.
  [[nodiscard]] bool has_ref() const noexcept { return record_ != nullptr && record_->refed; }
  /// The loop the handle belongs to; null once closed or when the loop is gone.
  [[nodiscard]] loop_core* loop() const noexcept { return record_ != nullptr ? record_->loop : nullptr; }

  /// Stop the handle and release it in the close phase, then run `on_close`
  /// there (once every operation it started has been given back).
  inline void close(callback on_close = {});

 protected:
  handle() noexcept = default;
  explicit handle(handle_record& r) noexcept : record_(&r) { r.owner = this; }
  handle(handle&& other) noexcept : record_(std::exchange(other.record_, nullptr)) {
    if (record_ != nullptr) record_->owner = this;
  }
  handle& operator=(handle&& other) noexcept {
    if (this != &other) {
      close();
      record_ = std::exchange(other.record_, nullptr);
      if (record_ != nullptr) record_->owner = this;
    }
    return *this;
  }
  ~handle() { close(); }

  inline void set_ref(bool on) noexcept;

  /// The record, cast to the module's type; null when the handle is empty.
  template <class R>
  [[nodiscard]] R* record() const noexcept {
    return static_cast<R*>(record_);
  }

 private:
  friend class loop_core;
  handle_record* record_ = nullptr;
};

/// A handle type's ref()/unref(), returning the handle itself.
template <class Self>
class basic_handle : public handle {
 public:
  /// Keep the loop alive while active (the default).
  Self& ref() noexcept {
    set_ref(true);
    return static_cast<Self&>(*this);
  }
  /// Let the loop end while this handle is active.
  Self& unref() noexcept {
    set_ref(false);
    return static_cast<Self&>(*this);
  }

 protected:
  basic_handle() noexcept = default;
  explicit basic_handle(handle_record& r) noexcept : handle(r) {}
};

}  // namespace phaseloop

// handle::close needs the loop core; included last so that either header may
// come first.
#include <phaseloop/loop_core.hpp>
