#pragma once
// detail::invoke: std::invoke without <functional>.
//
// <functional> costs every file that includes phaseloop ~40,000 preprocessed
// lines (searchers, hash tables, std::function) for the one function the
// library needs from it. This is std::invoke for what callbacks are: function
// objects, functions, and pointers to members called on an object, a
// reference or a pointer (std::reference_wrapper objects aside).

#include <phaseloop/version.hpp>

#include <type_traits>
#include <utility>

namespace phaseloop::detail {

template <class M, class C, class Obj, class... A>
constexpr decltype(auto) invoke_member(M C::*member, Obj&& obj, A&&... args) {
  if constexpr (std::is_base_of_v<C, std::remove_cvref_t<Obj>>) {
    if constexpr (std::is_function_v<M>)
      return (std::forward<Obj>(obj).*member)(std::forward<A>(args)...);
    else
      return std::forward<Obj>(obj).*member;
  } else {
    if constexpr (std::is_function_v<M>)
      return ((*std::forward<Obj>(obj)).*member)(std::forward<A>(args)...);
    else
      return (*std::forward<Obj>(obj)).*member;
  }
}

/// std::invoke(f, args...).
template <class F, class... A>
constexpr decltype(auto) invoke(F&& f, A&&... args) noexcept(std::is_nothrow_invocable_v<F, A...>) {
  if constexpr (std::is_member_pointer_v<std::remove_cvref_t<F>>)
    return detail::invoke_member(f, std::forward<A>(args)...);
  else
    return std::forward<F>(f)(std::forward<A>(args)...);
}

}  // namespace phaseloop::detail
