// The promise workloads of bench/promise.cpp, in JavaScript, for the ratio
// against Node. Usage: node promise_bench.js [N] [ROUNDS]
// Prints one line per workload: "<workload> <ns per item>" (best round,
// after a warm-up round so the JIT has compiled everything).
'use strict';
const n = Number(process.argv[2] || 1000000);
const rounds = Number(process.argv[3] || 5);

// 1M chained then reactions: a chain built on a settled promise, then drained.
async function thenChain() {
  const start = process.hrtime.bigint();
  let p = Promise.resolve(0);
  for (let i = 0; i < n; i++) p = p.then((v) => v + 1);
  const v = await p;
  const ns = Number(process.hrtime.bigint() - start);
  if (v !== n) throw new Error('chain broke');
  return ns;
}

// 1M await resumptions of an already settled promise.
async function awaitSettled() {
  const start = process.hrtime.bigint();
  const p = Promise.resolve();
  let c = 0;
  for (let i = 0; i < n; i++) { await p; c++; }
  const ns = Number(process.hrtime.bigint() - start);
  if (c !== n) throw new Error('await broke');
  return ns;
}

// 1M calls of an async function that returns at once, each awaited.
async function inc(v) { return v + 1; }
async function asyncCall() {
  const start = process.hrtime.bigint();
  let c = 0;
  for (let i = 0; i < n; i++) c = await inc(c);
  const ns = Number(process.hrtime.bigint() - start);
  if (c !== n) throw new Error('calls broke');
  return ns;
}

async function main() {
  const workloads = [['promise_then_chain', thenChain], ['promise_await_settled', awaitSettled],
                     ['promise_async_call', asyncCall]];
  for (const [name, fn] of workloads) {
    await fn();  // warm-up
    let best = Infinity;
    for (let r = 0; r < rounds; r++) best = Math.min(best, await fn());
    console.log(name + ' ' + (best / n).toFixed(2));
  }
}
main();
