// The dataset stage as the pipeline injects it: opening data URIs and streaming batches.

import { Observable } from 'rxjs';
import { injectable } from 'tsyringe';
import { Batch, BatchOptions, batches } from './batches';
import { openDataUri } from './dataUri';
import { DatasetSource } from './source';

export interface DatasetStage {
  /** Opens a data URI (cifar100:DIR:test, mnist:train?classes=0-4, ...); relative paths against baseDir. */
  open(uri: string, options: { baseDir: string }): Promise<DatasetSource>;
  /** Seeded batches with bounded prefetch; each batch is disposed (acknowledged) by its consumer. */
  batches(source: DatasetSource, options: BatchOptions): Observable<Batch>;
}

@injectable()
export class DefaultDatasetStage implements DatasetStage {
  open(uri: string, options: { baseDir: string }): Promise<DatasetSource> {
    return openDataUri(uri, { baseDir: options.baseDir });
  }

  batches(source: DatasetSource, options: BatchOptions): Observable<Batch> {
    return batches(source, options);
  }
}
