// `vitpeft pretrain [FILE]`: trains a ViT from a seeded random init as a pretraining file says
// and writes the checkpoint (default: the built-in pipeline's self-supervised digits model, by DINO).
// SIGINT or SIGTERM stops after the current step with a checkpoint (exit code 130);
// `vitpeft pretrain --resume out/pretrain-<name>` continues it with the spec saved there.

import { Command } from 'commander';
import * as path from 'path';
import { pipeline } from '../../pipelines/composer';
import { PRETRAIN_DINO_DIGITS } from '../../pipelines/builtin';
import { LoadedPretrain, pretrain, pretrainFingerprint, readPretrainRecord } from '../../pipelines/pretrain';
import { loadPretrainFile } from '../../pipelines/pretrainSpec';
import { InterruptedError, UsageError } from '../errors';
import { withStopSignal } from '../stopOnSignal';
import { startBackend } from '../startBackend';

interface PretrainCommandOptions {
  out: string;
  resume?: string;
}

/** The spec and folder to pretrain in: a file's (fresh), or a folder's record (--resume; a file given too must match). */
function target(file: string | undefined, options: PretrainCommandOptions, command: Command): { loaded: LoadedPretrain; outDir: string } {
  if (options.resume === undefined) {
    const loaded = loadPretrainFile(file ?? PRETRAIN_DINO_DIGITS);
    return { loaded, outDir: path.resolve(options.out, `pretrain-${loaded.spec.name}`) };
  }
  if (command.getOptionValueSource('out') === 'cli') throw new UsageError('--resume continues in the folder it names; leave out --out');
  const outDir = path.resolve(options.resume);
  const loaded = readPretrainRecord(outDir);
  if (file !== undefined && pretrainFingerprint(loadPretrainFile(file).spec) !== pretrainFingerprint(loaded.spec)) {
    throw new UsageError(`${file} is not the pretraining that ${outDir} started with; resume without the file to use the saved spec, or start afresh`);
  }
  return { loaded, outDir };
}

export function pretrainCommand(): Command {
  return new Command('pretrain')
    .description('pretrain a ViT from a seeded random init (default: the self-supervised digits 0-4 model of the built-in pipeline)')
    .argument('[file]', `a pretraining file (.json or .yaml; default ${path.relative(process.cwd(), PRETRAIN_DINO_DIGITS) || PRETRAIN_DINO_DIGITS})`)
    .option('--out <dir>', 'output root; metrics, evaluations and checkpoints go to <dir>/pretrain-<name>', 'out')
    .option('--resume <folder>', 'continue an interrupted pretraining (out/pretrain-<name>) from its last checkpoint')
    .action(async (file: string | undefined, options: PretrainCommandOptions, command: Command) => {
      const { loaded, outDir } = target(file, options, command);
      const log = (line: string) => process.stderr.write(`${line}\n`);
      const result = await withStopSignal(`vitpeft pretrain --resume ${outDir}`, async (stop) => {
        await startBackend(command);
        return pretrain(pipeline().stages, loaded, { outDir, log, stop, resume: options.resume !== undefined });
      });
      if (result.status === 'interrupted') throw new InterruptedError(`pretraining interrupted; its checkpoint is in ${outDir}; continue with: vitpeft pretrain --resume ${outDir}`);
      if (result.status === 'diverged') throw new Error(`pretraining '${loaded.spec.name}' diverged: ${result.note}`);
      process.stdout.write(
        `${result.output}: ${result.parameters.toLocaleString('en-US')} parameters, ${result.knnAccuracy !== undefined ? `k-NN@20 ${result.knnAccuracy.toFixed(2)}%` : `test accuracy ${result.testAccuracy.toFixed(2)}%`}, ${(result.seconds / 60).toFixed(1)} min\n`,
      );
    });
}
