// The shape of a `zkf` command and what it is given to run.
import type { OptionSpec } from './args.ts';
import type { CliIo } from './format.ts';
import type { Target } from './target.ts';

export interface CommandContext {
  readonly options: ReadonlyMap<string, string>;
  readonly io: CliIo;
  readonly json: boolean;
  /** Resolved on first use (AWS mode looks the queue URLs up). */
  target(): Promise<Target>;
  /** Writes the JSON result (with --json) or the human text. */
  print(human: string, json: unknown): void;
  /** A note for humans on stderr (never mixed into --json output). */
  note(text: string): void;
}

export interface CliCommand {
  /** `['status']`, `['dlq', 'list']` */
  readonly words: readonly string[];
  readonly summary: string;
  /** `--host H [--type master|worker]` */
  readonly synopsis: string;
  /** What it does, exactly (shown by --help). */
  readonly description: string;
  readonly options: readonly OptionSpec[];
  run(context: CommandContext): Promise<number>;
}
