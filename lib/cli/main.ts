// `zkf`, the operator command line (docs/cli.md): dispatch, help, and exit codes (0 ok, 1 failed,
// 2 bad arguments).
import { globalOptions, type OptionSpec, parseArgs, UsageError } from './args.ts';
import type { CliCommand, CommandContext } from './command.ts';
import { dlqListCommand, dlqRedriveCommand } from './commands/dlq.ts';
import { failoverCommand } from './commands/failover.ts';
import { planCommand } from './commands/plan.ts';
import { statusCommand } from './commands/status.ts';
import { sweepCommand } from './commands/sweep.ts';
import type { CliIo } from './format.ts';
import { resolveTarget, type Target } from './target.ts';

export const commands: readonly CliCommand[] = [
  statusCommand,
  planCommand,
  failoverCommand,
  dlqListCommand,
  dlqRedriveCommand,
  sweepCommand,
];

function optionLines(specs: readonly OptionSpec[]): string[] {
  return specs.map((s) => {
    const left = `--${s.name}${s.value ? ` ${s.value}` : ''}`;
    return `  ${left.padEnd(28)} ${s.description}`;
  });
}

export function mainHelp(): string {
  return [
    'zkf: operator command line of zk-failover (serverless failover for ZooKeeper-registered schedulers)',
    '',
    'Usage: zkf <command> [options]   (--ready <READY json|file> for the local stack, or --stage <stage> for AWS)',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.words.join(' ').padEnd(14)} ${c.summary}`),
    '',
    'Global options:',
    ...optionLines(globalOptions),
    '',
    'Examples:',
    '  zkf --ready .local/demo-ready.json status',
    "  zkf --ready .local/demo-ready.json plan --host 10.0.1.2:5678     # on the READY line's store",
    "  zkf --stage prod --store postgresql --zookeeper 10.0.3.4:2181 status   # the stage's database settings",
    '  zkf --stage prod --region eu-west-1 plan --host 10.0.0.7:5678',
    '  zkf --stage prod failover --host 10.0.0.7:5678 --type master --wait',
    '  zkf --stage prod dlq list --json',
    '',
    '`zkf <command> --help` describes a command. Exit codes: 0 done, 1 failed, 2 bad arguments. Reference: docs/cli.md.',
  ].join('\n');
}

export function commandHelp(command: CliCommand): string {
  return [
    `Usage: zkf ${command.words.join(' ')} ${command.synopsis} [global options]`.trimEnd(),
    '',
    command.summary,
    '',
    command.description,
    ...(command.options.length > 0 ? ['', 'Options:', ...optionLines(command.options)] : []),
    '',
    'Global options:',
    ...optionLines(globalOptions),
  ].join('\n');
}

function findCommand(words: readonly string[]): CliCommand | undefined {
  return commands.find((c) => c.words.every((w, i) => words[i] === w));
}

/** Runs one `zkf` invocation; resolves with the exit code. Never throws. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let target: Target | undefined;
  let command: CliCommand | undefined;
  try {
    const parsed = parseArgs(
      argv,
      commands.flatMap((c) => c.options),
      (words) => findCommand(words)?.options ?? [],
    );
    const { words, options } = parsed;
    const help = options.has('help');
    if (words.length === 0) {
      if (help) {
        io.stdout.write(`${mainHelp()}\n`);
        return 0;
      }
      throw new UsageError('which command? (status, plan, failover, dlq list, dlq redrive, sweep)');
    }
    command = findCommand(words);
    if (command === undefined) {
      if (words[0] === 'dlq') {
        if (help && words.length === 1) {
          io.stdout.write(`${[dlqListCommand, dlqRedriveCommand].map(commandHelp).join('\n\n')}\n`);
          return 0;
        }
        throw new UsageError(
          `\`zkf dlq\` needs list or redrive${words[1] ? `, not ${JSON.stringify(words[1])}` : ''}`,
          'dlq',
        );
      }
      throw new UsageError(`unknown command ${JSON.stringify(words.join(' '))}`);
    }
    if (words.length > command.words.length) {
      throw new UsageError(
        `unexpected argument ${JSON.stringify(words[command.words.length])} for \`zkf ${command.words.join(' ')}\``,
        command.words.join(' '),
      );
    }
    if (help) {
      io.stdout.write(`${commandHelp(command)}\n`);
      return 0;
    }
    const json = options.has('json');
    const context: CommandContext = {
      options,
      io,
      json,
      async target() {
        target ??= await resolveTarget(options);
        return target;
      },
      print(human, value) {
        io.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human}\n`);
      },
      note(text) {
        io.stderr.write(`${text}\n`);
      },
    };
    return await command.run(context);
  } catch (error: unknown) {
    if (error instanceof UsageError) {
      const about = error.command ?? command?.words.join(' ');
      io.stderr.write(`zkf: ${error.message}\n(see \`zkf ${about ? `${about} ` : ''}--help\`)\n`);
      return 2;
    }
    io.stderr.write(`zkf: ${describe(error)}\n`);
    return 1;
  } finally {
    await target?.close();
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const name = error.name;
  if (name === 'QueueDoesNotExist' || name === 'AWS.SimpleQueueService.NonExistentQueue') {
    return `${error.message} (is the stage deployed in this region? --stage, --region)`;
  }
  if (name === 'ResourceNotFoundException') return `${error.message} (is the stage deployed in this region?)`;
  if (name === 'CredentialsProviderError') return `no AWS credentials: ${error.message}`;
  return `${name}: ${error.message}`;
}
