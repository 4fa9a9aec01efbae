// await of an already settled promise resumes one job later; await of a
// pending one resumes one job after it settles; a then-chain interleaves.
const log = (s) => console.log(s);
let release;
const pending = new Promise((resolve) => { release = resolve; });
async function settled() { log('settled start'); const v = await Promise.resolve('s'); log('settled resumed ' + v); }
async function waiting() { log('waiting start'); const v = await pending; log('waiting resumed ' + v); }
settled();
waiting();
Promise.resolve().then(() => log('t1')).then(() => { log('t2'); release('p'); }).then(() => log('t3')).then(() => log('t4'));
log('sync end');
