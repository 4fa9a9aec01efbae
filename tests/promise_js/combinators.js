// all, allSettled, any and race: when each settles relative to a then-chain.
const log = (s) => console.log(s);
const r = (v) => Promise.resolve(v);
Promise.all([r(1), r(2), 3]).then((v) => log('all ' + v.join(',')));
Promise.all([]).then(() => log('all empty'));
Promise.all([r(1), Promise.reject(new Error('no'))]).catch((e) => log('all rejected ' + e.message));
Promise.allSettled([r(1), Promise.reject(new Error('bad'))]).then((v) =>
  log('allSettled ' + v.map((x) => x.status + ':' + (x.value ?? x.reason.message)).join(',')));
Promise.any([Promise.reject(new Error('a')), r('b')]).then((v) => log('any ' + v));
Promise.any([Promise.reject(new Error('a')), Promise.reject(new Error('c'))]).catch((e) =>
  log('any rejected ' + e.constructor.name + ' ' + e.errors.map((x) => x.message).join(',')));
Promise.race([new Promise((res) => setTimeout(() => res('slow'), 5)), new Promise((res) => setTimeout(() => res('fast'), 1))])
  .then((v) => log('race ' + v));
Promise.resolve().then(() => log('t1')).then(() => log('t2')).then(() => log('t3')).then(() => log('t4'));
