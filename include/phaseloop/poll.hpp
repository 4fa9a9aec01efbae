#pragma once
// poll_handle: watches a raw descriptor for readiness (libuv's uv_poll_t),
// the first handle module built on handle.hpp. The callback gets an error, or
// the events that happened (level-triggered: every iteration while the
// descriptor stays ready), until stop(). Only the events the handle asks for
// now are reported (hangup and error always), even if readiness for others
// was already queued. Stop or close the handle before closing the
// descriptor.

#include <phaseloop/handle.hpp>
#include <phaseloop/loop_core.hpp>
#include <phaseloop/operation.hpp>
#include <phaseloop/phase_handles.hpp>

#include <system_error>
#include <utility>

namespace phaseloop {

namespace detail {
struct poll_record : handle_record {
  operation op;
  unique_function<void(std::error_code, io_events)> fn;
  io_events want = io_events::none;  // what the handle watches for now
  bool restart = false;  // started again while the backend still owns the cancelled operation
};
}  // namespace detail

class poll_handle : public basic_handle<poll_handle> {
 public:
  using poll_callback = detail::unique_function<void(std::error_code, io_events)>;

  poll_handle() noexcept = default;
  /// A handle for descriptor `fd` on `loop` (not started).
  poll_handle(loop_core& loop, native_handle fd) : basic_handle<poll_handle>(make(loop, fd)) {}

  /// Watch for `events` (readable, writable or both), or change what a
  /// started handle watches for. An invalid descriptor, one the backend
  /// cannot watch, or a closed handle gives an error.
  std::error_code start(io_events events, poll_callback cb) {
    auto* r = record<detail::poll_record>();
    if (r == nullptr) return std::make_error_code(std::errc::bad_file_descriptor);
    PHASELOOP_ASSERT(static_cast<bool>(cb), "a poll handle was started with an empty callback");
    const io_events rw = io_events::readable | io_events::writable;
    if (!any(events) || any(events & ~rw)) return std::make_error_code(std::errc::invalid_argument);
    loop_core& loop = *r->loop;
    if (r->active && r->op.state == op_state::submitted && events == r->want) {
      r->fn = std::move(cb);
      return {};
    }
    if (r->op.state == op_state::submitted) loop.cancel(r->op);  // watch other events: start again
    if (r->op.in_flight() || r->op.linked) {
      // The backend has not given the cancelled operation back yet (or its
      // final completion has not run): submitting it again now would let
      // that late completion end the new watch. Submit once it is back.
      r->restart = true;
    } else {
      r->op.events = events;
      if (std::error_code ec = loop.submit(r->op)) return ec;
    }
    r->want = events;
    r->fn = std::move(cb);
    loop.activate(*r);
    return {};
  }

  void stop() {
    if (auto* r = record<detail::poll_record>()) stop_record(*r);
  }

  [[nodiscard]] native_handle fd() const noexcept {
    const auto* r = record<detail::poll_record>();
    return r != nullptr ? r->op.fd : invalid_handle;
  }

 private:
  static handle_record& make(loop_core& loop, native_handle fd) {
    auto& r = loop.make_record<detail::poll_record>();
    r.stop = &stop_record;
    r.op.kind = op_kind::poll;
    r.op.fd = fd;
    r.op.user = &r;
    r.op.owner = &r;
    r.op.complete = &complete;
    return r;
  }

  static void stop_record(handle_record& base) {
    auto& r = static_cast<detail::poll_record&>(base);
    if (!r.active) return;
    r.loop->deactivate(r);
    r.restart = false;
    r.loop->cancel(r.op);
  }

  static void complete(operation& op) {
    auto& r = *static_cast<detail::poll_record*>(op.user);
    loop_core& loop = *r.loop;
    if (!op.more()) {  // the watch ended: stopped, restarted or failed
      if (r.restart && !r.closing) {
        r.restart = false;
        r.op.events = r.want;
        if (std::error_code ec = loop.submit(r.op)) {
          loop.deactivate(r);
          detail::invoke_handle_callback(loop, r.fn, ec, io_events::none);
        }
        return;
      }
      if (op.error == std::errc::operation_canceled || !r.active || r.closing) return;
      loop.deactivate(r);  // the backend dropped the watch (the descriptor was closed under it)
      detail::invoke_handle_callback(loop, r.fn, op.error, io_events::none);
      return;
    }
    if (!r.active || r.closing || r.restart) return;
    const io_events got = op.revents & (r.want | io_events::hangup | io_events::error);
    if (!any(got) && !op.error) return;
    detail::invoke_handle_callback(loop, r.fn, op.error, got);
  }
};

}  // namespace phaseloop
