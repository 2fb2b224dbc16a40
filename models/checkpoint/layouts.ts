// Checkpoint layouts: free functions that translate foreign tensor names into timm's, outside
// the model (as timm's checkpoint_filter_fn does). Tensors stay in PyTorch orientation here.

export interface RawTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export type StateDict = Map<string, RawTensor>;

export type LayoutName = 'timm' | 'huggingface';

export interface Translation {
  readonly layout: LayoutName;
  /** The prefix stripped from every key ('vit.', 'module.', 'backbone.'), or ''. */
  readonly strippedPrefix: string;
  /** timm name -> the file's key(s) it came from, in order (q, k, v for a fused qkv). */
  readonly sources: ReadonlyMap<string, readonly string[]>;
  /** Keys of the file that the ViT does not use (a Hugging Face pooler), reported, not loaded. */
  readonly ignored: readonly string[];
  /** Keys that match nothing known. */
  readonly unknown: readonly string[];
}

const PREFIXES = ['module.', 'backbone.', 'vit.'];

function detectLayout(keys: readonly string[]): LayoutName | undefined {
  if (keys.some((key) => key.startsWith('encoder.layer.') || key.startsWith('embeddings.'))) return 'huggingface';
  if (keys.some((key) => key.startsWith('blocks.') || key.startsWith('patch_embed.'))) return 'timm';
  return undefined;
}

function stripPrefix(keys: readonly string[]): { prefix: string; strip: (key: string) => string } {
  for (const prefix of PREFIXES) {
    const backboneKeys = keys.filter((key) => !key.startsWith('classifier.') && !key.startsWith('head.'));
    if (backboneKeys.length > 0 && backboneKeys.every((key) => key.startsWith(prefix))) {
      return { prefix, strip: (key) => (key.startsWith(prefix) ? key.slice(prefix.length) : key) };
    }
  }
  return { prefix: '', strip: (key) => key };
}

const HF_BLOCK_PARTS: ReadonlyArray<readonly [string, string]> = [
  ['layernorm_before', 'norm1'],
  ['attention.output.dense', 'attn.proj'],
  ['layernorm_after', 'norm2'],
  ['intermediate.dense', 'mlp.fc1'],
  ['output.dense', 'mlp.fc2'],
];

const TIMM_TOP_LEVEL = new Set([
  'cls_token',
  'pos_embed',
  'patch_embed.proj.weight',
  'patch_embed.proj.bias',
  'norm.weight',
  'norm.bias',
  'head.weight',
  'head.bias',
]);

const TIMM_BLOCK = /^blocks\.(\d+)\.(norm1|attn\.qkv|attn\.proj|norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)$/;

/** Maps each key of a file to a timm name (or marks it ignored or unknown); reads no data. */
export function planTranslation(fileKeys: readonly string[]): Translation {
  const layout = detectLayout(fileKeys.map((key) => stripPrefix(fileKeys).strip(key)));
  if (!layout) {
    throw new Error(
      'unrecognised checkpoint layout: expected timm/DINO names (patch_embed.proj.weight, blocks.N.attn.qkv.weight, ...) ' +
        'or Hugging Face ViT names (embeddings.patch_embeddings.projection.weight, encoder.layer.N..., ...)',
    );
  }
  const { prefix, strip } = stripPrefix(fileKeys);
  const sources = new Map<string, string[]>();
  const ignored: string[] = [];
  const unknown: string[] = [];
  const add = (timmName: string, fileKey: string) => {
    const list = sources.get(timmName) ?? [];
    list.push(fileKey);
    sources.set(timmName, list);
  };
  for (const fileKey of fileKeys) {
    const key = strip(fileKey);
    if (layout === 'timm') {
      if (TIMM_TOP_LEVEL.has(key) || TIMM_BLOCK.test(key)) add(key, fileKey);
      else unknown.push(fileKey);
      continue;
    }
    const simple: Record<string, string> = {
      'embeddings.cls_token': 'cls_token',
      'embeddings.position_embeddings': 'pos_embed',
      'embeddings.patch_embeddings.projection.weight': 'patch_embed.proj.weight',
      'embeddings.patch_embeddings.projection.bias': 'patch_embed.proj.bias',
      'layernorm.weight': 'norm.weight',
      'layernorm.bias': 'norm.bias',
      'classifier.weight': 'head.weight',
      'classifier.bias': 'head.bias',
    };
    if (simple[key]) {
      add(simple[key], fileKey);
      continue;
    }
    if (key.startsWith('pooler.')) {
      ignored.push(fileKey);
      continue;
    }
    const match = /^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$/.exec(key);
    if (!match) {
      unknown.push(fileKey);
      continue;
    }
    const [, index, part, kind] = match;
    const qkv = /^attention\.attention\.(query|key|value)$/.exec(part);
    if (qkv) {
      // Added in q, k, v order whatever the file's order, so the fused rows come out right.
      continue;
    }
    const known = HF_BLOCK_PARTS.find(([hfName]) => hfName === part);
    if (known) add(`blocks.${index}.${known[1]}.${kind}`, fileKey);
    else unknown.push(fileKey);
  }
  if (layout === 'huggingface') {
    const indices = new Set<string>();
    for (const fileKey of fileKeys) {
      const match = /^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$/.exec(strip(fileKey));
      if (match) indices.add(`${match[1]}|${match[3]}`);
    }
    for (const entry of [...indices].sort()) {
      const [index, kind] = entry.split('|');
      for (const part of ['query', 'key', 'value']) {
        const fileKey = `${prefix}encoder.layer.${index}.attention.attention.${part}.${kind}`;
        if (!fileKeys.includes(fileKey)) {
          throw new Error(`Hugging Face layout: '${fileKey}' is missing (query, key and value must all be present to form blocks.${index}.attn.qkv.${kind})`);
        }
        add(`blocks.${index}.attn.qkv.${kind}`, fileKey);
      }
    }
  }
  return { layout, strippedPrefix: prefix, sources, ignored, unknown };
}

/** Reads the tensors a translation names and fuses split q/k/v along the output axis. */
export function translateToTimm(translation: Translation, read: (fileKey: string) => RawTensor): StateDict {
  const state: StateDict = new Map();
  for (const [timmName, fileKeys] of translation.sources) {
    const parts = fileKeys.map((fileKey) => ({ fileKey, tensor: read(fileKey) }));
    if (parts.length === 1) {
      state.set(timmName, parts[0].tensor);
      continue;
    }
    const [first] = parts;
    const rest = first.tensor.shape.slice(1).join();
    for (const { fileKey, tensor } of parts) {
      if (tensor.shape.slice(1).join() !== rest) {
        throw new Error(`'${fileKey}' has shape [${tensor.shape}], which cannot be stacked with '${first.fileKey}' [${first.tensor.shape}] into ${timmName}`);
      }
    }
    const rows = parts.reduce((sum, { tensor }) => sum + tensor.shape[0], 0);
    const data = new Float32Array(parts.reduce((sum, { tensor }) => sum + tensor.data.length, 0));
    let offset = 0;
    for (const { tensor } of parts) {
      data.set(tensor.data, offset);
      offset += tensor.data.length;
    }
    state.set(timmName, { shape: [rows, ...first.tensor.shape.slice(1)], data });
  }
  return state;
}
