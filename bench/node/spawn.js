// bench/spawn.cpp's workload in JavaScript, for the ratio against Node:
// N spawns of /bin/true, one after another (each waits for the last one's
// exit). Usage: node spawn.js [N] [ROUNDS]
// Prints "spawn_true <ns per spawn>" (best round, after a warm-up round).
'use strict';
const { spawn } = require('child_process');
const n = Number(process.argv[2] || 1000);
const rounds = Number(process.argv[3] || 3);

function round() {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    let left = n;
    const next = () => {
      const c = spawn('/bin/true', [], { stdio: 'ignore' });
      c.on('error', reject);
      c.on('exit', (code) => {
        if (code !== 0) return reject(new Error('exit ' + code));
        if (--left === 0) return resolve(Number(process.hrtime.bigint() - start));
        next();
      });
    };
    next();
  });
}

(async () => {
  await round();  // warm-up
  let best = Infinity;
  for (let i = 0; i < rounds; i++) best = Math.min(best, await round());
  console.log('spawn_true', best / n);
})();
