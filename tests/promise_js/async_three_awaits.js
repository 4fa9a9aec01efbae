// An async function that awaits three times, interleaved with a then-chain;
// its returned promise is observed by a then.
const log = (s) => console.log(s);
async function worker() {
  log('w0');
  const a = await Promise.resolve(1);
  log('w1 ' + a);
  const b = await new Promise((resolve) => setTimeout(() => resolve(2), 0));
  log('w2 ' + b);
  const c = await 3;
  log('w3 ' + c);
  return a + b + c;
}
worker().then((v) => log('done ' + v));
Promise.resolve().then(() => log('p1')).then(() => log('p2')).then(() => log('p3')).then(() => log('p4'));
setTimeout(() => {
  log('timer');
  Promise.resolve().then(() => log('q1')).then(() => log('q2')).then(() => log('q3'));
}, 0);
log('sync end');
