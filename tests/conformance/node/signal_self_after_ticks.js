// A signal the process sends itself inside a callback is delivered after
// that callback's ticks and microtasks.
// (Node's signal handles do not hold the loop: a timer does until then.)
const keep = setTimeout(() => console.log('never'), 10000);
const onSignal = () => {
  console.log('signal');
  process.removeListener('SIGUSR2', onSignal);
  clearTimeout(keep);
};
process.on('SIGUSR2', onSignal);
setTimeout(() => {
  console.log('timeout');
  process.kill(process.pid, 'SIGUSR2');
  process.nextTick(() => console.log('tick'));
  Promise.resolve().then(() => console.log('microtask'));
  console.log('after kill');
}, 1);
