// The pipelines that ship with vitpeft, by path (they live in pipelines/ at the package root).

import * as path from 'path';

/** The package root, from this file's place in dist/pipelines/. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

/** Split-MNIST on the shipped self-supervised digit ViT: `vitpeft run` with no file, and `npm start`. */
export const DEFAULT_PIPELINE = path.join(PACKAGE_ROOT, 'pipelines', 'default.json');

/** The default's pretrained model: a ViT (width 64, depth 6, patch 7, 28x28) pretrained by DINO on the images of digits 0-4, no labels (PRETRAIN_DINO_DIGITS); the teacher backbone. */
export const DEFAULT_MODEL = path.join(PACKAGE_ROOT, 'models', 'pretrained', 'vit-digits-0-4-dino.safetensors');

/** The same Split-MNIST on a backbone of the same shape pretrained with labels (SUPERVISED_MODEL). */
export const SUPERVISED_PIPELINE = path.join(PACKAGE_ROOT, 'pipelines', 'split-mnist-supervised.json');

/** The same architecture trained with labels on digits 0-4 (PRETRAIN_DIGITS), with its classification head. */
export const SUPERVISED_MODEL = path.join(PACKAGE_ROOT, 'models', 'pretrained', 'vit-digits-0-4.safetensors');

/** The paper's configuration (DINO ViT-B/16, CIFAR-100 at 224, IN-1K k-NN), for a GPU with the data. */
export const PAPER_PIPELINE = path.join(PACKAGE_ROOT, 'pipelines', 'paper.json');

/** How DEFAULT_MODEL is made: `vitpeft pretrain` with no file (about 80 minutes on 2 cores). */
export const PRETRAIN_DINO_DIGITS = path.join(PACKAGE_ROOT, 'pipelines', 'pretrain-dino-digits.json');

/** How SUPERVISED_MODEL is made: `vitpeft pretrain pipelines/pretrain-digits.json`. */
export const PRETRAIN_DIGITS = path.join(PACKAGE_ROOT, 'pipelines', 'pretrain-digits.json');
