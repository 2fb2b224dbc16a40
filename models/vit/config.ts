// The architecture of a Vision Transformer, and the standard presets.

export interface VitConfig {
  /** Side of the square input image the position embeddings were made for. */
  readonly imageSize: number;
  readonly patchSize: number;
  readonly inChannels: number;
  /** Embedding width (timm: embed_dim). */
  readonly width: number;
  /** Number of transformer blocks, added blocks included. */
  readonly depth: number;
  readonly heads: number;
  /** Hidden width of the MLP (timm: mlp_ratio * embed_dim). */
  readonly mlpHidden: number;
  /** Classes of the linear head; 0 means no head. */
  readonly numClasses: number;
  readonly layerNormEps: number;
}

export const VIT_PRESETS = {
  'vit-ti16': { width: 192, depth: 12, heads: 3 },
  'vit-s16': { width: 384, depth: 12, heads: 6 },
  'vit-b16': { width: 768, depth: 12, heads: 12 },
  'vit-l16': { width: 1024, depth: 24, heads: 16 },
} as const;

export type VitPresetName = keyof typeof VIT_PRESETS;

export function isPresetName(name: string): name is VitPresetName {
  return Object.prototype.hasOwnProperty.call(VIT_PRESETS, name);
}

/** A preset's config: patch 16 at 224 pixels, MLP ratio 4, timm's LayerNorm eps. */
export function presetConfig(name: string, overrides: Partial<VitConfig> = {}): VitConfig {
  if (!isPresetName(name)) {
    throw new Error(`unknown architecture '${name}' (expected one of ${Object.keys(VIT_PRESETS).join(', ')})`);
  }
  const preset = VIT_PRESETS[name];
  return validateConfig({
    imageSize: 224,
    patchSize: 16,
    inChannels: 3,
    width: preset.width,
    depth: preset.depth,
    heads: preset.heads,
    mlpHidden: 4 * preset.width,
    numClasses: 0,
    layerNormEps: 1e-6,
    ...overrides,
  });
}

export function gridSize(config: Pick<VitConfig, 'imageSize' | 'patchSize'>): number {
  return config.imageSize / config.patchSize;
}

/** Checks the config's internal consistency; returns it unchanged. */
export function validateConfig(config: VitConfig): VitConfig {
  const positive = ['imageSize', 'patchSize', 'inChannels', 'width', 'depth', 'heads', 'mlpHidden'] as const;
  for (const key of positive) {
    if (!Number.isInteger(config[key]) || config[key] <= 0) throw new Error(`architecture: ${key} must be a positive integer, got ${config[key]}`);
  }
  if (!Number.isInteger(config.numClasses) || config.numClasses < 0) {
    throw new Error(`architecture: numClasses must be a non-negative integer, got ${config.numClasses}`);
  }
  if (config.imageSize % config.patchSize !== 0) {
    throw new Error(`architecture: imageSize ${config.imageSize} is not a multiple of patchSize ${config.patchSize}`);
  }
  if (config.width % config.heads !== 0) {
    throw new Error(`architecture: width ${config.width} is not divisible by heads ${config.heads}`);
  }
  if (!(config.layerNormEps > 0)) throw new Error(`architecture: layerNormEps must be positive, got ${config.layerNormEps}`);
  return config;
}
