// `zkf`: the operator command line (docs/cli.md). Started by bin/zkf.mjs (the npm bin) under Node 22 with tsx.
import { runCli } from '../lib/cli/main.ts';

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  now: () => Date.now(),
  env: process.env,
});
// Let stdout drain (a pipe may be slow) before exiting with the code.
process.exitCode = code;
