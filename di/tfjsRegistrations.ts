// vitpeft's code and published types use @tensorflow/tfjs-core alone, so a consumer's compiler
// never loads the types of tfjs-layers, -converter or -data. At run time the full
// @tensorflow/tfjs package is still loaded, once, for what its Node build registers on top of the
// core: every op's gradient (training needs them), the chained tensor methods (x.reshape(...))
// and the cpu backend; tfjs-core's own modules for these are ES modules that Node cannot load
// from CommonJS. A require, not an import, keeps it out of the declarations. The package's entry
// points load this module first (through di/backend.ts, and stages/index.ts).

// eslint-disable-next-line @typescript-eslint/no-require-imports
require('@tensorflow/tfjs');

export {};
