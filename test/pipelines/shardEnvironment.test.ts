import { expect } from 'chai';
import { ShardError, resolveShard } from '../../pipelines/shardEnvironment';

/** The variables Slurm sets in each task of `sbatch --array=MIN-MAX[:STEP]`. */
function slurmTasks(min: number, max: number, step = 1): Record<string, string>[] {
  const ids: number[] = [];
  for (let id = min; id <= max; id += step) ids.push(id);
  return ids.map((id) => ({
    SLURM_ARRAY_JOB_ID: '41',
    SLURM_ARRAY_TASK_ID: String(id),
    SLURM_ARRAY_TASK_MIN: String(min),
    SLURM_ARRAY_TASK_MAX: String(ids[ids.length - 1]),
    SLURM_ARRAY_TASK_COUNT: String(ids.length),
    SLURM_ARRAY_TASK_STEP: String(step),
  }));
}

const shardsOf = (tasks: Record<string, string>[], value = 'auto') => tasks.map((env) => resolveShard(value, env));

describe('resolveShard: --shard i/n, or auto from the scheduler', () => {
  it('takes i/n as written', () => {
    expect(resolveShard('2/4', {})).to.deep.equal({ index: 2, count: 4 });
    expect(resolveShard(' 1/1 ', { SLURM_ARRAY_TASK_ID: '7' })).to.deep.equal({ index: 1, count: 1 });
  });

  it('refuses i/n out of range and values that are neither i/n nor auto', () => {
    for (const value of ['0/2', '3/2', '1/0', 'two/4', 'auto/x', 'automatic']) {
      expect(() => resolveShard(value, {}), value).to.throw(ShardError, /--shard: expected i\/n with 1 <= i <= n/);
    }
  });

  it('maps a Slurm array 0-2 to shards 1/3, 2/3, 3/3', () => {
    expect(shardsOf(slurmTasks(0, 2))).to.deep.equal([1, 2, 3].map((index) => ({ index, count: 3 })));
  });

  it('maps a Slurm array that starts at 1 (--array=1-4)', () => {
    expect(shardsOf(slurmTasks(1, 4))).to.deep.equal([1, 2, 3, 4].map((index) => ({ index, count: 4 })));
  });

  it('maps a Slurm array with a step (--array=0-9:2 is IDs 0, 2, 4, 6, 8: five shards)', () => {
    const tasks = slurmTasks(0, 9, 2);
    expect(tasks.map((env) => env.SLURM_ARRAY_TASK_ID)).to.deep.equal(['0', '2', '4', '6', '8']);
    expect(shardsOf(tasks)).to.deep.equal([1, 2, 3, 4, 5].map((index) => ({ index, count: 5 })));
  });

  it('maps a Slurm array with a start and a step (--array=5-20:5), and without SLURM_ARRAY_TASK_STEP', () => {
    const tasks = slurmTasks(5, 20, 5).map(({ SLURM_ARRAY_TASK_STEP: _step, ...rest }) => rest);
    expect(shardsOf(tasks)).to.deep.equal([1, 2, 3, 4].map((index) => ({ index, count: 4 })));
  });

  it('maps an evenly spaced Slurm list (--array=0,2,4, for which Slurm sets SLURM_ARRAY_TASK_STEP=1)', () => {
    const tasks = slurmTasks(0, 4, 2).map((env) => ({ ...env, SLURM_ARRAY_TASK_STEP: '1' }));
    expect(shardsOf(tasks)).to.deep.equal([1, 2, 3].map((index) => ({ index, count: 3 })));
  });

  it('maps a one-task array to 1/1', () => {
    expect(shardsOf(slurmTasks(3, 3))).to.deep.equal([{ index: 1, count: 1 }]);
  });

  it('checks a Slurm array against auto/N and VITPEFT_SHARDS', () => {
    const [task] = slurmTasks(0, 2);
    expect(resolveShard('auto/3', task)).to.deep.equal({ index: 1, count: 3 });
    expect(() => resolveShard('auto/4', task)).to.throw(ShardError, '--shard auto: the Slurm array has 3 tasks but --shard auto/4 expects 4');
    expect(() => resolveShard('auto', { ...task, VITPEFT_SHARDS: '2' })).to.throw(ShardError, 'the Slurm array has 3 tasks but VITPEFT_SHARDS=2 expects 2');
  });

  it('maps a Kubernetes Indexed Job (0-based JOB_COMPLETION_INDEX) with the count from auto/N or VITPEFT_SHARDS', () => {
    expect([0, 1, 2].map((i) => resolveShard('auto/3', { JOB_COMPLETION_INDEX: String(i) }))).to.deep.equal([1, 2, 3].map((index) => ({ index, count: 3 })));
    expect(resolveShard('auto', { JOB_COMPLETION_INDEX: '4', VITPEFT_SHARDS: '5' })).to.deep.equal({ index: 5, count: 5 });
    expect(resolveShard('auto/5', { JOB_COMPLETION_INDEX: '0', VITPEFT_SHARDS: '5' })).to.deep.equal({ index: 1, count: 5 });
  });

  it('says which variables it looked for when there is no scheduler', () => {
    expect(() => resolveShard('auto', { SLURM_JOB_ID: '12' })).to.throw(
      ShardError,
      '--shard auto: no scheduler shard in the environment; looked for SLURM_ARRAY_TASK_ID (a Slurm array, with SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_MAX, SLURM_ARRAY_TASK_COUNT) or JOB_COMPLETION_INDEX (a Kubernetes Indexed Job, with --shard auto/N or VITPEFT_SHARDS)',
    );
  });

  it('refuses a Kubernetes index without a count, or not below it', () => {
    expect(() => resolveShard('auto', { JOB_COMPLETION_INDEX: '0' })).to.throw(ShardError, /JOB_COMPLETION_INDEX=0 .* gives no shard count: use --shard auto\/N or set VITPEFT_SHARDS/);
    expect(() => resolveShard('auto/3', { JOB_COMPLETION_INDEX: '3' })).to.throw(ShardError, 'JOB_COMPLETION_INDEX=3 is not below the shard count 3');
    expect(() => resolveShard('auto/3', { JOB_COMPLETION_INDEX: '3', VITPEFT_SHARDS: '4' })).to.throw(ShardError, '--shard auto/3 disagrees with VITPEFT_SHARDS=4');
  });

  it('refuses a Slurm environment that is incomplete, malformed or inconsistent', () => {
    const [first, second] = slurmTasks(0, 9, 2);
    const { SLURM_ARRAY_TASK_COUNT: _count, ...withoutCount } = first;
    expect(() => resolveShard('auto', withoutCount)).to.throw(ShardError, 'SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not');
    expect(() => resolveShard('auto', { ...first, SLURM_ARRAY_TASK_ID: 'x' })).to.throw(ShardError, "SLURM_ARRAY_TASK_ID is 'x', expected an integer >= 0");
    expect(() => resolveShard('auto', { ...second, SLURM_ARRAY_TASK_ID: '3' })).to.throw(ShardError, 'SLURM_ARRAY_TASK_ID=3 is not one of the array\'s IDs 0, 2, ..., 8');
    expect(() => resolveShard('auto', { ...second, SLURM_ARRAY_TASK_ID: '10' })).to.throw(ShardError, /not one of the array's IDs/);
    // --array=0,1,5: three tasks whose IDs no step reaches
    expect(() => resolveShard('auto', { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_MAX: '5', SLURM_ARRAY_TASK_COUNT: '3' })).to.throw(ShardError, /not evenly spaced .* --array=A-B:STEP/);
    expect(() => resolveShard('auto', { ...second, SLURM_ARRAY_TASK_STEP: '3' })).to.throw(ShardError, /inconsistent Slurm array .* expected step 2/);
    expect(() => resolveShard('auto', { ...first, SLURM_ARRAY_TASK_MAX: '0' })).to.throw(ShardError, /inconsistent Slurm array/);
  });

  it('refuses both schedulers at once and a malformed VITPEFT_SHARDS', () => {
    const [task] = slurmTasks(0, 2);
    expect(() => resolveShard('auto', { ...task, JOB_COMPLETION_INDEX: '0' })).to.throw(ShardError, 'both SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX are set');
    expect(() => resolveShard('auto', { JOB_COMPLETION_INDEX: '0', VITPEFT_SHARDS: '0' })).to.throw(ShardError, "VITPEFT_SHARDS is '0', expected an integer >= 1");
    expect(() => resolveShard('auto/0', { JOB_COMPLETION_INDEX: '0' })).to.throw(ShardError, 'N must be at least 1');
  });
});
