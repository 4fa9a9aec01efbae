// Where catch sits decides what it sees, and a rejection skips fulfilment
// handlers one job at a time.
const log = (s) => console.log(s);
Promise.reject(new Error('r1'))
  .then(() => log('never 1'))
  .then(() => log('never 2'))
  .catch((e) => { log('caught ' + e.message); return 'recovered'; })
  .then((v) => log('after catch ' + v));
Promise.resolve('ok')
  .catch(() => log('never 3'))
  .then((v) => { log('value ' + v); throw new Error('r2'); })
  .then(() => log('never 4'), (e) => log('second arg ' + e.message))
  .catch(() => log('never 5'))
  .then(() => log('end b'));
Promise.resolve().then(() => log('t1')).then(() => log('t2')).then(() => log('t3')).then(() => log('t4')).then(() => log('t5'));
