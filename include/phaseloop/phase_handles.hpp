#pragma once
// Idle, prepare and check handles (libuv's uv_idle_t, uv_prepare_t,
// uv_check_t): a callback run once per loop iteration in one phase. Idle
// runs before prepare, and an active idle handle makes poll non-blocking;
// prepare runs right before poll; check right after it, after the
// immediates. Several started handles of one kind run newest first, as in
// libuv (uv_idle_start puts a handle at the head of its list): the handle
// started last runs first; restarting an active handle keeps its place, and
// a handle started during its phase waits for the next iteration.

#include <phaseloop/handle.hpp>
#include <phaseloop/loop_core.hpp>

#include <utility>

namespace phaseloop {

namespace detail {
struct phase_record : handle_record {
  callback fn;
  phase which = phase::idle;
};

// Runs a handle's callback from a local, so start() with a new callback
// from inside the running one cannot destroy the callable on the stack; the
// callback goes back unless a new one was set meanwhile.
template <class Fn, class... Args>
void invoke_handle_callback(loop_core& loop, Fn& slot, Args&&... args) {
  Fn fn = std::move(slot);
  struct restore {
    Fn& slot;
    Fn& fn;
    ~restore() {
      if (!slot) slot = std::move(fn);
    }
  };
  {
    restore guard{slot, fn};
    loop.invoke(fn, std::forward<Args>(args)...);
  }
  loop.run_microtasks();
}

/// One pass over a phase list (the loop's idle, prepare or check phase).
inline void run_phase_record(handle_record& r) {
  auto& p = static_cast<phase_record&>(r);
  invoke_handle_callback(*p.loop, p.fn);
}
}  // namespace detail

/// A handle whose callback runs once per iteration in one phase.
template <phase Phase>
class phase_handle : public basic_handle<phase_handle<Phase>> {
 public:
  phase_handle() noexcept = default;
  /// A handle on `loop` (not started).
  explicit phase_handle(loop_core& loop) : basic_handle<phase_handle<Phase>>(make(loop)) {}

  /// Start (or restart with a new callback). Starting a closed handle does nothing.
  void start(callback cb) {
    PHASELOOP_ASSERT(static_cast<bool>(cb), "a phase handle was started with an empty callback");
    auto* r = this->template record<detail::phase_record>();
    if (r == nullptr) return;
    r->fn = std::move(cb);
    if (r->active) return;
    r->pass = r->loop->current_pass();
    r->loop->phase_list(Phase).push_front(*r);  // newest first, as libuv
    r->loop->activate(*r);
  }
  void stop() {
    if (auto* r = this->template record<detail::phase_record>()) stop_record(*r);
  }

 private:
  static handle_record& make(loop_core& loop) {
    auto& r = loop.make_record<detail::phase_record>();
    r.which = Phase;
    r.stop = &stop_record;
    return r;
  }
  static void stop_record(handle_record& base) {
    auto& r = static_cast<detail::phase_record&>(base);
    if (!r.active) return;
    r.loop->deactivate(r);
    r.loop->phase_list(Phase).remove(r);
  }
};

using idle_handle = phase_handle<phase::idle>;
using prepare_handle = phase_handle<phase::prepare>;
using check_handle = phase_handle<phase::check>;

}  // namespace phaseloop
