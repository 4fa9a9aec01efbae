#pragma once
// Declarations of phaseloop's main types, for headers that name them without
// needing their definitions, and the callback type every module stores.

#include <phaseloop/detail/function.hpp>

namespace phaseloop {

/// A callback with no arguments, as the loop stores it.
using callback = detail::unique_function<void()>;

class loop_core;
class handle;
struct handle_record;
struct operation;

class abort_signal;

template <class T>
class promise;
template <class T>
class resolver;

class mock_backend;
class heap_timers;
class wheel_timers;
class inline_executor;
class thread_pool_executor;

enum class run_mode;

}  // namespace phaseloop
