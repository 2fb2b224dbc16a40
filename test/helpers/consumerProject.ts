// A TypeScript project that depends on vitpeft as a user's would: the package packed by npm pack,
// unpacked into the project's node_modules, and a tsconfig.json written by `tsc --init`.
//
// Dependencies are not installed from the registry: each package the consumer or vitpeft's packed
// package.json names is linked to this checkout's node_modules (the exact versions npm ci put
// there). `npm ci` leaves npm's cache without package metadata, so `npm install --offline` cannot
// resolve the ranges, and an online install fetches the registry and runs the optional
// @tensorflow/tfjs-node install scripts, which download TensorFlow; linking takes a second and
// needs no network. Only the named packages are linked, so a package vitpeft loads without
// declaring it fails to resolve here.

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { REPO_ROOT } from './cli';
import { tempFolder } from './datasetFixtures';

export interface CommandResult {
  readonly status: number | null;
  readonly stdout: string;
  /** stdout and stderr together. */
  readonly output: string;
}

/** Runs a command; its stdout and stderr together. */
export function runCommand(command: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): CommandResult {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, output: `${result.stdout}${result.stderr}` };
}

export interface PackedPackage {
  readonly tarball: string;
  /** Paths inside the package, as npm pack lists them. */
  readonly files: readonly string[];
  readonly size: number;
}

/** npm pack of this checkout's current build (dist/ as `npm test` just compiled it: no prepare). */
export function packVitpeft(): PackedPackage {
  const destination = tempFolder('vitpeft-pack-');
  const packed = runCommand('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', destination], REPO_ROOT, { npm_config_loglevel: 'error' });
  if (packed.status !== 0) throw new Error(`npm pack failed:\n${packed.output}`);
  const [report] = JSON.parse(packed.stdout) as Array<{ filename: string; size: number; files: Array<{ path: string }> }>;
  return { tarball: path.join(destination, report.filename), files: report.files.map((file) => file.path), size: report.size };
}

function link(nodeModules: string, name: string): void {
  const target = path.join(REPO_ROOT, 'node_modules', name);
  const at = path.join(nodeModules, name);
  if (fs.existsSync(at)) return;
  if (!fs.existsSync(target)) throw new Error(`${name}: not in ${path.join(REPO_ROOT, 'node_modules')} (run npm ci)`);
  fs.mkdirSync(path.dirname(at), { recursive: true });
  fs.symlinkSync(target, at, 'dir');
}

export interface ConsumerProject {
  readonly folder: string;
  /** The unpacked vitpeft package. */
  readonly vitpeft: string;
}

/**
 * A project (package.json with the given type, tsconfig.json from `tsc --init` with `types`
 * set as its own comment says to for Node) with vitpeft unpacked from the tarball and the given
 * packages of its own linked.
 */
export function consumerProject(tarball: string, options: { type: 'module' | 'commonjs'; dependencies: readonly string[]; types: readonly string[] }): ConsumerProject {
  const folder = tempFolder('vitpeft-consumer-');
  const nodeModules = path.join(folder, 'node_modules');
  fs.mkdirSync(nodeModules);
  const unpacked = runCommand('tar', ['-xzf', tarball, '-C', nodeModules], folder);
  if (unpacked.status !== 0) throw new Error(`tar failed:\n${unpacked.output}`);
  const vitpeft = path.join(nodeModules, 'vitpeft');
  fs.renameSync(path.join(nodeModules, 'package'), vitpeft);
  const manifest = JSON.parse(fs.readFileSync(path.join(vitpeft, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const name of [...Object.keys(manifest.dependencies), ...options.dependencies]) link(nodeModules, name);
  fs.writeFileSync(path.join(folder, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: options.type, dependencies: { vitpeft: `file:${tarball}` } }, null, 2));
  const init = runCommand(process.execPath, [path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '--init'], folder);
  if (init.status !== 0) throw new Error(`tsc --init failed:\n${init.output}`);
  const tsconfig = path.join(folder, 'tsconfig.json');
  const text = fs.readFileSync(tsconfig, 'utf8');
  if (!text.includes('"types": [],')) throw new Error(`${tsconfig}: tsc --init no longer writes "types": [], (update this helper)`);
  fs.writeFileSync(tsconfig, text.replace('"types": [],', `"types": ${JSON.stringify(options.types)},`));
  return { folder, vitpeft };
}

/** Compiles the project with the checkout's TypeScript; `args` are added (e.g. --listFiles). */
export function compile(folder: string, args: readonly string[] = []): CommandResult {
  return runCommand(process.execPath, [path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', folder, ...args], folder);
}
