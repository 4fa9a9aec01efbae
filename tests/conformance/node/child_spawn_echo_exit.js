// A child's stdout data, then its exit, then close (after exit and after
// every stdio stream closed).
const { spawn } = require('child_process');
const c = spawn('sh', ['-c', 'echo hi; exit 3']);
c.stdout.on('data', (d) => console.log('data', d.toString().trim()));
c.on('exit', (code, signal) => console.log('exit', code, signal));
c.on('close', (code, signal) => console.log('close', code, signal));
