// The vitpeft command line: one subcommand per job, global --backend, --threads and --verbose.

import 'reflect-metadata';
import { Command, CommanderError } from 'commander';
import { BACKEND_CHOICES, THREADS_ENV, isBackendChoice } from '../di/backend';
import { dataCommand } from './commands/data';
import { embedCommand } from './commands/embed';
import { inspectCommand } from './commands/inspect';
import { mergeCommand } from './commands/merge';
import { runCommand } from './commands/run';
import { paramsCommand } from './commands/params';
import { pretrainCommand } from './commands/pretrain';
import { reportCommand } from './commands/report';
import { serveCommand } from './commands/serve';
import { EXIT, UsageError, reportError } from './errors';
import { parseInteger } from './options';

export function buildProgram(): Command {
  const program = new Command('vitpeft')
    .description('Fine-tune pretrained Vision Transformers parameter-efficiently and measure what they forget')
    .option('--backend <name>', `compute backend: ${BACKEND_CHOICES.join(', ')}`, (value: string) => {
      if (!isBackendChoice(value)) throw new UsageError(`--backend: expected one of ${BACKEND_CHOICES.join(', ')}, got '${value}'`);
      return value;
    }, 'auto')
    .option('--threads <n>', `threads for the wasm backend (default: $${THREADS_ENV}, else one per CPU core)`, parseInteger('--threads', 1, 1024))
    .option('--verbose', 'print stack traces on errors', false)
    .showHelpAfterError()
    .exitOverride();
  program.addCommand(inspectCommand().exitOverride());
  program.addCommand(embedCommand().exitOverride());
  program.addCommand(paramsCommand().exitOverride());
  program.addCommand(dataCommand().exitOverride());
  program.addCommand(runCommand().exitOverride());
  program.addCommand(pretrainCommand().exitOverride());
  program.addCommand(mergeCommand().exitOverride());
  program.addCommand(reportCommand().exitOverride());
  program.addCommand(serveCommand().exitOverride());
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  const verbose = argv.includes('--verbose');
  try {
    await program.parseAsync(argv);
    process.exitCode = EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed its message (or the help text).
      process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    process.exitCode = reportError(error, verbose);
  }
}
