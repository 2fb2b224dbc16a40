import { expect } from 'chai';
import { THREADS_ENV, cpuCores, currentBackend, resolveThreads } from '../../di/backend';
import { runCli } from '../helpers/cli';

/** The backend line the command line prints on stderr for a cheap command. */
function backendLine(args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = runCli([...args, 'params', '--arch', 'vit-ti16', '--classes', '10', '--json'], { env: { [THREADS_ENV]: '', ...env } });
  return { status: result.status, line: result.stderr.split('\n').find((line) => line.startsWith('vitpeft:')) ?? '' };
}

describe('backend: wasm threads', () => {
  it('thread count: the explicit request, else VITPEFT_THREADS, else one per CPU core', () => {
    expect(resolveThreads(3, { [THREADS_ENV]: '5' })).to.equal(3);
    expect(resolveThreads(undefined, { [THREADS_ENV]: '5' })).to.equal(5);
    expect(resolveThreads(undefined, { [THREADS_ENV]: ' 2 ' })).to.equal(2);
    expect(resolveThreads(undefined, {})).to.equal(cpuCores());
    expect(resolveThreads(undefined, { [THREADS_ENV]: '' })).to.equal(cpuCores());
    for (const bad of ['0', '-1', '1.5', 'two']) {
      expect(() => resolveThreads(undefined, { [THREADS_ENV]: bad }), bad).to.throw(`VITPEFT_THREADS: expected a positive integer, got '${bad}'`);
    }
    expect(() => resolveThreads(0)).to.throw(/threads: expected a positive integer, got 0/);
  });

  it('the running backend reports its thread count', () => {
    const info = currentBackend();
    expect(info).to.not.equal(undefined);
    if (info!.name === 'wasm') {
      expect(info!.threads).to.be.a('number').and.at.least(1);
      expect(info!.description).to.match(/\d+ threads?/);
    }
  });

  it('vitpeft --threads N and VITPEFT_THREADS set the wasm threads and say so', function () {
    this.timeout(60_000);
    const two = backendLine(['--backend', 'wasm', '--threads', '2']);
    expect(two.status).to.equal(0);
    // Two threads where Node has shared WebAssembly memory (it has since Node 16); otherwise the reason.
    expect(two.line).to.match(/backend wasm \(SIMD, (2 threads|1 thread; 2 requested: .+)\)/);
    expect(backendLine(['--backend', 'wasm', '--threads', '1']).line).to.match(/backend wasm \(SIMD, 1 thread[;)]/);
    expect(backendLine(['--backend', 'wasm'], { [THREADS_ENV]: '1' }).line).to.match(/backend wasm \(SIMD, 1 thread[;)]/);
  });

  it('refuses a bad thread count as a usage error', () => {
    const zero = runCli(['--threads', '0', 'params', '--arch', 'vit-ti16', '--json']);
    expect(zero.status).to.equal(2);
    expect(zero.stderr).to.match(/--threads: expected an integer in \[1, 1024\], got '0'/);
    const env = runCli(['--backend', 'wasm', 'params', '--arch', 'vit-ti16', '--json'], { env: { [THREADS_ENV]: 'many' } });
    expect(env.status).to.equal(2);
    expect(env.stderr).to.match(/VITPEFT_THREADS: expected a positive integer, got 'many'/);
  });
});
