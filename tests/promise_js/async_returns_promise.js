// An async function that returns a promise adopts it (two extra jobs); an
// async function that throws rejects its promise; await rethrows.
const log = (s) => console.log(s);
async function returnsPromise() { log('rp body'); return Promise.resolve('rp'); }
async function returnsValue() { log('rv body'); return 'rv'; }
async function throws() { log('th body'); throw new Error('boom'); }
async function awaitsRejection() {
  try { await throws(); } catch (e) { log('caught in async ' + e.message); }
  return 'recovered';
}
returnsPromise().then((v) => log('got ' + v));
returnsValue().then((v) => log('got ' + v));
awaitsRejection().then((v) => log('got ' + v));
Promise.resolve().then(() => log('t1')).then(() => log('t2')).then(() => log('t3')).then(() => log('t4'));
