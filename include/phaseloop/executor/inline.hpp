#pragma once
// inline_executor: runs work at once on the loop thread, but still hands the
// completion to the loop's inbox, so the `after` callback runs in a poll
// phase, never before the call that queued the work has returned.

#include <phaseloop/version.hpp>
#include <phaseloop/concepts.hpp>

#include <exception>
#include <system_error>

namespace phaseloop {

class inline_executor {
 public:
  inline_executor(inbox& completions, const executor_options& /*options*/) noexcept
      : inbox_(&completions) {}

  void submit(work_request& request) {
    try {
      request.work();
    } catch (...) {
      request.exception = std::current_exception();
    }
    inbox_->deliver(request);
  }

  /// Work has always run by the time it could be cancelled.
  std::error_code cancel(work_request& /*request*/) noexcept {
    return std::make_error_code(std::errc::device_or_resource_busy);
  }

 private:
  inbox* inbox_;
};

static_assert(executor<inline_executor>);

}  // namespace phaseloop
