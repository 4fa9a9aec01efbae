// Node 20 (libuv >= 1.45) runs due timers at the end of an iteration, right
// before the liveness check: an unref'd immediate queued by the last timer
// does not keep the loop alive, so it never runs.
setTimeout(() => {
  console.log('timeout');
  setImmediate(() => console.log('unref immediate')).unref();
}, 10);
process.on('exit', () => console.log('exit'));
