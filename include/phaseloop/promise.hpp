#pragma once
// promise<T>: JavaScript promises on a phaseloop loop, with ECMAScript's exact
// job ordering, and coroutines as async functions.
//
//   auto p = loop.resolved(1).then([](int v) { return v + 1; });     // Promise.resolve(1).then(...)
//   promise<int> q(loop, [](auto resolve, auto reject) { resolve(42); });   // new Promise(...)
//   auto [s, resolve] = loop.make_promise<std::string>();            // Promise.withResolvers()
//   all(loop, {p, q}); all_settled, any, race                        // the combinators
//
//   promise<int> add_later(test_loop& loop, int a) {                 // an async function
//     co_await loop.delay(10ms);                                     // await
//     co_return a + 1;
//   }
//
// The jobs, handlers, rejections, the promise forms of I/O for module authors,
// lifetimes and a GCC 12 note: docs/promises.md.

#include <phaseloop/version.hpp>
#include <phaseloop/promise/core.hpp>
#include <phaseloop/promise/coroutine.hpp>
#include <phaseloop/promise/combinators.hpp>
