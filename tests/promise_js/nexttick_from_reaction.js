// A nextTick queued from a promise reaction runs only once the microtask
// queue is empty; ticks run before promise jobs when both are queued from
// synchronous code.
const log = (s) => console.log(s);
Promise.resolve().then(() => {
  log('r1');
  process.nextTick(() => { log('tick from r1'); Promise.resolve().then(() => log('r from tick')); });
}).then(() => log('r2')).then(() => log('r3'));
process.nextTick(() => log('tick1'));
Promise.resolve().then(() => log('s1')).then(() => log('s2'));
setImmediate(() => {
  log('immediate');
  Promise.resolve().then(() => { log('ri'); process.nextTick(() => log('tick from ri')); }).then(() => log('ri2'));
  process.nextTick(() => log('tick in immediate'));
});
log('sync end');
