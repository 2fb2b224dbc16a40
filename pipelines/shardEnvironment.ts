// Which shard of a grid this process runs: `--shard i/n` as given, or `--shard auto` read from
// the scheduler that started the process. Slurm job arrays give SLURM_ARRAY_TASK_ID with
// SLURM_ARRAY_TASK_MIN, _MAX and _COUNT (any start index and step: --array=0-9:2 is 5 shards);
// Kubernetes Indexed Jobs give JOB_COMPLETION_INDEX (0-based) but not the number of
// completions, so the count comes from `--shard auto/N` or VITPEFT_SHARDS. A pure function of
// the option's value and the environment, so every scheduler's mapping is tested without one.

/** Shard `index` of `count` (1-based, as `--shard i/n` is written). */
export interface Shard {
  readonly index: number;
  readonly count: number;
}

/** The shard cannot be told from the option and the environment; the message is one line. */
export class ShardError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShardError';
  }
}

export const SHARDS_ENV = 'VITPEFT_SHARDS';

const SLURM = { id: 'SLURM_ARRAY_TASK_ID', min: 'SLURM_ARRAY_TASK_MIN', max: 'SLURM_ARRAY_TASK_MAX', count: 'SLURM_ARRAY_TASK_COUNT', step: 'SLURM_ARRAY_TASK_STEP' } as const;
const KUBERNETES_INDEX = 'JOB_COMPLETION_INDEX';

const LOOKED_FOR = `${SLURM.id} (a Slurm array, with ${SLURM.min}, ${SLURM.max}, ${SLURM.count}) or ${KUBERNETES_INDEX} (a Kubernetes Indexed Job, with --shard auto/N or ${SHARDS_ENV})`;

type Environment = Readonly<Record<string, string | undefined>>;

function wholeNumber(text: string | undefined, what: string, min: number): number | undefined {
  if (text === undefined || text === '') return undefined;
  const value = Number(text.trim());
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min) {
    throw new ShardError(`--shard auto: ${what} is '${text}', expected an integer >= ${min}`);
  }
  return value;
}

function required(env: Environment, name: string): number {
  const value = wholeNumber(env[name], name, 0);
  if (value === undefined) throw new ShardError(`--shard auto: ${SLURM.id} is set but ${name} is not; looked for ${SLURM.id}, ${SLURM.min}, ${SLURM.max}, ${SLURM.count}`);
  return value;
}

function slurmShard(env: Environment): Shard {
  const id = required(env, SLURM.id);
  const min = required(env, SLURM.min);
  const max = required(env, SLURM.max);
  const count = required(env, SLURM.count);
  const given = `${SLURM.id}=${id}, ${SLURM.min}=${min}, ${SLURM.max}=${max}, ${SLURM.count}=${count}`;
  if (count < 1 || max < min || (count > 1 && max === min)) throw new ShardError(`--shard auto: inconsistent Slurm array (${given})`);
  if (count === 1) {
    if (id !== min || id !== max) throw new ShardError(`--shard auto: inconsistent Slurm array (${given})`);
    return { index: 1, count: 1 };
  }
  const span = max - min;
  if (span % (count - 1) !== 0) {
    throw new ShardError(`--shard auto: the Slurm array's task IDs are not evenly spaced (${given}); submit it as --array=A-B or --array=A-B:STEP`);
  }
  const step = span / (count - 1);
  // Slurm sets the step of --array=A-B:S; for a list (--array=0,2,4) it sets 1 whatever the spacing.
  const stated = wholeNumber(env[SLURM.step], SLURM.step, 1);
  if (stated !== undefined && stated !== step && stated !== 1) {
    throw new ShardError(`--shard auto: inconsistent Slurm array (${given}, ${SLURM.step}=${stated}; expected step ${step})`);
  }
  if (id < min || id > max || (id - min) % step !== 0) {
    throw new ShardError(`--shard auto: ${SLURM.id}=${id} is not one of the array's IDs ${min}, ${min + step}, ..., ${max} (${given})`);
  }
  return { index: (id - min) / step + 1, count };
}

function kubernetesShard(env: Environment, count: number | undefined): Shard {
  const index = wholeNumber(env[KUBERNETES_INDEX], KUBERNETES_INDEX, 0)!;
  if (count === undefined) {
    throw new ShardError(`--shard auto: ${KUBERNETES_INDEX}=${index} (a Kubernetes Indexed Job) gives no shard count: use --shard auto/N or set ${SHARDS_ENV} to the Job's completions`);
  }
  if (index >= count) throw new ShardError(`--shard auto: ${KUBERNETES_INDEX}=${index} is not below the shard count ${count} (completion indexes run from 0 to count-1)`);
  return { index: index + 1, count };
}

/**
 * The shard that `--shard VALUE` names: `i/n` as written (1 <= i <= n), or `auto` / `auto/N`
 * from the scheduler's environment (N, or VITPEFT_SHARDS, must then agree with a Slurm array's count).
 */
export function resolveShard(value: string, env: Environment): Shard {
  const text = value.trim();
  const explicit = /^(\d+)\/(\d+)$/.exec(text);
  if (explicit) {
    const index = Number(explicit[1]);
    const count = Number(explicit[2]);
    if (count < 1 || index < 1 || index > count) throw new ShardError(`--shard: expected i/n with 1 <= i <= n (e.g. 2/4), got '${value}'`);
    return { index, count };
  }
  const auto = /^auto(?:\/(\d+))?$/.exec(text);
  if (!auto) throw new ShardError(`--shard: expected i/n with 1 <= i <= n (e.g. 2/4), auto or auto/N, got '${value}'`);
  const fromOption = auto[1] === undefined ? undefined : Number(auto[1]);
  if (fromOption === 0) throw new ShardError(`--shard auto/N: N must be at least 1, got '${value}'`);
  const fromEnvironment = wholeNumber(env[SHARDS_ENV], SHARDS_ENV, 1);
  if (fromOption !== undefined && fromEnvironment !== undefined && fromOption !== fromEnvironment) {
    throw new ShardError(`--shard ${text} disagrees with ${SHARDS_ENV}=${fromEnvironment}`);
  }
  const expected = fromOption ?? fromEnvironment;
  // A variable set to nothing (`export X=`) counts as unset.
  const inSlurm = (env[SLURM.id] ?? '') !== '';
  const inKubernetes = (env[KUBERNETES_INDEX] ?? '') !== '';
  if (inSlurm && inKubernetes) throw new ShardError(`--shard auto: both ${SLURM.id} and ${KUBERNETES_INDEX} are set; run under one scheduler, or give --shard i/n`);
  if (inKubernetes) return kubernetesShard(env, expected);
  if (!inSlurm) throw new ShardError(`--shard auto: no scheduler shard in the environment; looked for ${LOOKED_FOR}`);
  const shard = slurmShard(env);
  if (expected !== undefined && expected !== shard.count) {
    throw new ShardError(`--shard auto: the Slurm array has ${shard.count} tasks but ${fromOption !== undefined ? `--shard ${text}` : `${SHARDS_ENV}=${expected}`} expects ${expected}`);
  }
  return shard;
}
