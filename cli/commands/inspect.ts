// `vitpeft inspect <checkpoint>`: layout, architecture and parameter count, read from the file.

import { Command } from 'commander';
import { CheckpointSummary, inspectCheckpoint } from '../../models/checkpoint/vitCheckpoint';
import { parseInteger } from '../options';

export function describeSummary(summary: CheckpointSummary): string {
  const c = summary.config;
  const lines = [
    `file:          ${summary.file}`,
    `layout:        ${summary.layout}${summary.strippedPrefix ? ` (prefix '${summary.strippedPrefix}' stripped)` : ''}`,
    `architecture:  width ${c.width}, depth ${c.depth}, heads ${c.heads}, patch ${c.patchSize}, image ${c.imageSize}, mlp ${c.mlpHidden}, ` +
      `${c.numClasses > 0 ? `head of ${c.numClasses} classes` : 'no head'}, LayerNorm eps ${c.layerNormEps}`,
    `parameters:    ${summary.parameterCount.toLocaleString('en-US')}`,
  ];
  if (summary.addedBlocks.length > 0) lines.push(`added blocks:  ${summary.addedBlocks.join(', ')} (block expansion)`);
  if (summary.ignored.length > 0) lines.push(`ignored:       ${summary.ignored.join(', ')}`);
  return lines.join('\n');
}

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('show the layout, architecture and parameter count of a safetensors checkpoint')
    .argument('<checkpoint>', 'a .safetensors file in timm/DINO or Hugging Face layout')
    .option('--json', 'print one JSON object')
    .option('--heads <n>', 'attention heads (default: from metadata, else width/64)', parseInteger('--heads', 1))
    .action((checkpoint: string, options: { json?: boolean; heads?: number }) => {
      const summary = inspectCheckpoint(checkpoint, { heads: options.heads });
      process.stdout.write(options.json ? `${JSON.stringify(summary, null, 2)}\n` : `${describeSummary(summary)}\n`);
    });
}
