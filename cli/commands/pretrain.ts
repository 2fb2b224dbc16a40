// `vitpeft pretrain [FILE]`: trains a ViT from a seeded random init as a pretraining file says
// and writes the checkpoint (default: the built-in digits model the default pipeline starts from).

import { Command } from 'commander';
import * as path from 'path';
import { pipeline } from '../../pipelines/composer';
import { PRETRAIN_DIGITS } from '../../pipelines/builtin';
import { pretrain } from '../../pipelines/pretrain';
import { loadPretrainFile } from '../../pipelines/pretrainSpec';
import { startBackend } from '../startBackend';

export function pretrainCommand(): Command {
  return new Command('pretrain')
    .description('pretrain a ViT from a seeded random init (default: the digits 0-4 model of the built-in pipeline)')
    .argument('[file]', 'a pretraining file (.json or .yaml)', PRETRAIN_DIGITS)
    .option('--out <dir>', 'where metrics.csv goes: <dir>/pretrain-<name>', 'out')
    .action(async (file: string, options: { out: string }, command: Command) => {
      const loaded = loadPretrainFile(file);
      await startBackend(command);
      const log = (line: string) => process.stderr.write(`${line}\n`);
      const result = await pretrain(pipeline().stages, loaded, { outDir: path.resolve(options.out, `pretrain-${loaded.spec.name}`), log });
      process.stdout.write(
        `${result.output}: ${result.parameters.toLocaleString('en-US')} parameters, test accuracy ${result.testAccuracy.toFixed(2)}%, ${(result.seconds / 60).toFixed(1)} min\n`,
      );
    });
}
