#pragma once
// promise<T>: JavaScript promises on a phaseloop loop with ECMAScript's exact
// job ordering. This header is the promise, its resolver and the loop's promise
// forms (resolved, rejected, make_promise, delay, immediate); promise.hpp adds
// coroutines and the combinators. How it behaves: docs/promises.md.
#include <phaseloop/version.hpp>
#include <phaseloop/detail/invoke.hpp>
#include <phaseloop/loop.hpp>
#include <phaseloop/loop_core.hpp>

#include <chrono>
#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>
namespace phaseloop {

template <class T>
class promise;
template <class T>
class resolver;

/// Where a promise stands.
enum class promise_status : std::uint8_t { pending, fulfilled, rejected };

/// The reason any() rejects with when every promise rejected (JavaScript's AggregateError).
// clang's -Wweak-vtables cannot be met by a header-only library: no source
// file can hold an out-of-line virtual function, so every translation unit
// emits the vtable (the linker keeps one). Silenced for this class alone.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wweak-vtables"
#endif
class aggregate_error : public std::exception {
#if defined(__clang__)
#pragma clang diagnostic pop
#endif
 public:
  explicit aggregate_error(std::vector<std::exception_ptr> errors) noexcept : errors_(std::move(errors)) {}
  [[nodiscard]] const char* what() const noexcept override { return "All promises were rejected"; }
  /// Each promise's rejection, in the order the promises were given.
  [[nodiscard]] const std::vector<std::exception_ptr>& errors() const noexcept { return errors_; }

 private:
  std::vector<std::exception_ptr> errors_;
};

/// One entry of all_settled()'s result (JavaScript's PromiseSettledResult).
template <class T>
struct settled_result {
  promise_status status = promise_status::pending;
  std::optional<T> value;      ///< when fulfilled
  std::exception_ptr reason;   ///< when rejected
};

/// One entry of all_settled()'s result for a promise<void>.
template <>
struct settled_result<void> {
  promise_status status = promise_status::pending;
  std::exception_ptr reason;  ///< when rejected
};

namespace detail {

// ------------------------------------------------------------ reactions

struct reaction;

/// What a reaction does: run as a job once its promise settled (consuming the
/// reaction), or be dropped without running (the loop or the promise is gone).
struct reaction_ops {
  void (*run)(reaction& self, promise_node& source);
  void (*drop)(reaction& self) noexcept;
};

/// An entry of a promise's reaction list (ECMAScript's PromiseReaction record).
struct reaction {
  reaction* next = nullptr;
  const reaction_ops* ops = nullptr;
};

// ---------------------------------------------------------- shared state

/// The untyped part of a promise's shared state.
// clang's -Wweak-vtables cannot be met by a header-only library: no source
// file can hold an out-of-line virtual function, so every translation unit
// emits the vtable (the linker keeps one). Silenced for this class alone.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wweak-vtables"
#endif
struct promise_node {
#if defined(__clang__)
#pragma clang diagnostic pop
#endif
  explicit promise_node(loop_core* l) noexcept : loop(l) {}
  promise_node(const promise_node&) = delete;
  promise_node& operator=(const promise_node&) = delete;
  virtual ~promise_node() = default;

  loop_core* loop;
  promise_node* prev = nullptr;  // the loop's waiting list
  promise_node* next = nullptr;  // the loop's waiting or unhandled list; the free queue
  reaction* head = nullptr;      // reactions, in the order then() was called
  reaction* tail = nullptr;
  std::exception_ptr error;
  std::uint32_t refs = 1;
  promise_status status = promise_status::pending;
  bool resolved = false;  // settled, or locked in to follow another promise
  bool handled = false;   // a reaction was ever added (V8's has_handler)
  bool waiting = false;   // in the loop's waiting list
  bool tracked = false;   // in the loop's unhandled list

  void add_ref() noexcept { ++refs; }
  void release() noexcept {
    if (--refs == 0) destroy(this);
  }

  inline void add_reaction(reaction& r);
  inline void reject_now(std::exception_ptr e);
  /// The reject function: a no-op once resolved.
  void reject(std::exception_ptr e) {
    if (!resolved) reject_now(std::move(e));
  }

 protected:
  inline void trigger();

 private:
  static inline void destroy(promise_node* n) noexcept;
};

template <class T>
struct state;

/// Reaches loop_core's private promise bookkeeping, and promise internals.
struct promise_access {
  static promise_book& book(loop_core& loop) noexcept { return loop.promises_; }
  static unique_function<void(std::exception_ptr)>& unhandled_handler(loop_core& loop) noexcept {
    return loop.unhandled_rejection_;
  }
  static bool queues_empty(const loop_core& loop) noexcept {
    return loop.ticks_.empty() && loop.microtasks_.empty();
  }
  // Destroys queued jobs one at a time, outside the ring (a job's destructor may queue).
  static void clear_queues(loop_core& loop) noexcept {
    while (!loop.ticks_.empty()) {
      callback dropped = loop.ticks_.pop_front();
    }
    while (!loop.microtasks_.empty()) {
      callback dropped = loop.microtasks_.pop_front();
    }
  }

  template <class T>
  static promise<T> wrap(state<T>* adopted) noexcept;  // takes over one reference
  template <class T>
  static state<T>* node(const promise<T>& p) noexcept {
    return p.node_;
  }
};

// An owning pointer to a shared state (intrusive, single-threaded count).
template <class N>
class node_ptr {
 public:
  node_ptr() noexcept = default;
  static node_ptr adopt(N* n) noexcept { return node_ptr(n); }
  static node_ptr share(N* n) noexcept {
    if (n != nullptr) n->add_ref();
    return node_ptr(n);
  }
  node_ptr(const node_ptr& o) noexcept : n_(o.n_) {
    if (n_ != nullptr) n_->add_ref();
  }
  node_ptr(node_ptr&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
  node_ptr& operator=(node_ptr o) noexcept {
    std::swap(n_, o.n_);
    return *this;
  }
  ~node_ptr() {
    if (n_ != nullptr) n_->release();
  }
  N* get() const noexcept { return n_; }
  N* operator->() const noexcept { return n_; }
  N& operator*() const noexcept { return *n_; }
  explicit operator bool() const noexcept { return n_ != nullptr; }
  N* detach() noexcept { return std::exchange(n_, nullptr); }

 private:
  explicit node_ptr(N* n) noexcept : n_(n) {}
  N* n_ = nullptr;
};

// -------------------------------------------------- the loop's bookkeeping

inline void release_all(loop_core& loop) noexcept;
inline bool report_unhandled(loop_core& loop);

inline void unlink_waiting(promise_node& n) noexcept {
  if (!n.waiting) return;
  promise_book& b = promise_access::book(*n.loop);
  if (n.prev != nullptr)
    n.prev->next = n.next;
  else
    b.waiting = n.next;
  if (n.next != nullptr) n.next->prev = n.prev;
  n.prev = n.next = nullptr;
  n.waiting = false;
}

inline void link_waiting(promise_node& n) noexcept {
  promise_book& b = promise_access::book(*n.loop);
  b.release = &release_all;
  n.prev = nullptr;
  n.next = b.waiting;
  if (b.waiting != nullptr) b.waiting->prev = &n;
  b.waiting = &n;
  n.waiting = true;
}

// HostPromiseRejectionTracker(promise, "reject"): remember it until the
// checkpoint's queues are empty; report it then unless a handler came.
inline void track_unhandled(promise_node& n) {
  loop_core& loop = *n.loop;
  promise_book& b = promise_access::book(loop);
  b.release = &release_all;
  if (!b.hooked) {
    loop.set_drain_hook([l = &loop] { return report_unhandled(*l); });
    b.hooked = true;
  }
  n.add_ref();
  n.tracked = true;
  n.next = nullptr;
  if (b.unhandled_tail != nullptr)
    b.unhandled_tail->next = &n;
  else
    b.unhandled_head = &n;
  b.unhandled_tail = &n;
}

// Node's processPromiseRejections: runs when the tick and microtask queues
// are empty; returns whether it did anything (the checkpoint then goes on).
inline bool report_unhandled(loop_core& loop) {
  promise_book& b = promise_access::book(loop);
  promise_node* const last = b.unhandled_tail;
  if (last == nullptr) return false;
  bool reported = false;
  for (;;) {
    promise_node* n = b.unhandled_head;
    b.unhandled_head = n->next;
    if (b.unhandled_head == nullptr) b.unhandled_tail = nullptr;
    n->next = nullptr;
    n->tracked = false;
    node_ptr<promise_node> keep = node_ptr<promise_node>::adopt(n);
    if (!n->handled) {
      n->handled = true;  // reported once
      reported = true;
      std::exception_ptr reason = n->error;
      auto& slot = promise_access::unhandled_handler(loop);
      if (slot) {
        // Called from a local, so the handler may replace itself.
        unique_function<void(std::exception_ptr)> handler = std::move(slot);
        struct restore {
          unique_function<void(std::exception_ptr)>& slot;
          unique_function<void(std::exception_ptr)>& handler;
          ~restore() {
            if (!slot) slot = std::move(handler);
          }
        } guard{slot, handler};
        loop.invoke(handler, std::move(reason));
      } else {
        loop.report_exception(std::move(reason));
      }
    }
    if (n == last) break;
  }
  return reported || b.unhandled_head != nullptr;
}

// When the loop is destroyed: drop queued jobs, every pending promise's
// reactions (destroying suspended coroutines and handlers, which breaks
// reference cycles) and the unhandled list.
inline void release_all(loop_core& loop) noexcept {
  promise_book& b = promise_access::book(loop);
  for (;;) {
    promise_access::clear_queues(loop);
    if (promise_node* n = b.waiting) {
      node_ptr<promise_node> keep = node_ptr<promise_node>::share(n);
      unlink_waiting(*n);
      reaction* r = std::exchange(n->head, nullptr);
      n->tail = nullptr;
      while (r != nullptr) {
        reaction* next = std::exchange(r->next, nullptr);
        r->ops->drop(*r);
        r = next;
      }
      continue;
    }
    if (promise_node* n = b.unhandled_head) {
      b.unhandled_head = n->next;
      if (b.unhandled_head == nullptr) b.unhandled_tail = nullptr;
      n->next = nullptr;
      n->tracked = false;
      n->release();
      continue;
    }
    if (promise_access::queues_empty(loop)) break;
  }
}

// ---------------------------------------------------------------- jobs

// A PromiseReactionJob: owns a reference to the settled promise and the reaction.
struct reaction_job {
  promise_node* source;
  reaction* r;
  reaction_job(promise_node* s, reaction* x) noexcept : source(s), r(x) {}
  reaction_job(reaction_job&& o) noexcept
      : source(std::exchange(o.source, nullptr)), r(std::exchange(o.r, nullptr)) {}
  reaction_job(const reaction_job&) = delete;
  reaction_job& operator=(const reaction_job&) = delete;
  reaction_job& operator=(reaction_job&&) = delete;
  ~reaction_job() {
    if (r != nullptr) r->ops->drop(*r);
    if (source != nullptr) source->release();
  }
  void operator()() {
    reaction* x = std::exchange(r, nullptr);
    x->ops->run(*x, *source);
  }
};

// A PromiseResolveThenableJob: `thenable.then(resolve, reject)`, where the
// adopting promise's embedded reaction plays resolve and reject.
struct thenable_job {
  reaction* adopt;       // owns a reference to the adopting promise
  promise_node* source;  // owns a reference
  thenable_job(reaction* a, promise_node* s) noexcept : adopt(a), source(s) {}
  thenable_job(thenable_job&& o) noexcept
      : adopt(std::exchange(o.adopt, nullptr)), source(std::exchange(o.source, nullptr)) {}
  thenable_job(const thenable_job&) = delete;
  thenable_job& operator=(const thenable_job&) = delete;
  thenable_job& operator=(thenable_job&&) = delete;
  ~thenable_job() {
    if (adopt != nullptr) adopt->ops->drop(*adopt);
    if (source != nullptr) source->release();
  }
  void operator()() { source->add_reaction(*std::exchange(adopt, nullptr)); }
};

// ------------------------------------------------ promise_node's members

// PerformPromiseThen: a pending promise keeps the reaction; a settled one
// queues its job at once. Either way the promise counts as handled.
inline void promise_node::add_reaction(reaction& r) {
  handled = true;
  if (status == promise_status::pending) {
    r.next = nullptr;
    if (tail != nullptr) {
      tail->next = &r;
    } else {
      head = &r;
      link_waiting(*this);
    }
    tail = &r;
  } else {
    add_ref();
    loop->queue_microtask(reaction_job(this, &r));
  }
}

// TriggerPromiseReactions: one job per reaction, in order.
inline void promise_node::trigger() {
  unlink_waiting(*this);
  reaction* r = std::exchange(head, nullptr);
  tail = nullptr;
  while (r != nullptr) {
    reaction* following = std::exchange(r->next, nullptr);
    add_ref();
    loop->queue_microtask(reaction_job(this, r));
    r = following;
  }
}

inline void promise_node::reject_now(std::exception_ptr e) {
  resolved = true;
  error = std::move(e);
  status = promise_status::rejected;
  if (!handled) track_unhandled(*this);
  trigger();
}

// Frees a state whose last reference went. Iterative: dropping reactions can
// free more states (a long chain, a coroutine's promise), which queue here.
inline void promise_node::destroy(promise_node* n) noexcept {
  static thread_local promise_node* queue = nullptr;
  static thread_local bool active = false;
  unlink_waiting(*n);
  n->next = queue;
  queue = n;
  if (active) return;
  active = true;
  while (queue != nullptr) {
    promise_node* x = queue;
    queue = x->next;
    reaction* r = std::exchange(x->head, nullptr);
    x->tail = nullptr;
    while (r != nullptr) {
      reaction* following = std::exchange(r->next, nullptr);
      r->ops->drop(*r);
      r = following;
    }
    delete x;
  }
  active = false;
}

// ------------------------------------------------------------ typed state

template <class T>
struct value_box {
  value_box() noexcept {}
  ~value_box() {}
  value_box(const value_box&) = delete;
  value_box& operator=(const value_box&) = delete;
  union {
    T value;
  };
};
template <>
struct value_box<void> {};

struct adopt_link : reaction {};
struct then_link : reaction {};

template <class T>
struct state : promise_node, adopt_link, value_box<T> {
  explicit state(loop_core* l) noexcept : promise_node(l) {}
  ~state() override {
    if constexpr (!std::is_void_v<T>) {
      if (status == promise_status::fulfilled) this->value.~T();
    }
  }

  /// Fulfil now (FulfillPromise); the caller checked `resolved`.
  template <class... A>
  void fulfill_now(A&&... args) {
    if constexpr (!std::is_void_v<T>)
      ::new (static_cast<void*>(std::addressof(this->value))) T(std::forward<A>(args)...);
    resolved = true;
    status = promise_status::fulfilled;
    trigger();
  }

  /// The resolve function with a value that is not a promise.
  template <class... A>
  void resolve_value(A&&... args) {
    if (!resolved) fulfill_now(std::forward<A>(args)...);
  }

  /// The resolve function with a promise: lock in, then a resolve-thenable
  /// job, then a reaction on `x` (the two extra jobs).
  void follow(state* x) {
    if (resolved) return;
    if (x == nullptr) {
      reject_now(std::make_exception_ptr(std::invalid_argument("phaseloop: resolved with an empty promise")));
      return;
    }
    if (x == this) {
      reject_now(std::make_exception_ptr(std::invalid_argument("phaseloop: chaining cycle detected for promise")));
      return;
    }
    resolved = true;
    add_ref();  // owned by the adopt reaction
    x->add_ref();
    adopt_link& r = *this;
    r.ops = &adopt_ops;
    loop->queue_microtask(thenable_job(&r, x));
  }

  /// The value, to a consumer: a copy, or for a move-only T, the value itself.
  decltype(auto) take() {
    if constexpr (std::is_copy_constructible_v<T>)
      return static_cast<const T&>(this->value);
    else
      return std::move(this->value);
  }

 private:
  static state& from_adopt(reaction& r) noexcept { return static_cast<state&>(static_cast<adopt_link&>(r)); }
  static void adopt_run(reaction& r, promise_node& src) {
    node_ptr<state> self = node_ptr<state>::adopt(&from_adopt(r));
    if (src.status == promise_status::rejected) {
      self->reject_now(src.error);
      return;
    }
    try {
      if constexpr (std::is_void_v<T>)
        self->fulfill_now();
      else
        self->fulfill_now(static_cast<state&>(src).take());
    } catch (...) {
      self->reject_now(std::current_exception());
    }
  }
  static void adopt_drop(reaction& r) noexcept { from_adopt(r).release(); }
  static constexpr reaction_ops adopt_ops{&adopt_run, &adopt_drop};
};

// The derived promise of then/catch/finally; it is also the reaction. G is
// called once with (source, *this) and settles *this.
template <class U, class G>
struct then_state final : state<U>, then_link {
  then_state(loop_core* l, G&& g) : state<U>(l), fn(std::move(g)) { then_link::ops = &then_ops; }

  std::optional<G> fn;

 private:
  static then_state& from(reaction& r) noexcept { return static_cast<then_state&>(static_cast<then_link&>(r)); }
  static void run(reaction& r, promise_node& src) {
    node_ptr<then_state> self = node_ptr<then_state>::adopt(&from(r));
    (*self->fn)(src, static_cast<state<U>&>(*self));
    self->fn.reset();  // a handler's captures go once it ran
  }
  static void drop(reaction& r) noexcept {
    then_state& self = from(r);
    self.fn.reset();  // it will never run: free its captures even if the derived promise lives on
    self.release();
  }
  static constexpr reaction_ops then_ops{&run, &drop};
};

// A reaction that calls F(source) once; owned by the list or job it is in.
template <class F>
struct fn_reaction final : reaction {
  explicit fn_reaction(F&& f) : fn(std::move(f)) { ops = &table; }
  F fn;

 private:
  static void run(reaction& r, promise_node& src) {
    std::unique_ptr<fn_reaction> self(static_cast<fn_reaction*>(&r));
    self->fn(src);
  }
  static void drop(reaction& r) noexcept { delete static_cast<fn_reaction*>(&r); }
  static constexpr reaction_ops table{&run, &drop};
};

template <class F>
void when_settled(promise_node& n, F&& f) {
  auto owned = std::make_unique<fn_reaction<std::decay_t<F>>>(std::decay_t<F>(std::forward<F>(f)));
  n.add_reaction(*owned.release());
}

// ------------------------------------------------------- type machinery

template <class T>
struct promise_traits {
  static constexpr bool is_promise = false;
};
template <class T>
struct promise_traits<promise<T>> {
  static constexpr bool is_promise = true;
  using value_type = T;
};
template <class T>
inline constexpr bool is_promise_v = promise_traits<std::remove_cvref_t<T>>::is_promise;

// The value type of the promise a handler's result R settles: promise<X> -> X.
template <class R, bool = is_promise_v<R>>
struct settles_to {
  using type = std::conditional_t<std::is_void_v<R>, void, std::decay_t<R>>;
};
template <class R>
struct settles_to<R, true> {
  using type = typename promise_traits<std::remove_cvref_t<R>>::value_type;
};
template <class R>
using settles_to_t = typename settles_to<R>::type;

/// A missing handler: the value or the rejection passes through.
struct pass_through {};

// How a fulfilment handler F is called for a promise<T>: 2 = with T&, 1 = with nothing.
template <class T, class F>
constexpr int value_call_kind() {
  if constexpr (std::is_void_v<T>)
    return std::is_invocable_v<F&> ? 1 : 0;
  else if constexpr (std::is_invocable_v<F&, T&>)
    return 2;
  else
    return std::is_invocable_v<F&> ? 1 : 0;
}

template <class T, class F, int K = value_call_kind<T, F>()>
struct value_call {
  static_assert(K != 0, "phaseloop: a then() handler must take the promise's value (T&) or nothing");
  using result = void;
};
template <class T, class F>
struct value_call<T, F, 1> {
  using result = std::invoke_result_t<F&>;
};
template <class T, class F>
struct value_call<T, F, 2> {
  using result = std::invoke_result_t<F&, T&>;
};

// The single parameter of a non-generic callable (for typed catch handlers).
template <class M>
struct member_arg {};
#define PHASELOOP_MEMBER_ARG(QUALIFIERS)               \
  template <class C, class R, class A>                 \
  struct member_arg<R (C::*)(A) QUALIFIERS> {          \
    using type = A;                                    \
  };
PHASELOOP_MEMBER_ARG()
PHASELOOP_MEMBER_ARG(const)
PHASELOOP_MEMBER_ARG(noexcept)
PHASELOOP_MEMBER_ARG(const noexcept)
PHASELOOP_MEMBER_ARG(&)
PHASELOOP_MEMBER_ARG(const&)
#undef PHASELOOP_MEMBER_ARG

template <class F, class = void>
struct single_arg {};
template <class F>
struct single_arg<F, std::void_t<decltype(&F::operator())>> : member_arg<decltype(&F::operator())> {};
template <class R, class A>
struct single_arg<R (*)(A), void> {
  using type = A;
};
template <class R, class A>
struct single_arg<R (*)(A) noexcept, void> {
  using type = A;
};

template <class F, class = void>
struct has_single_arg : std::false_type {};
template <class F>
struct has_single_arg<F, std::void_t<typename single_arg<F>::type>> : std::true_type {};

// How a rejection handler R is called: 2 = with the exception_ptr, 1 = with
// nothing, 3 = with one exception type (other rejections pass through).
template <class R>
constexpr int error_call_kind() {
  if constexpr (std::is_invocable_v<R&, std::exception_ptr>)
    return 2;
  else if constexpr (std::is_invocable_v<R&>)
    return 1;
  else if constexpr (has_single_arg<R>::value)
    return 3;
  else
    return 0;
}

template <class R, int K = error_call_kind<R>()>
struct error_call {
  static_assert(K != 0,
                "phaseloop: a rejection handler must take a std::exception_ptr, nothing, or one exception type");
  using result = void;
};
template <class R>
struct error_call<R, 1> {
  using result = std::invoke_result_t<R&>;
};
template <class R>
struct error_call<R, 2> {
  using result = std::invoke_result_t<R&, std::exception_ptr>;
};
template <class R>
struct error_call<R, 3> {
  using result = std::invoke_result_t<R&, typename single_arg<R>::type>;
};

template <class T, class F>
struct then_value {
  using type = settles_to_t<typename value_call<T, F>::result>;
};
template <class T>
struct then_value<T, pass_through> {
  using type = T;
};

template <class U, class R>
struct rejection_fits {
  using S = typename error_call<R>::result;
  static constexpr bool value =
      std::is_void_v<U> ? std::is_void_v<S> || std::is_same_v<settles_to_t<S>, void>
                        : (is_promise_v<S> ? std::is_same_v<settles_to_t<S>, U> : std::is_convertible_v<S, U>);
};
template <class U>
struct rejection_fits<U, pass_through> {
  static constexpr bool value = true;
};

// Settles dst with what thunk() gives: nothing, a value, or a promise to
// adopt; a throw rejects dst.
template <class U, class Thunk>
void settle_with(state<U>& dst, Thunk&& thunk) noexcept {
  try {
    using R = decltype(thunk());
    if constexpr (std::is_void_v<R>) {
      static_assert(std::is_void_v<U>, "phaseloop: a handler returned nothing where a value is needed");
      thunk();
      dst.resolve_value();
    } else if constexpr (is_promise_v<R>) {
      auto p = thunk();
      dst.follow(promise_access::node(p));
    } else {
      static_assert(!std::is_void_v<U>, "phaseloop: a handler returned a value for a promise<void>");
      dst.resolve_value(thunk());
    }
  } catch (...) {
    if (!dst.resolved) dst.reject_now(std::current_exception());
  }
}

template <class T, class U, class F>
void on_value(F& f, promise_node& src, state<U>& dst) {
  if constexpr (std::is_same_v<F, pass_through>) {
    static_assert(std::is_same_v<T, U>);
    settle_with(dst, [&]() -> decltype(auto) {
      if constexpr (std::is_void_v<T>)
        return;
      else
        return static_cast<state<T>&>(src).take();
    });
  } else if constexpr (value_call_kind<T, F>() == 2) {
    settle_with(dst, [&]() -> decltype(auto) { return detail::invoke(f, static_cast<state<T>&>(src).value); });
  } else {
    settle_with(dst, [&]() -> decltype(auto) { return detail::invoke(f); });
  }
}

template <class U, class R>
void on_error(R& r, promise_node& src, state<U>& dst) {
  if constexpr (std::is_same_v<R, pass_through>) {
    dst.reject_now(src.error);
  } else if constexpr (error_call_kind<R>() == 2) {
    settle_with(dst, [&]() -> decltype(auto) { return detail::invoke(r, src.error); });
  } else if constexpr (error_call_kind<R>() == 1) {
    settle_with(dst, [&]() -> decltype(auto) { return detail::invoke(r); });
  } else {
    using E = typename single_arg<R>::type;
    try {
      std::rethrow_exception(src.error);
    } catch (E e) {
      settle_with(dst, [&]() -> decltype(auto) { return detail::invoke(r, static_cast<E>(e)); });
      return;
    } catch (...) {
    }
    dst.reject_now(src.error);
  }
}

// PerformPromiseThen with a fresh derived promise that is its own reaction.
template <class U, class G>
promise<U> chain(promise_node& src, G&& g) {
  auto* derived = new then_state<U, std::decay_t<G>>(src.loop, std::forward<G>(g));
  promise<U> result = promise_access::wrap<U>(derived);
  derived->add_ref();  // owned by the reaction
  src.add_reaction(static_cast<then_link&>(*derived));
  return result;
}

inline std::exception_ptr to_exception_ptr(std::exception_ptr e) noexcept { return e; }
inline std::exception_ptr to_exception_ptr(std::error_code ec) {
  return std::make_exception_ptr(std::system_error(ec));
}
template <class E>
  requires(!std::is_convertible_v<E &&, std::exception_ptr> && !std::is_convertible_v<E &&, std::error_code>)
std::exception_ptr to_exception_ptr(E&& e) {
  return std::make_exception_ptr(std::forward<E>(e));
}

template <class T, class... A>
promise<T> make_resolved(loop_core& loop, A&&... args) {
  auto* n = new state<T>(&loop);
  promise<T> p = promise_access::wrap<T>(n);
  n->resolve_value(std::forward<A>(args)...);
  return p;
}

template <class T>
promise<T> make_rejected(loop_core& loop, std::exception_ptr e) {
  auto* n = new state<T>(&loop);
  promise<T> p = promise_access::wrap<T>(n);
  n->reject_now(std::move(e));
  return p;
}

template <class T>
struct coroutine_promise;
template <class T>
class awaiter;

}  // namespace detail

// ---------------------------------------------------------------- resolving

/// The `resolve` function a promise executor receives (new Promise((resolve, reject) => ...)).
template <class T>
class resolve_function {
 public:
  /// Fulfil with `value` (a no-op once resolved).
  template <class U = T>
    requires(!std::is_void_v<T> && !detail::is_promise_v<U> && std::constructible_from<T, U &&>)
  void operator()(U&& value) const {
    node_->resolve_value(std::forward<U>(value));
  }
  /// Fulfil a promise<void>.
  void operator()() const
    requires std::is_void_v<T>
  {
    node_->resolve_value();
  }
  /// Follow `other` (two extra jobs, as in JavaScript).
  void operator()(const promise<T>& other) const { node_->follow(detail::promise_access::node(other)); }

 private:
  friend class promise<T>;
  explicit resolve_function(detail::state<T>* n) noexcept : node_(detail::node_ptr<detail::state<T>>::share(n)) {}
  detail::node_ptr<detail::state<T>> node_;
};

/// The `reject` function a promise executor receives.
class reject_function {
 public:
  /// Reject with an exception_ptr, a std::error_code (as std::system_error) or an exception object.
  template <class E>
  void operator()(E&& error) const {
    if (!node_->resolved) node_->reject_now(detail::to_exception_ptr(std::forward<E>(error)));
  }

 private:
  template <class T>
  friend class promise;
  explicit reject_function(detail::promise_node* n) noexcept
      : node_(detail::node_ptr<detail::promise_node>::share(n)) {}
  detail::node_ptr<detail::promise_node> node_;
};

/// Settles a promise made with make_promise(): a small copyable handle (one
/// pointer). Settling twice is a no-op. It is an err-first callback too:
/// r(ec, value) rejects with std::system_error(ec) when ec is set, otherwise
/// resolves with value (r(ec) for resolver<void>).
template <class T>
class resolver {
 public:
  resolver() noexcept = default;

  /// Fulfil with `value`.
  template <class U = T>
    requires(!std::is_void_v<T> && !detail::is_promise_v<U> && std::constructible_from<T, U &&>)
  void resolve(U&& value) const {
    PHASELOOP_ASSERT(static_cast<bool>(node_), "an empty resolver (default-constructed or moved from) was used");
    node_->resolve_value(std::forward<U>(value));
  }
  /// Fulfil a promise<void>.
  void resolve() const
    requires std::is_void_v<T>
  {
    PHASELOOP_ASSERT(static_cast<bool>(node_), "an empty resolver (default-constructed or moved from) was used");
    node_->resolve_value();
  }
  /// Follow `other`: settle as it settles (two extra jobs, as in JavaScript).
  void resolve(const promise<T>& other) const {
    PHASELOOP_ASSERT(static_cast<bool>(node_), "an empty resolver (default-constructed or moved from) was used");
    node_->follow(detail::promise_access::node(other));
  }

  /// Reject with an exception_ptr, a std::error_code (as std::system_error) or an exception object.
  template <class E>
  void reject(E&& error) const {
    PHASELOOP_ASSERT(static_cast<bool>(node_), "an empty resolver (default-constructed or moved from) was used");
    if (!node_->resolved) node_->reject_now(detail::to_exception_ptr(std::forward<E>(error)));
  }

  /// Err-first: reject with std::system_error(ec) if ec is set, else fulfil with `value`.
  template <class U = T>
    requires(!std::is_void_v<T> && std::constructible_from<T, U &&>)
  void settle(std::error_code ec, U&& value) const {
    PHASELOOP_ASSERT(static_cast<bool>(node_), "an empty resolver (default-constructed or moved from) was used");
    if (ec)
      reject(ec);
    else
      node_->resolve_value(std::forward<U>(value));
  }
  /// Err-first for promise<void>.
  void settle(std::error_code ec) const
    requires std::is_void_v<T>
  {
    PHASELOOP_ASSERT(static_cast<bool>(node_), "an empty resolver (default-constructed or moved from) was used");
    if (ec)
      reject(ec);
    else
      node_->resolve_value();
  }

  /// Same as settle(): lets the resolver be passed as an err-first callback.
  template <class U = T>
    requires(!std::is_void_v<T> && std::constructible_from<T, U &&>)
  void operator()(std::error_code ec, U&& value) const {
    settle(ec, std::forward<U>(value));
  }
  /// Same as settle(ec), for promise<void>.
  void operator()(std::error_code ec) const
    requires std::is_void_v<T>
  {
    settle(ec);
  }

  /// Settled, or locked in to follow another promise.
  [[nodiscard]] bool is_resolved() const noexcept {
    PHASELOOP_ASSERT(static_cast<bool>(node_), "an empty resolver (default-constructed or moved from) was used");
    return node_->resolved;
  }
  /// The promise this resolver settles.
  [[nodiscard]] promise<T> get_promise() const noexcept {
    PHASELOOP_ASSERT(static_cast<bool>(node_), "an empty resolver (default-constructed or moved from) was used");
    return detail::promise_access::wrap<T>(detail::node_ptr<detail::state<T>>::share(node_.get()).detach());
  }
  explicit operator bool() const noexcept { return static_cast<bool>(node_); }

 private:
  template <class U>
  friend std::pair<promise<U>, resolver<U>> make_promise(loop_core& loop);
  explicit resolver(detail::node_ptr<detail::state<T>> n) noexcept : node_(std::move(n)) {}
  detail::node_ptr<detail::state<T>> node_;
};

// ------------------------------------------------------------------ promise

/// A JavaScript promise of a T (T may be void), settled on its loop with
/// ECMAScript's job ordering; also the return type of async coroutines. A
/// cheap copyable handle to shared state.
template <class T>
class promise {
  static_assert(std::is_void_v<T> || (std::is_object_v<T> && !std::is_array_v<T>),
                "phaseloop: promise<T> needs an object type or void");
  static_assert(!detail::is_promise_v<T>, "phaseloop: a promise never holds a promise: use promise<T>");
  static_assert(!std::is_same_v<std::remove_cv_t<T>, std::exception_ptr>,
                "phaseloop: rejections already carry std::exception_ptr");

 public:
  using value_type = T;
  using promise_type = detail::coroutine_promise<T>;

  /// An empty handle; valid() is false.
  promise() noexcept = default;

  /// new Promise(executor): executor(resolve, reject) (or executor(resolve))
  /// runs now; if it throws, the promise is rejected (unless already resolved).
  template <class F>
    requires(std::is_invocable_v<F&, resolve_function<T>, reject_function> ||
             std::is_invocable_v<F&, resolve_function<T>>)
  promise(loop_core& loop, F&& executor) : node_(new detail::state<T>(&loop)) {
    resolve_function<T> resolve(node_);
    reject_function reject(node_);
    try {
      if constexpr (std::is_invocable_v<F&, resolve_function<T>, reject_function>)
        detail::invoke(executor, std::move(resolve), std::move(reject));
      else
        detail::invoke(executor, std::move(resolve));
    } catch (...) {
      node_->reject(std::current_exception());
    }
  }

  promise(const promise& other) noexcept : node_(other.node_) {
    if (node_ != nullptr) node_->add_ref();
  }
  promise(promise&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
  promise& operator=(promise other) noexcept {
    std::swap(node_, other.node_);
    return *this;
  }
  ~promise() {
    if (node_ != nullptr) node_->release();
  }

  /// False for a default-constructed or moved-from handle.
  [[nodiscard]] bool valid() const noexcept { return node_ != nullptr; }
  /// Precondition for every call below: valid() (PHASELOOP_ASSERT).
  [[nodiscard]] promise_status status() const noexcept {
    PHASELOOP_ASSERT(node_ != nullptr, "an empty promise (default-constructed or moved from) was used");
    return node_->status;
  }
  [[nodiscard]] bool pending() const noexcept { return status() == promise_status::pending; }
  [[nodiscard]] bool fulfilled() const noexcept { return status() == promise_status::fulfilled; }
  [[nodiscard]] bool rejected() const noexcept { return status() == promise_status::rejected; }
  /// The loop this promise queues its reactions on.
  [[nodiscard]] loop_core& loop() const noexcept {
    PHASELOOP_ASSERT(node_ != nullptr, "an empty promise (default-constructed or moved from) was used");
    return *node_->loop;
  }

  /// promise.then(on_fulfilled): a new promise resolved by the handler's
  /// result (a promise result is adopted); a rejection passes through.
  template <class F>
  auto then(F&& on_fulfilled) const {
    return then(std::forward<F>(on_fulfilled), detail::pass_through{});
  }

  /// promise.then(on_fulfilled, on_rejected).
  template <class F, class R>
  auto then(F&& on_fulfilled, R&& on_rejected) const {
    PHASELOOP_ASSERT(node_ != nullptr, "an empty promise (default-constructed or moved from) was used");
    using Fd = std::decay_t<F>;
    using Rd = std::decay_t<R>;
    using U = typename detail::then_value<T, Fd>::type;
    static_assert(detail::rejection_fits<U, Rd>::value,
                  "phaseloop: the rejection handler must give what the fulfilment handler gives");
    auto g = [f = Fd(std::forward<F>(on_fulfilled)), r = Rd(std::forward<R>(on_rejected))](
                 detail::promise_node& src, detail::state<U>& dst) mutable {
      if (src.status == promise_status::fulfilled)
        detail::on_value<T>(f, src, dst);
      else
        detail::on_error(r, src, dst);
    };
    return detail::chain<U>(*node_, std::move(g));
  }

  /// promise.catch(on_rejected): the handler's result (a T, or a promise<T>)
  /// replaces the rejection; a fulfilment passes through.
  template <class R>
  promise<T> catch_(R&& on_rejected) const {
    return then(detail::pass_through{}, std::forward<R>(on_rejected));
  }
  /// Same as catch_().
  template <class R>
  promise<T> fail(R&& on_rejected) const {
    return catch_(std::forward<R>(on_rejected));
  }

  /// promise.finally(on_finally): runs the handler either way, waits for the
  /// promise it returns (if any), then passes the value or the rejection
  /// through; a throw or a rejected promise from the handler wins. Same jobs
  /// as JavaScript (the value comes back through a then() and an adoption).
  template <class F>
  promise<T> finally(F&& on_finally) const {
    static_assert(std::is_void_v<T> || std::is_copy_constructible_v<T>, "phaseloop: finally() copies the value");
    PHASELOOP_ASSERT(node_ != nullptr, "an empty promise (default-constructed or moved from) was used");
    auto g = [f = std::decay_t<F>(std::forward<F>(on_finally))](detail::promise_node& src,
                                                              detail::state<T>& dst) mutable {
      detail::settle_with(dst, [&]() -> promise<T> {
        using R = std::invoke_result_t<std::decay_t<F>&>;
        auto after = [&] {
          if constexpr (std::is_void_v<R>) {
            detail::invoke(f);
            return detail::make_resolved<void>(*src.loop);
          } else if constexpr (detail::is_promise_v<R>) {
            return detail::invoke(f);
          } else {
            return detail::make_resolved<std::decay_t<R>>(*src.loop, detail::invoke(f));
          }
        }();
        if (src.status == promise_status::rejected)
          return after.then([e = src.error]() -> T { std::rethrow_exception(e); });
        if constexpr (std::is_void_v<T>)
          return after.then([] {});
        else
          return after.then([v = T(static_cast<detail::state<T>&>(src).value)]() mutable -> T { return std::move(v); });
      });
    };
    return detail::chain<T>(*node_, std::move(g));
  }

  /// co_await: resumes one microtask after this promise settles; gives the
  /// value or throws the rejection.
  detail::awaiter<T> operator co_await() const noexcept {
    PHASELOOP_ASSERT(node_ != nullptr, "an empty promise (default-constructed or moved from) was used");
    return detail::awaiter<T>(node_);
  }

  friend bool operator==(const promise& a, const promise& b) noexcept { return a.node_ == b.node_; }

 private:
  friend struct detail::promise_access;
  explicit promise(detail::state<T>* adopted) noexcept : node_(adopted) {}
  detail::state<T>* node_ = nullptr;
};

template <class T>
promise<T> detail::promise_access::wrap(state<T>* adopted) noexcept {
  return promise<T>(adopted);
}

/// A pending promise on `loop` and its resolver (JavaScript's Promise.withResolvers).
template <class T = void>
std::pair<promise<T>, resolver<T>> make_promise(loop_core& loop) {
  auto* n = new detail::state<T>(&loop);
  promise<T> p = detail::promise_access::wrap<T>(n);
  return {std::move(p), resolver<T>(detail::node_ptr<detail::state<T>>::share(n))};
}
// ------------------------------------------------- the loop's promise forms

template <backend Backend, timer_store TimerStore, executor Executor>
template <class V>
promise<std::decay_t<V>> basic_loop<Backend, TimerStore, Executor>::resolved(V&& value) {
  static_assert(!detail::is_promise_v<V>, "phaseloop: resolved(p) of a promise is p itself");
  return detail::make_resolved<std::decay_t<V>>(*this, std::forward<V>(value));
}

template <backend Backend, timer_store TimerStore, executor Executor>
promise<void> basic_loop<Backend, TimerStore, Executor>::resolved() {
  return detail::make_resolved<void>(*this);
}

template <backend Backend, timer_store TimerStore, executor Executor>
template <class T, class E>
promise<T> basic_loop<Backend, TimerStore, Executor>::rejected(E&& error) {
  return detail::make_rejected<T>(*this, detail::to_exception_ptr(std::forward<E>(error)));
}

template <backend Backend, timer_store TimerStore, executor Executor>
template <class T>
std::pair<promise<T>, resolver<T>> basic_loop<Backend, TimerStore, Executor>::make_promise() {
  return phaseloop::make_promise<T>(*this);
}

template <backend Backend, timer_store TimerStore, executor Executor>
template <class Rep, class Period>
promise<void> basic_loop<Backend, TimerStore, Executor>::delay(std::chrono::duration<Rep, Period> after) {
  auto made = phaseloop::make_promise<void>(*this);
  set_timeout([r = std::move(made.second)] { r.resolve(); }, after);
  return std::move(made.first);
}

template <backend Backend, timer_store TimerStore, executor Executor>
template <class Rep, class Period, class V>
  requires(!std::is_same_v<std::decay_t<V>, abort_signal>)
promise<std::decay_t<V>> basic_loop<Backend, TimerStore, Executor>::delay(std::chrono::duration<Rep, Period> after,
                                                                          V&& value) {
  using T = std::decay_t<V>;
  auto made = phaseloop::make_promise<T>(*this);
  set_timeout([r = std::move(made.second), v = T(std::forward<V>(value))]() mutable { r.resolve(std::move(v)); },
              after);
  return std::move(made.first);
}

template <backend Backend, timer_store TimerStore, executor Executor>
promise<void> basic_loop<Backend, TimerStore, Executor>::immediate() {
  auto made = phaseloop::make_promise<void>(*this);
  set_immediate([r = std::move(made.second)] { r.resolve(); });
  return std::move(made.first);
}

template <backend Backend, timer_store TimerStore, executor Executor>
template <class V>
  requires(!std::is_same_v<std::decay_t<V>, abort_signal>)
promise<std::decay_t<V>> basic_loop<Backend, TimerStore, Executor>::immediate(V&& value) {
  using T = std::decay_t<V>;
  auto made = phaseloop::make_promise<T>(*this);
  set_immediate([r = std::move(made.second), v = T(std::forward<V>(value))]() mutable { r.resolve(std::move(v)); });
  return std::move(made.first);
}

}  // namespace phaseloop
