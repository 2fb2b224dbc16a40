// What a fine-tuning method is, as data: the spec a caller writes, its validation against a
// model's depth (with errors naming the option and the allowed range), and short labels
// (full, top3, linear, lora-r8, block-p4) used in tables and on the command line.

export const LORA_TARGETS = ['query', 'key', 'value', 'proj', 'fc1', 'fc2'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];
export const DEFAULT_LORA_TARGETS: readonly LoraTarget[] = ['query', 'value'];

export const BLOCK_PLACEMENTS = ['interleaved', 'top'] as const;
export type BlockPlacement = (typeof BLOCK_PLACEMENTS)[number];

export const METHODS = ['full', 'topk', 'linear', 'lora', 'block'] as const;

/** A method as a caller asks for it; optional fields take their defaults in resolveSpec. */
export type MethodSpec =
  | { readonly method: 'full' }
  | { readonly method: 'linear' }
  | { readonly method: 'topk'; readonly k: number }
  | { readonly method: 'lora'; readonly rank: number; readonly alpha?: number; readonly targets?: readonly string[] }
  | { readonly method: 'block'; readonly p?: number; readonly split?: number; readonly placement?: BlockPlacement };

/** A validated spec with every default filled in. */
export type ResolvedSpec =
  | { readonly method: 'full' }
  | { readonly method: 'linear' }
  | { readonly method: 'topk'; readonly k: number }
  | { readonly method: 'lora'; readonly rank: number; readonly alpha: number; readonly targets: readonly LoraTarget[] }
  | { readonly method: 'block'; readonly p: number; readonly placement: BlockPlacement };

/** A spec that does not fit the model; `option` names the offending field (e.g. 'lora.rank'). */
export class SurgeryError extends Error {
  constructor(
    readonly option: string,
    message: string,
  ) {
    super(message);
    this.name = 'SurgeryError';
  }
}

function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

export function divisors(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1).filter((d) => n % d === 0);
}

/** Validates a spec for a model of `depth` blocks and fills in defaults. */
export function resolveSpec(spec: MethodSpec, depth: number): ResolvedSpec {
  const method = (spec as { method?: unknown }).method;
  switch (spec.method) {
    case 'full':
    case 'linear':
      return { method: spec.method };
    case 'topk': {
      if (!isIntegerIn(spec.k, 1, depth)) {
        throw new SurgeryError('topk.k', `topk: k must be an integer in [1, ${depth}] (the model's depth), got ${String(spec.k)}`);
      }
      return { method: 'topk', k: spec.k };
    }
    case 'lora': {
      if (!isIntegerIn(spec.rank, 1, Number.MAX_SAFE_INTEGER)) {
        throw new SurgeryError('lora.rank', `lora: rank must be a positive integer (at least 1), got ${String(spec.rank)}`);
      }
      const alpha = spec.alpha ?? spec.rank;
      if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha <= 0) {
        throw new SurgeryError('lora.alpha', `lora: alpha must be a positive finite number (default: the rank), got ${String(spec.alpha)}`);
      }
      const targets = spec.targets ?? DEFAULT_LORA_TARGETS;
      if (!Array.isArray(targets) || targets.length === 0) {
        throw new SurgeryError('lora.targets', `lora: targets must be a non-empty list drawn from ${LORA_TARGETS.join(', ')}`);
      }
      for (const target of targets) {
        if (!(LORA_TARGETS as readonly string[]).includes(target)) {
          throw new SurgeryError('lora.targets', `lora: unknown target '${String(target)}'; allowed targets: ${LORA_TARGETS.join(', ')}`);
        }
      }
      const unique = new Set(targets);
      if (unique.size !== targets.length) throw new SurgeryError('lora.targets', `lora: targets name a projection twice: ${targets.join(', ')}`);
      // Canonical order, so that equal sets give equal labels, files and parameter orders.
      const ordered = LORA_TARGETS.filter((target) => unique.has(target));
      return { method: 'lora', rank: spec.rank, alpha, targets: ordered };
    }
    case 'block': {
      const placement = spec.placement ?? 'interleaved';
      if (!(BLOCK_PLACEMENTS as readonly string[]).includes(placement)) {
        throw new SurgeryError('block.placement', `block: placement must be one of ${BLOCK_PLACEMENTS.join(', ')}, got '${String(placement)}'`);
      }
      if (spec.p === undefined && spec.split === undefined) {
        throw new SurgeryError('block.p', 'block: give p (the number of added blocks) or split (original blocks per added block)');
      }
      if (spec.split !== undefined) {
        if (placement === 'top') throw new SurgeryError('block.split', "block: split applies to the interleaved placement; give p for placement 'top'");
        if (!isIntegerIn(spec.split, 1, depth) || depth % spec.split !== 0) {
          throw new SurgeryError('block.split', `block: split must divide the depth ${depth} (allowed: ${divisors(depth).join(', ')}), got ${String(spec.split)}`);
        }
        const p = depth / spec.split;
        if (spec.p !== undefined && spec.p !== p) {
          throw new SurgeryError('block.p', `block: p = ${String(spec.p)} contradicts split = ${spec.split}, which adds ${p} blocks to depth ${depth}`);
        }
        return { method: 'block', p, placement };
      }
      const p = spec.p;
      if (!isIntegerIn(p, 1, depth)) {
        throw new SurgeryError('block.p', `block: p must be an integer in [1, ${depth}] (the model's depth), got ${String(p)}`);
      }
      if (placement === 'interleaved' && depth % p !== 0) {
        throw new SurgeryError(
          'block.p',
          `block: p must divide the depth ${depth} for the interleaved placement (allowed: ${divisors(depth).join(', ')}), got ${p}; ` +
            "placement 'top' takes any p in range",
        );
      }
      return { method: 'block', p, placement };
    }
    default:
      throw new SurgeryError('method', `surgery: unknown method '${String(method)}' (expected one of ${METHODS.join(', ')})`);
  }
}

/** A short name: full, linear, top3, lora-r8 (with -alpha16 and -t-query-key when not the defaults), block-p4 (-top). */
export function methodLabel(spec: ResolvedSpec): string {
  switch (spec.method) {
    case 'full':
    case 'linear':
      return spec.method;
    case 'topk':
      return `top${spec.k}`;
    case 'lora': {
      const alpha = spec.alpha === spec.rank ? '' : `-alpha${spec.alpha}`;
      const defaultTargets = spec.targets.join() === DEFAULT_LORA_TARGETS.join();
      return `lora-r${spec.rank}${alpha}${defaultTargets ? '' : `-t-${spec.targets.join('-')}`}`;
    }
    case 'block':
      return `block-p${spec.p}${spec.placement === 'top' ? '-top' : ''}`;
  }
}

/** Reads a label written by methodLabel back into a spec (validated later, against a model). */
export function parseMethodLabel(label: string): MethodSpec {
  if (label === 'full' || label === 'linear') return { method: label };
  let match = /^top(\d+)$/.exec(label);
  if (match) return { method: 'topk', k: Number(match[1]) };
  match = /^lora-r(\d+)(?:-alpha(\d+(?:\.\d+)?))?(?:-t-([a-z0-9-]+))?$/.exec(label);
  if (match) {
    return {
      method: 'lora',
      rank: Number(match[1]),
      ...(match[2] === undefined ? {} : { alpha: Number(match[2]) }),
      ...(match[3] === undefined ? {} : { targets: match[3].split('-') }),
    };
  }
  match = /^block-p(\d+)(-top)?$/.exec(label);
  if (match) return { method: 'block', p: Number(match[1]), placement: match[2] ? 'top' : 'interleaved' };
  throw new SurgeryError('method', `unknown method label '${label}' (expected full, linear, top<k>, lora-r<rank>, block-p<p> or block-p<p>-top)`);
}
