import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { parseAllDocuments } from 'yaml';
import { planJobs } from '../../pipelines/job';
import { resolveShard } from '../../pipelines/shardEnvironment';
import { runFolder } from '../../pipelines/shardGrid';
import { loadPipelineFile } from '../../pipelines/spec';
import { REPO_ROOT } from '../helpers/cli';

interface Container {
  command: string[];
  workingDir: string;
  env?: Array<{ name: string; value: string }>;
  volumeMounts: Array<{ name: string; mountPath: string }>;
}
interface Manifest {
  kind: string;
  metadata: { name: string };
  spec: { completionMode?: string; completions?: number; template: { spec: { containers: Container[]; volumes: Array<{ persistentVolumeClaim: { claimName: string } }> } } };
}

const manifests = (file: string): Manifest[] => parseAllDocuments(fs.readFileSync(path.join(REPO_ROOT, 'examples', 'kubernetes', file), 'utf8')).map((doc) => doc.toJS() as Manifest);
const option = (command: string[], name: string) => command[command.indexOf(name) + 1];

describe('examples/kubernetes: an Indexed Job over the jobs, then a merge Job', () => {
  const grid = manifests('grid-job.yaml');
  const job = grid.find((m) => m.kind === 'Job')!;
  const [container] = job.spec.template.spec.containers;
  const pipelineFile = path.join(REPO_ROOT, container.command[3]);

  it('has one completion per job of the pipeline it runs, and tells the pods that count', () => {
    expect(job.spec.completionMode).to.equal('Indexed');
    expect(container.command.slice(0, 3)).to.deep.equal(['node', 'bin/vitpeft.js', 'run']);
    expect(job.spec.completions).to.equal(planJobs(loadPipelineFile(pipelineFile).spec, {}).length);
    expect(container.env?.find((e) => e.name === 'VITPEFT_SHARDS')?.value).to.equal(String(job.spec.completions));
  });

  it('gives pods 0..n-1 the shards 1/n..n/n, resuming their own on a restart', () => {
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
    const count = job.spec.completions!;
    const shards = Array.from({ length: count }, (_, k) => resolveShard(option(container.command, '--shard'), { ...env, JOB_COMPLETION_INDEX: String(k) }));
    expect(shards).to.deep.equal(Array.from({ length: count }, (_, k) => ({ index: k + 1, count })));
    expect(option(container.command, '--resume')).to.equal('auto');
  });

  it('merges the folder the shards write beside, on the same volume', () => {
    const merge = manifests('merge-job.yaml').find((m) => m.kind === 'Job')!;
    const [merger] = merge.spec.template.spec.containers;
    const name = loadPipelineFile(pipelineFile).spec.name;
    expect(merger.command.slice(0, 3)).to.deep.equal(['node', 'bin/vitpeft.js', 'merge']);
    expect(merger.command[3]).to.equal(runFolder(option(container.command, '--out'), name));
    const claim = grid.find((m) => m.kind === 'PersistentVolumeClaim')!.metadata.name;
    for (const manifest of [job, merge]) expect(manifest.spec.template.spec.volumes[0].persistentVolumeClaim.claimName).to.equal(claim);
    expect(merger.volumeMounts).to.deep.equal(container.volumeMounts);
  });
});
