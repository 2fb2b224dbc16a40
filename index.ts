// The public API of vitpeft for use in code.
export * from './models/vit/config';
export * from './models/vit/visionTransformer';
export * from './models/checkpoint/safetensors';
export * from './models/checkpoint/vitCheckpoint';
export * from './di/backend';
export * from './stages/surgery';
export * from './stages/dataset';
