// Async functions started from a nextTick, a microtask, a timer and an
// immediate: each runs to its first await at once and resumes in the
// checkpoint that follows its callback.
const log = (s) => console.log(s);
async function task(name) {
  log(name + ' start');
  await null;
  log(name + ' after await');
  await Promise.resolve().then(() => log(name + ' inner then'));
  log(name + ' after second await');
}
setTimeout(() => {
  task('timer');
  log('timer callback end');
  setImmediate(() => { task('immediate'); log('immediate callback end'); });
}, 0);
process.nextTick(() => task('tick'));
queueMicrotask(() => task('micro'));
log('sync end');
