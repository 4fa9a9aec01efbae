#pragma once
// JavaScript's promise combinators: all, all_settled, any and race, over a
// braced list, a vector or promises given one by one (docs/promises.md).

#include <phaseloop/version.hpp>
#include <phaseloop/promise/core.hpp>

#include <cstddef>
#include <exception>
#include <initializer_list>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace phaseloop {

// ------------------------------------------------------------ combinators

namespace detail {

template <class T>
using slot_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
using all_value_t = std::conditional_t<std::is_void_v<T>, void, std::vector<T>>;

template <class T>
loop_core& loop_of(const promise<T>& p) {
  return p.loop();
}

template <class T>
settled_result<T> settled_from(promise_node& src) {
  settled_result<T> out;
  out.status = src.status;
  if (src.status == promise_status::rejected) {
    out.reason = src.error;
  } else if constexpr (!std::is_void_v<T>) {
    out.value.emplace(static_cast<state<T>&>(src).take());
  }
  return out;
}

}  // namespace detail

/// Promise.all: fulfils with every value, in order, once all fulfilled
/// (promise<void> when T is void); rejects with the first rejection.
template <class T>
promise<detail::all_value_t<T>> all(loop_core& loop, std::vector<promise<T>> promises) {
  using R = detail::all_value_t<T>;
  auto* out = new detail::state<R>(&loop);
  promise<R> result = detail::promise_access::wrap<R>(out);
  if (promises.empty()) {
    if constexpr (std::is_void_v<R>)
      out->resolve_value();
    else
      out->resolve_value(R{});
    return result;
  }
  struct context {
    detail::node_ptr<detail::state<R>> out;
    std::vector<std::optional<detail::slot_t<T>>> values;
    std::size_t remaining;
  };
  auto ctx = std::make_shared<context>(
      context{detail::node_ptr<detail::state<R>>::share(out), {}, promises.size()});
  if constexpr (!std::is_void_v<T>) ctx->values.resize(promises.size());
  for (std::size_t i = 0; i < promises.size(); ++i) {
    detail::when_settled(*detail::promise_access::node(promises[i]), [ctx, i](detail::promise_node& src) {
      static_cast<void>(i);  // unused for promise<void>
      if (src.status == promise_status::rejected) {
        ctx->out->reject(src.error);
        return;
      }
      if constexpr (!std::is_void_v<T>) ctx->values[i].emplace(static_cast<detail::state<T>&>(src).take());
      if (--ctx->remaining != 0) return;
      if constexpr (std::is_void_v<T>) {
        ctx->out->resolve_value();
      } else {
        R values;
        values.reserve(ctx->values.size());
        for (auto& v : ctx->values) values.push_back(std::move(*v));
        ctx->out->resolve_value(std::move(values));
      }
    });
  }
  return result;
}

/// Promise.allSettled: fulfils, once every promise settled, with each outcome in order.
template <class T>
promise<std::vector<settled_result<T>>> all_settled(loop_core& loop, std::vector<promise<T>> promises) {
  using R = std::vector<settled_result<T>>;
  auto* out = new detail::state<R>(&loop);
  promise<R> result = detail::promise_access::wrap<R>(out);
  if (promises.empty()) {
    out->resolve_value(R{});
    return result;
  }
  struct context {
    detail::node_ptr<detail::state<R>> out;
    R values;
    std::size_t remaining;
  };
  auto ctx = std::make_shared<context>(
      context{detail::node_ptr<detail::state<R>>::share(out), R(promises.size()), promises.size()});
  for (std::size_t i = 0; i < promises.size(); ++i) {
    detail::when_settled(*detail::promise_access::node(promises[i]), [ctx, i](detail::promise_node& src) {
      ctx->values[i] = detail::settled_from<T>(src);
      if (--ctx->remaining == 0) ctx->out->resolve_value(std::move(ctx->values));
    });
  }
  return result;
}

/// Promise.any: fulfils with the first fulfilment; rejects with an
/// aggregate_error of every reason when all rejected (at once when empty).
template <class T>
promise<T> any(loop_core& loop, std::vector<promise<T>> promises) {
  auto* out = new detail::state<T>(&loop);
  promise<T> result = detail::promise_access::wrap<T>(out);
  if (promises.empty()) {
    out->reject_now(std::make_exception_ptr(aggregate_error({})));
    return result;
  }
  struct context {
    detail::node_ptr<detail::state<T>> out;
    std::vector<std::exception_ptr> errors;
    std::size_t remaining;
  };
  auto ctx = std::make_shared<context>(context{detail::node_ptr<detail::state<T>>::share(out),
                                               std::vector<std::exception_ptr>(promises.size()), promises.size()});
  for (std::size_t i = 0; i < promises.size(); ++i) {
    detail::when_settled(*detail::promise_access::node(promises[i]), [ctx, i](detail::promise_node& src) {
      if (src.status == promise_status::fulfilled) {
        if constexpr (std::is_void_v<T>)
          ctx->out->resolve_value();
        else
          ctx->out->resolve_value(static_cast<detail::state<T>&>(src).take());
        return;
      }
      ctx->errors[i] = src.error;
      if (--ctx->remaining == 0) ctx->out->reject(std::make_exception_ptr(aggregate_error(std::move(ctx->errors))));
    });
  }
  return result;
}

/// Promise.race: settles as the first promise to settle (stays pending when empty).
template <class T>
promise<T> race(loop_core& loop, std::vector<promise<T>> promises) {
  auto* out = new detail::state<T>(&loop);
  promise<T> result = detail::promise_access::wrap<T>(out);
  for (auto& p : promises) {
    detail::when_settled(*detail::promise_access::node(p),
                         [o = detail::node_ptr<detail::state<T>>::share(out)](detail::promise_node& src) {
                           if (src.status == promise_status::rejected) {
                             o->reject(src.error);
                           } else if constexpr (std::is_void_v<T>) {
                             o->resolve_value();
                           } else {
                             o->resolve_value(static_cast<detail::state<T>&>(src).take());
                           }
                         });
  }
  return result;
}

/// The combinators over a braced list, the element type deduced:
/// race(loop, {a, b}) for promises a and b of one type.
template <class T>
promise<detail::all_value_t<T>> all(loop_core& loop, std::initializer_list<promise<T>> promises) {
  return all(loop, std::vector<promise<T>>(promises));
}
template <class T>
promise<std::vector<settled_result<T>>> all_settled(loop_core& loop, std::initializer_list<promise<T>> promises) {
  return all_settled(loop, std::vector<promise<T>>(promises));
}
template <class T>
promise<T> any(loop_core& loop, std::initializer_list<promise<T>> promises) {
  return any(loop, std::vector<promise<T>>(promises));
}
template <class T>
promise<T> race(loop_core& loop, std::initializer_list<promise<T>> promises) {
  return race(loop, std::vector<promise<T>>(promises));
}

/// Promise.all over promises of different types: a tuple of the values
/// (std::monostate for a promise<void>).
template <class T0, class... Ts>
promise<std::tuple<detail::slot_t<T0>, detail::slot_t<Ts>...>> all(promise<T0> first, promise<Ts>... rest) {
  using R = std::tuple<detail::slot_t<T0>, detail::slot_t<Ts>...>;
  constexpr std::size_t count = 1 + sizeof...(Ts);
  auto* out = new detail::state<R>(&first.loop());
  promise<R> result = detail::promise_access::wrap<R>(out);
  struct context {
    detail::node_ptr<detail::state<R>> out;
    std::tuple<std::optional<detail::slot_t<T0>>, std::optional<detail::slot_t<Ts>>...> values;
    std::size_t remaining;
  };
  auto ctx = std::make_shared<context>(context{detail::node_ptr<detail::state<R>>::share(out), {}, count});
  auto watch = [&]<std::size_t I, class U>(std::integral_constant<std::size_t, I>, const promise<U>& p) {
    detail::when_settled(*detail::promise_access::node(p), [ctx](detail::promise_node& src) {
      if (src.status == promise_status::rejected) {
        ctx->out->reject(src.error);
        return;
      }
      if constexpr (std::is_void_v<U>)
        std::get<I>(ctx->values).emplace();
      else
        std::get<I>(ctx->values).emplace(static_cast<detail::state<U>&>(src).take());
      if (--ctx->remaining != 0) return;
      ctx->out->resolve_value(std::apply([](auto&... v) { return R(std::move(*v)...); }, ctx->values));
    });
  };
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    auto promises = std::forward_as_tuple(first, rest...);
    (watch(std::integral_constant<std::size_t, I>{}, std::get<I>(promises)), ...);
  }(std::make_index_sequence<count>{});
  return result;
}

/// Promise.allSettled over promises of different types: a tuple of outcomes.
template <class T0, class... Ts>
promise<std::tuple<settled_result<T0>, settled_result<Ts>...>> all_settled(promise<T0> first,
                                                                           promise<Ts>... rest) {
  using R = std::tuple<settled_result<T0>, settled_result<Ts>...>;
  constexpr std::size_t count = 1 + sizeof...(Ts);
  auto* out = new detail::state<R>(&first.loop());
  promise<R> result = detail::promise_access::wrap<R>(out);
  struct context {
    detail::node_ptr<detail::state<R>> out;
    R values;
    std::size_t remaining;
  };
  auto ctx = std::make_shared<context>(context{detail::node_ptr<detail::state<R>>::share(out), {}, count});
  auto watch = [&]<std::size_t I, class U>(std::integral_constant<std::size_t, I>, const promise<U>& p) {
    detail::when_settled(*detail::promise_access::node(p), [ctx](detail::promise_node& src) {
      std::get<I>(ctx->values) = detail::settled_from<U>(src);
      if (--ctx->remaining == 0) ctx->out->resolve_value(std::move(ctx->values));
    });
  };
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    auto promises = std::forward_as_tuple(first, rest...);
    (watch(std::integral_constant<std::size_t, I>{}, std::get<I>(promises)), ...);
  }(std::make_index_sequence<count>{});
  return result;
}

/// Promise.any over promises of one type.
template <class T, class... Ts>
  requires(std::is_same_v<promise<T>, Ts> && ...)
promise<T> any(promise<T> first, Ts... rest) {
  loop_core& loop = first.loop();
  return any(loop, std::vector<promise<T>>{std::move(first), std::move(rest)...});
}

/// Promise.race over promises of one type.
template <class T, class... Ts>
  requires(std::is_same_v<promise<T>, Ts> && ...)
promise<T> race(promise<T> first, Ts... rest) {
  loop_core& loop = first.loop();
  return race(loop, std::vector<promise<T>>{std::move(first), std::move(rest)...});
}

}  // namespace phaseloop
