// A view of a source restricted to some classes (Split-MNIST style: digits 0-4, then 5-9) and/or
// to the first N images of each class, in the source's order. Labels are either remapped to
// 0..k-1 in ascending order of the kept classes (the default; a k-way head fits), or kept as they
// were (numClasses stays the source's, so class-incremental heads keep their meaning).

import { DatasetError, DatasetSource, Sample, checkIndex } from './source';

export interface SubsetOptions {
  /** The class indices to keep; omitted keeps every class. */
  classes?: readonly number[];
  /** true (default): labels become positions in the sorted class list. false: labels are kept. */
  remap?: boolean;
  /** At most this many images per class, the first ones in the source's order (after any skipped). */
  perClass?: number;
  /** Skip the first this many images of each class (a split disjoint from perClass=N with the same N). */
  skipPerClass?: number;
}

export class SubsetSource implements DatasetSource {
  readonly description: string;
  readonly size: number;
  readonly numClasses: number;
  readonly classNames?: readonly string[];
  readonly imageShape?: readonly [number, number, number];
  /** Index in the parent source of each image of the subset. */
  readonly parentIndices: Uint32Array;
  private readonly labelMap: Map<number, number>;

  constructor(
    readonly parent: DatasetSource,
    options: SubsetOptions,
  ) {
    const remap = options.remap ?? true;
    const classes = options.classes ? [...new Set(options.classes)].sort((a, b) => a - b) : undefined;
    if (classes) {
      const bad = classes.find((c) => !Number.isInteger(c) || c < 0 || (parent.numClasses > 0 && c >= parent.numClasses));
      if (bad !== undefined) throw new DatasetError(parent.description, `class ${bad} does not exist (the source has classes 0..${parent.numClasses - 1})`);
    }
    this.labelMap = new Map((classes ?? []).map((c, position) => [c, remap ? position : c]));
    const keep = classes ? new Set(classes) : undefined;
    const taken = new Map<number, number>();
    const skipped = new Map<number, number>();
    const indices: number[] = [];
    for (let i = 0; i < parent.size; i++) {
      const label = parent.labelOf(i);
      if (keep && !keep.has(label)) continue;
      if (options.skipPerClass !== undefined) {
        const seen = skipped.get(label) ?? 0;
        if (seen < options.skipPerClass) {
          skipped.set(label, seen + 1);
          continue;
        }
      }
      if (options.perClass !== undefined) {
        const count = taken.get(label) ?? 0;
        if (count >= options.perClass) continue;
        taken.set(label, count + 1);
      }
      indices.push(i);
    }
    if (indices.length === 0) throw new DatasetError(parent.description, `no images left after keeping classes [${classes?.join(', ')}]`);
    this.parentIndices = Uint32Array.from(indices);
    this.size = indices.length;
    const remapped = classes !== undefined && remap;
    this.numClasses = remapped ? classes.length : parent.numClasses;
    this.classNames = remapped && parent.classNames ? classes.map((c) => parent.classNames![c]) : parent.classNames;
    this.imageShape = parent.imageShape;
    const parts: string[] = [];
    if (classes) parts.push(`classes ${formatClassList(classes)}${remap ? ' remapped to 0..' + (classes.length - 1) : ', labels kept'}`);
    if (options.skipPerClass !== undefined) parts.push(`first ${options.skipPerClass} per class skipped`);
    if (options.perClass !== undefined) parts.push(`at most ${options.perClass} per class`);
    this.description = `${parent.description} [${parts.join('; ')}]`;
  }

  labelOf(index: number): number {
    const label = this.parent.labelOf(this.parentIndices[index]);
    return this.labelMap.get(label) ?? label;
  }

  async read(index: number): Promise<Sample | null> {
    checkIndex(this, index);
    const sample = await this.parent.read(this.parentIndices[index]);
    if (!sample) return null;
    return { ...sample, label: this.labelMap.get(sample.label) ?? sample.label };
  }
}

/** 0,1,2,3,4,7 -> "0-4,7". */
export function formatClassList(classes: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < classes.length; ) {
    let j = i;
    while (j + 1 < classes.length && classes[j + 1] === classes[j] + 1) j++;
    parts.push(j > i ? `${classes[i]}-${classes[j]}` : `${classes[i]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** "0-4,7" -> [0,1,2,3,4,7]; throws with the offending text. */
export function parseClassList(text: string): number[] {
  const classes: number[] = [];
  for (const part of text.split(',')) {
    const match = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!match) throw new Error(`'${part}' is not a class index or range (expected e.g. 0-4,7)`);
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    if (last < first) throw new Error(`range '${part}' ends before it starts`);
    if (last - first > 1_000_000) throw new Error(`range '${part}' is too large`);
    for (let c = first; c <= last; c++) classes.push(c);
  }
  return classes;
}
