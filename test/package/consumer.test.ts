// vitpeft as a user's TypeScript project gets it: npm pack, unpacked into a project whose
// tsconfig.json is what `tsc --init` writes (strict, skipLibCheck, nodenext, no decorator flags),
// the examples compiled against the package's declarations and the smallest one run, offline.

import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { REPO_ROOT } from '../helpers/cli';
import { CommandResult, ConsumerProject, PackedPackage, compile, consumerProject, packVitpeft, runCommand } from '../helpers/consumerProject';

const EXAMPLES = path.join(REPO_ROOT, 'examples');
const MOCHA = path.join(REPO_ROOT, 'node_modules', 'mocha', 'bin', 'mocha.js');

describe('vitpeft as a dependency (npm pack, a project made by tsc --init)', function () {
  let packed: PackedPackage;
  let esm: ConsumerProject;
  let compiled: CommandResult;

  before(function () {
    packed = packVitpeft();
    // The examples' own imports: rxjs and csv-stringify; mocha and node's types for the test example.
    esm = consumerProject(packed.tarball, { type: 'module', dependencies: ['rxjs', 'csv-stringify', 'mocha', '@types/mocha', '@types/node'], types: ['node', 'mocha'] });
    for (const file of fs.readdirSync(EXAMPLES).filter((name) => name.endsWith('.ts'))) fs.copyFileSync(path.join(EXAMPLES, file), path.join(esm.folder, file));
    compiled = compile(esm.folder, ['--listFiles']);
  });

  it('packs the built package, its declarations, pipelines, shipped models and wasm kernels, and nothing else', () => {
    for (const file of ['package.json', 'README.md', 'bin/vitpeft.js', 'dist/index.js', 'dist/index.d.ts', 'dist/stages/index.d.ts', 'dist/cli/main.js', 'pipelines/default.json', 'pipelines/split-mnist-supervised.json', 'models/pretrained/vit-digits-0-4.safetensors', 'models/pretrained/vit-digits-0-4-dino.safetensors', 'di/wasm/products.wasm', 'di/wasm/products-single.wasm']) {
      expect(packed.files, file).to.include(file);
    }
    const unwanted = packed.files.filter((file) => /^(test|examples|bench|scripts)\/|^dist\/(test|examples|bench|scripts)\/|\.map$|tsbuildinfo|(?<!\.d)\.ts$/.test(file));
    expect(unwanted, 'tests, examples, sources and maps stay out').to.deep.equal([]);
  });

  it('compiles the examples from the declarations alone: no vitpeft source, no decorator flag, no tfjs-layers', () => {
    const diagnostics = compiled.output.split('\n').filter((line) => /error TS\d+/.test(line));
    expect(diagnostics).to.deep.equal([]);
    expect(compiled.status).to.equal(0);
    const files = compiled.output.split('\n').filter((line) => line.includes('node_modules'));
    const vitpeftFiles = files.filter((file) => fs.realpathSync(file).startsWith(fs.realpathSync(esm.vitpeft)));
    expect(vitpeftFiles.length).to.be.greaterThan(10);
    expect(vitpeftFiles.filter((file) => !file.endsWith('.d.ts'))).to.deep.equal([]);
    expect(files.filter((file) => /tfjs-(layers|converter|data)/.test(file))).to.deep.equal([]);
    expect(fs.readFileSync(path.join(esm.folder, 'tsconfig.json'), 'utf8')).to.not.match(/^\s*"(experimentalDecorators|emitDecoratorMetadata)"/m);
  });

  it('runs the smallest example, a mocha test of two stages, as an ES module', () => {
    const run = runCommand(process.execPath, [MOCHA, '--no-config', 'trainer-stage.test.js'], esm.folder);
    expect(run.status, run.output).to.equal(0);
    expect(run.output).to.match(/3 passing/);
  });

  it("runs the packed command line on the packed model", () => {
    const run = runCommand(process.execPath, [path.join(esm.vitpeft, 'bin', 'vitpeft.js'), 'inspect', path.join(esm.vitpeft, 'models', 'pretrained', 'vit-digits-0-4.safetensors'), '--json'], esm.folder);
    expect(run.status, run.output).to.equal(0);
    expect((JSON.parse(run.output) as { config: { depth: number } }).config.depth).to.equal(6);
  });

  it('serves CommonJS projects too (module node16, as in the original report; and node10 resolution), root and vitpeft/stages', () => {
    const cjs = consumerProject(packed.tarball, { type: 'commonjs', dependencies: ['@types/node'], types: ['node'] });
    // The tsconfig of the report: strict, module node16, no decorator flags.
    const tsconfig = { compilerOptions: { target: 'es2022', module: 'node16', strict: true, esModuleInterop: true, skipLibCheck: true, types: ['node'] } };
    fs.writeFileSync(path.join(cjs.folder, 'tsconfig.json'), JSON.stringify(tsconfig));
    fs.writeFileSync(
      path.join(cjs.folder, 'check.ts'),
      [
        "import { TOKENS, pipeline } from 'vitpeft';",
        "import { DualEvaluator, type EvaluatorStage } from 'vitpeft/stages';",
        'const evaluator: EvaluatorStage = new DualEvaluator();',
        'const composed = pipeline({ evaluator });',
        "console.log(composed.container.resolve(TOKENS.evaluator) === evaluator ? 'resolved' : 'not resolved');",
      ].join('\n'),
    );
    const node16 = compile(cjs.folder);
    expect(node16.status, node16.output).to.equal(0);
    const node10 = compile(cjs.folder, ['--module', 'commonjs', '--moduleResolution', 'node10', '--noEmit']);
    expect(node10.status, node10.output).to.equal(0);
    const run = runCommand(process.execPath, ['check.js'], cjs.folder);
    expect(run.status, run.output).to.equal(0);
    expect(run.output.trim()).to.equal('resolved');
  });
});
