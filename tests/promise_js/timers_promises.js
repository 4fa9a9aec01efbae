// timers/promises: setTimeout and setImmediate as promises, awaited in
// sequence by two async functions whose timers are far apart.
const log = (s) => console.log(s);
const { setTimeout: sleep, setImmediate: nextImmediate } = require('timers/promises');
async function first() {
  log('first start');
  await sleep(10);
  log('first after sleep 10');
  const v = await nextImmediate('imm');
  log('first after immediate ' + v);
  const w = await sleep(5, 'val');
  log('first after sleep 5 ' + w);
}
async function second() {
  await sleep(200);
  log('second after sleep 200');
}
first();
second();
setImmediate(() => log('plain immediate'));
Promise.resolve().then(() => log('micro'));
log('sync end');
