// finally passes the value or the rejection through, waits for a promise it
// returns, and costs extra jobs (a then and an adoption) on the way.
const log = (s) => console.log(s);
Promise.resolve('v').finally(() => log('f1')).then((v) => log('after f1 ' + v));
Promise.reject(new Error('e')).finally(() => log('f2')).catch((e) => log('after f2 ' + e.message));
Promise.resolve('w').finally(() => { log('f3'); throw new Error('thrown'); }).catch((e) => log('after f3 ' + e.message));
Promise.resolve('x')
  .finally(() => new Promise((resolve) => setTimeout(() => { log('f4 timer'); resolve('ignored'); }, 0)))
  .then((v) => log('after f4 ' + v));
Promise.resolve().then(() => log('t1')).then(() => log('t2')).then(() => log('t3')).then(() => log('t4')).then(() => log('t5')).then(() => log('t6'));
