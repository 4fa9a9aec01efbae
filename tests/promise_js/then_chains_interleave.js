// Three then-chains of different lengths and a queueMicrotask interleave one
// reaction per microtask, in FIFO order.
const log = (s) => console.log(s);
const a = Promise.resolve(1);
a.then((v) => log('a1 ' + v)).then(() => log('a2')).then(() => log('a3'));
Promise.resolve(2).then((v) => { log('b1 ' + v); return v * 10; }).then((v) => log('b2 ' + v));
queueMicrotask(() => log('q1'));
a.then(() => log('a-second-reaction'));
new Promise((resolve) => { log('executor'); resolve('c'); })
  .then((v) => log('c1 ' + v)).then(() => log('c2')).then(() => log('c3')).then(() => log('c4'));
log('sync end');
