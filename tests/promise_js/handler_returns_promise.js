// A handler that returns a promise: the derived promise adopts it with two
// extra jobs (the resolve-thenable job, then the reaction on the returned
// promise), so the chain after it falls two steps behind a plain chain.
const log = (s) => console.log(s);
Promise.resolve().then(() => { log('a1'); return Promise.resolve('x'); }).then((v) => log('a2 ' + v));
Promise.resolve().then(() => log('b1')).then(() => log('b2')).then(() => log('b3')).then(() => log('b4')).then(() => log('b5'));
// A pending promise returned from a handler, resolved later by a timer.
let later;
const pending = new Promise((resolve) => { later = resolve; });
Promise.resolve().then(() => pending).then((v) => log('c ' + v));
setTimeout(() => { log('timer'); later('late'); Promise.resolve().then(() => log('d1')).then(() => log('d2')).then(() => log('d3')); }, 1);
// resolve(promise) in an executor costs the same two jobs.
new Promise((resolve) => resolve(Promise.resolve('e'))).then((v) => log('e ' + v));
