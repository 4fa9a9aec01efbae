// A rejection nobody handles by the time the microtask queue drains is
// reported (process 'unhandledRejection'); one handled within the same drain
// is not; handling later does not undo the report.
const log = (s) => console.log(s);
process.on('unhandledRejection', (reason) => {
  log('unhandled ' + reason.message);
  process.nextTick(() => log('tick after report ' + reason.message));
});
const late = Promise.reject(new Error('late'));
const early = Promise.reject(new Error('early-handled'));
Promise.resolve().then(() => log('m1')).then(() => { log('m2'); early.catch((e) => log('caught ' + e.message)); });
Promise.resolve().then(() => { throw new Error('from handler'); });
async function thrower() { await null; throw new Error('from async'); }
thrower();
setTimeout(() => {
  log('timer');
  late.catch((e) => log('caught late ' + e.message));
  Promise.reject(new Error('in timer'));
}, 0);
log('sync end');
