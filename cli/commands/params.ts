// `vitpeft params`: trainable parameters of the paper's ten configurations, counted by applying
// each method to a model of the architecture (never by a formula), beside the figures the paper
// reports, with the computed explanation of its LoRA figures (the head counted twice).

import { Command } from 'commander';
import { loadVit } from '../../models/checkpoint/vitCheckpoint';
import { VIT_PRESETS, isPresetName, presetConfig } from '../../models/vit/config';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { PAPER_CONFIGURATIONS, ParameterCountRow, countConfigurations, isPaperSetting, zeroModel } from '../../stages/surgery';
import { UsageError } from '../errors';
import { startBackend } from '../startBackend';
import { parseInteger } from '../options';

interface ParamsOptions {
  arch?: string;
  checkpoint?: string;
  classes: number;
  heads?: number;
  json?: boolean;
}

export interface ParamsReport {
  readonly source: string;
  readonly model: VisionTransformer['config'];
  readonly classes: number;
  readonly head: number;
  readonly paperSetting: boolean;
  readonly rows: ParameterCountRow[];
}

const number = (n: number) => n.toLocaleString('en-US');

function checkSource(options: ParamsOptions): void {
  if ((options.arch === undefined) === (options.checkpoint === undefined)) throw new UsageError('params: give exactly one of --arch <name> or --checkpoint <file>');
  if (options.arch !== undefined && !isPresetName(options.arch)) {
    throw new UsageError(`--arch: expected one of ${Object.keys(VIT_PRESETS).join(', ')}, got '${options.arch}'`);
  }
}

/** Builds (or loads) the model, counts every configuration on it, and disposes it. */
export function countForCommand(options: ParamsOptions): ParamsReport {
  checkSource(options);
  let base: VisionTransformer;
  let source: string;
  if (options.arch !== undefined) {
    // Counts depend on shapes only: a zero-weight model of the architecture costs one block's memory.
    base = zeroModel(presetConfig(options.arch));
    source = options.arch;
  } else {
    base = loadVit(options.checkpoint as string, { heads: options.heads }).model;
    source = options.checkpoint as string;
  }
  try {
    const rows = countConfigurations(base, options.classes, PAPER_CONFIGURATIONS);
    return { source, model: base.config, classes: options.classes, head: base.width * options.classes + options.classes, paperSetting: isPaperSetting(base, options.classes), rows };
  } finally {
    base.dispose();
  }
}

export function formatReport(report: ParamsReport): string {
  const c = report.model;
  const lines = [
    `${report.source}: width ${c.width}, depth ${c.depth}, heads ${c.heads}, patch ${c.patchSize}, image ${c.imageSize}, mlp ${c.mlpHidden}; ` +
      `new head Linear(${c.width}, ${report.classes}) = ${number(report.head)} parameters`,
    'Trainable parameters, counted by applying each method to this model' +
      (report.paperSetting ? ", beside the paper's figures (DINO ViT-B/16, CIFAR-100):" : " (the paper's figures are for ViT-B/16 with 100 classes; not shown):"),
    '',
  ];
  const note = (row: ParameterCountRow) =>
    row.error ?? (row.agrees === null ? '' : row.agrees ? 'agrees' : row.headCountedTwice?.agrees ? 'the paper counted the head twice (below)' : 'differs');
  const table = report.rows.map((row) => [
    row.name,
    row.trainable === null ? 'n/a' : number(row.trainable),
    ...(report.paperSetting ? [row.reported ?? ''] : []),
    note(row),
  ]);
  const header = ['configuration', 'trainable', ...(report.paperSetting ? ['paper'] : []), 'note'];
  const widths = header.map((title, i) => Math.max(title.length, ...table.map((cells) => cells[i].length)));
  const render = (cells: string[]) =>
    cells
      .map((cell, i) => (i === 1 ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
      .join('   ')
      .trimEnd();
  lines.push(render(header), ...table.map(render));
  const lora = report.rows.filter((row) => row.headCountedTwice && row.trainable !== null);
  if (report.paperSetting && lora.length > 0) {
    lines.push(
      '',
      "LoRA: the paper's figures count the classification head twice (its LoRA library kept a trainable copy of",
      'the head beside the original, and both were counted). Adding the head once more to our counts gives them:',
    );
    for (const row of lora) {
      const twice = row.headCountedTwice!;
      lines.push(`  ${row.name.padEnd(9)} ${number(row.trainable!)} + ${number(twice.head)} (head) = ${number(twice.total)} ≈ ${row.reported}${twice.agrees ? '' : '  (still differs)'}`);
    }
  }
  return lines.join('\n');
}

export function paramsCommand(): Command {
  return new Command('params')
    .description("trainable parameters of the paper's ten configurations, counted by applying each method to a model, beside the paper's figures")
    .option('--arch <name>', `architecture preset: ${Object.keys(VIT_PRESETS).join(', ')}`)
    .option('--checkpoint <file>', 'a .safetensors ViT checkpoint to count on, in place of --arch')
    .option('--classes <n>', 'classes of the new head', parseInteger('--classes', 1), 100)
    .option('--heads <n>', 'attention heads of the checkpoint (default: from metadata, else width/64)', parseInteger('--heads', 1))
    .option('--json', 'print a JSON array of {name, method, trainable, reported, agrees, ...}, one per configuration')
    .action(async (options: ParamsOptions, command: Command) => {
      checkSource(options);
      await startBackend(command);
      const report = countForCommand(options);
      process.stdout.write(options.json ? `${JSON.stringify(report.rows, null, 2)}\n` : `${formatReport(report)}\n`);
    });
}
