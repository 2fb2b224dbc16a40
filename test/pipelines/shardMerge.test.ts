import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { BASELINE } from '../../common/events';
import { readCsv } from '../../stages/reporter/csvLog';
import { ShardGridError, readShardGrid } from '../../pipelines/shardGrid';
import { CliResult, runCli } from '../helpers/cli';
import { PipelineFixture, pipelineFixture } from '../helpers/pipelineFixtures';

/** The environment of task `id` of `sbatch --array=0-5:2` (IDs 0, 2, 4). */
const slurmTask = (id: number) => ({ SLURM_ARRAY_TASK_ID: String(id), SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_MAX: '4', SLURM_ARRAY_TASK_COUNT: '3', SLURM_ARRAY_TASK_STEP: '2' });

const expectOk = (result: CliResult) => expect(result.status, result.stderr).to.equal(0);

/** A shard folder copied elsewhere with its run.json edited, to fake a shard of another grid. */
function editedCopy(from: string, to: string, edit: (record: { pipeline: { train: { lr: number } }; options: { shard: { index: number; count: number } } }) => void): string {
  fs.cpSync(from, to, { recursive: true });
  const file = path.join(to, 'run.json');
  const record = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(record);
  fs.writeFileSync(file, JSON.stringify(record));
  return to;
}

describe('a grid over scheduler tasks: vitpeft run --shard auto, --resume auto, vitpeft merge', function () {
  let fixture: PipelineFixture;
  let out: string;
  let plain: string;
  const shard = (i: number) => path.join(out, `toy-shard${i}of3`);
  const common = ['--no-save-models', '--no-plots', '--seeds', '2'];
  const runTask = (id: number, outRoot: string, extra: string[] = []) =>
    runCli(['--backend', 'wasm', 'run', fixture.file, '--out', outRoot, '--shard', 'auto', '--resume', 'auto', ...common, ...extra], { env: slurmTask(id) });

  before(async () => {
    fixture = await pipelineFixture({
      methods: [{ method: 'linear' }, { method: 'lora', rank: 2 }, { method: 'topk', k: 1 }],
      train: { steps: 2, batchSize: 8, lr: 0.01 },
      evaluate: { every: 0, knn: { k: [5] } },
    });
    out = path.join(fixture.folder, 'grid');
    plain = path.join(fixture.folder, 'plain');
    expectOk(runCli(['--backend', 'wasm', 'run', fixture.file, '--out', plain, ...common]));
    for (const id of [0, 2, 4]) expectOk(runTask(id, out));
  });

  it('runs Slurm array tasks 0, 2, 4 as shards 1/3, 2/3, 3/3, each in its own folder', () => {
    for (const i of [1, 2, 3]) expect(JSON.parse(fs.readFileSync(path.join(shard(i), 'run.json'), 'utf8')).options.shard).to.deep.equal({ index: i, count: 3 });
    // 6 jobs (3 methods x 2 seeds), every third in each shard
    expect(readCsv(path.join(shard(1), 'results.csv')).map((r) => `${r.method}/${r.seed}`)).to.deep.equal([`${BASELINE}/0`, 'linear/0', 'lora-r2/1']);
    expect(readCsv(path.join(shard(3), 'results.csv')).map((r) => `${r.method}/${r.seed}`)).to.deep.equal([`${BASELINE}/0`, 'lora-r2/0', 'top1/1']);
  });

  it('merges shards given out of order into the folder an unsharded run writes: results.csv and summary.csv byte for byte the same', () => {
    const result = runCli(['merge', shard(3), shard(1), shard(2)]);
    expectOk(result);
    const merged = path.join(out, 'toy');
    expect(result.stderr).to.include(`merged 6 job(s) of 'toy' from 3 of 3 shard folder(s) into ${merged}`);
    expect(result.stdout).to.match(/\nlora-r2 .*±/);
    for (const name of ['results.csv', 'summary.csv']) {
      expect(fs.readFileSync(path.join(merged, name), 'utf8'), name).to.equal(fs.readFileSync(path.join(plain, 'toy', name), 'utf8'));
    }
    expect(fs.readFileSync(path.join(merged, 'report.html'), 'utf8'), 'the merged run has its report').to.include('id="vitpeft-history"');
    // evals and metrics: the same rows in the same order (wall times and speeds aside)
    const withoutTimes = (file: string, drop: string) => readCsv(file).map((row) => JSON.stringify({ ...row, [drop]: '' }));
    expect(withoutTimes(path.join(merged, 'evals.csv'), 'seconds')).to.deep.equal(withoutTimes(path.join(plain, 'toy', 'evals.csv'), 'seconds'));
    expect(withoutTimes(path.join(merged, 'metrics.csv'), 'images_per_second')).to.deep.equal(withoutTimes(path.join(plain, 'toy', 'metrics.csv'), 'images_per_second'));
    expect(readCsv(path.join(merged, 'timings.csv'))).to.have.length(6);
    expect(fs.readFileSync(path.join(merged, 'tradeoff.svg'), 'utf8')).to.match(/^<svg/);
    expect(fs.existsSync(path.join(merged, 'run.json')), 'a merged folder is not a resumable run').to.equal(false);
    // `vitpeft merge out/toy`: the shard folders beside it, merged into it again
    fs.rmSync(path.join(merged, 'results.csv'));
    expectOk(runCli(['merge', merged, '--no-plots']));
    expect(fs.readFileSync(path.join(merged, 'results.csv'), 'utf8')).to.equal(fs.readFileSync(path.join(plain, 'toy', 'results.csv'), 'utf8'));
  });

  it('names the missing jobs and the shard folder they need, and merges what there is only with --partial', () => {
    const refused = runCli(['merge', shard(1), shard(3)]);
    expect(refused.status).to.equal(2);
    expect(refused.stderr.trim().split('\n')).to.have.length(1);
    expect(refused.stderr).to.include("2 of 6 jobs of 'toy' have no results: linear seed 1 (shard 2/3: its folder was not given");
    expect(refused.stderr).to.include(`expected ${shard(2)}`);
    const into = path.join(fixture.folder, 'partial');
    const partial = runCli(['merge', shard(1), shard(3), '--partial', '--into', into, '--no-plots']);
    expectOk(partial);
    expect(partial.stderr).to.include('merging 4 of 6 jobs; missing: linear seed 1');
    expect(readCsv(path.join(into, 'results.csv')).map((r) => `${r.method}/${r.seed}`)).to.deep.equal([`${BASELINE}/0`, 'linear/0', 'lora-r2/0', 'lora-r2/1', 'top1/1']);
  });

  it('counts an interrupted job as missing', () => {
    const copy = path.join(fixture.folder, 'interrupted', 'toy-shard2of3');
    fs.cpSync(shard(2), copy, { recursive: true });
    const results = path.join(copy, 'results.csv');
    fs.writeFileSync(results, fs.readFileSync(results, 'utf8').replace(/,ok,\n$/, ',interrupted,interrupted after step 1 of 2\n'));
    const refused = runCli(['merge', shard(1), copy, shard(3)]);
    expect(refused.status).to.equal(2);
    expect(refused.stderr).to.match(/1 of 6 jobs of 'toy' have no results: top1 seed 0 \(shard 2\/3: interrupted in .*interrupted.toy-shard2of3\)/);
  });

  it('refuses shards of another pipeline, another shard count, or the same shard twice', () => {
    const otherLr = editedCopy(shard(2), path.join(fixture.folder, 'other-lr', 'toy-shard2of3'), (record) => (record.pipeline.train.lr = 0.5));
    const otherCount = editedCopy(shard(2), path.join(fixture.folder, 'other-count', 'toy-shard2of4'), (record) => (record.options.shard = { index: 2, count: 4 }));
    const twin = editedCopy(shard(1), path.join(fixture.folder, 'twin', 'toy-shard1of3'), () => undefined);
    expect(() => readShardGrid([shard(1), otherLr, shard(3)])).to.throw(ShardGridError, `${otherLr}: is a shard of another pipeline than ${shard(1)} (different: train.lr)`);
    expect(() => readShardGrid([shard(1), otherCount, shard(3)])).to.throw(ShardGridError, `${otherCount}: is shard 2/4, but ${shard(1)} is one of 3 shards`);
    expect(() => readShardGrid([shard(1), twin, shard(2), shard(3)])).to.throw(ShardGridError, `${twin}: is shard 1/3, as is ${shard(1)}`);
    const result = runCli(['merge', shard(1), fixture.folder]);
    expect(result.status).to.equal(2);
    expect(result.stderr).to.include(`${fixture.folder}: not a shard folder (no run.json)`);
  });

  it('still shows folders of unrelated runs (not shards) as one table', () => {
    const copy = path.join(fixture.folder, 'again', 'toy');
    fs.cpSync(path.join(plain, 'toy'), copy, { recursive: true });
    const merged = path.join(fixture.folder, 'runs.csv');
    const result = runCli(['merge', path.join(plain, 'toy'), copy, '--out', merged]);
    expectOk(result);
    expect(result.stdout).to.include('toy: merged from 2 run folder(s)');
    expect(readCsv(merged)).to.have.length(1 + 12);
    expect(runCli(['merge', path.join(plain, 'toy'), copy, '--partial']).stderr).to.include('--into and --partial merge the shards of a grid');
  });

  it('--resume auto: a requeued task keeps its finished jobs and runs the rest; other options are refused', () => {
    const requeued = path.join(fixture.folder, 'requeued');
    fs.cpSync(shard(2), path.join(requeued, 'toy-shard2of3'), { recursive: true });
    // The task was killed during its last job: no results row (and no checkpoint) for it yet.
    const results = path.join(requeued, 'toy-shard2of3', 'results.csv');
    const complete = fs.readFileSync(results, 'utf8');
    fs.writeFileSync(results, complete.slice(0, complete.trimEnd().lastIndexOf('\n') + 1));
    const again = runTask(2, requeued);
    expectOk(again);
    expect(again.stderr).to.include(`resuming run 'toy' in ${path.join(requeued, 'toy-shard2of3')}`);
    expect(again.stderr.match(/finished before the resume/g)).to.have.length(1);
    expect(fs.readFileSync(results, 'utf8')).to.equal(complete);
    const otherSeeds = runCli(['run', fixture.file, '--out', requeued, '--shard', 'auto', '--resume', 'auto', '--no-save-models', '--seeds', '3'], { env: slurmTask(2) });
    expect(otherSeeds.status).to.equal(2);
    expect(otherSeeds.stderr).to.include(`--resume auto: the run in ${path.join(requeued, 'toy-shard2of3')} was started with another pipeline or options (different: seeds)`);
  });

  it('--list-jobs prints the number of jobs and their names; a shard with no jobs runs nothing', () => {
    const listed = runCli(['run', fixture.file, '--list-jobs', '--seeds', '2']);
    expectOk(listed);
    expect(listed.stdout.split('\n')[0]).to.equal("6 job(s) in 'toy'");
    expect(listed.stdout).to.include('3\tlora-r2\tseed 0\t2 steps');
    const ofShard = runCli(['run', fixture.file, '--list-jobs', '--shard', 'auto/3', '--seeds', '2'], { env: { JOB_COMPLETION_INDEX: '1' } });
    expect(ofShard.stdout.split('\n')[0]).to.equal("2 job(s) in 'toy' in shard 2/3");
    const empty = path.join(fixture.folder, 'empty');
    const idle = runCli(['run', fixture.file, '--out', empty, '--shard', '4/4']);
    expectOk(idle);
    expect(idle.stderr).to.include("shard 4/4 of 'toy' has no jobs");
    expect(fs.existsSync(empty)).to.equal(false);
    const noScheduler = runCli(['run', fixture.file, '--shard', 'auto'], { env: { SLURM_ARRAY_TASK_ID: '', JOB_COMPLETION_INDEX: '' } });
    expect(noScheduler.status).to.equal(2);
    expect(noScheduler.stderr).to.include('--shard auto: no scheduler shard in the environment; looked for SLURM_ARRAY_TASK_ID');
  });
});
