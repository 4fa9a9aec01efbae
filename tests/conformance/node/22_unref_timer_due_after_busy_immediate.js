// An unref'd timer that comes due while an immediate keeps the CPU busy
// fires at the end of that iteration, before the loop sees nothing alive.
setTimeout(() => console.log('unref timeout 50ms'), 50).unref();
setImmediate(() => {
  console.log('immediate busy 60ms');
  const start = Date.now();
  while (Date.now() - start < 60) {}
});
process.on('exit', () => console.log('exit'));
