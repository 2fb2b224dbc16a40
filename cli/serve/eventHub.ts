// The live feed of a run in this process: the run's events are published here (one call per
// event, no I/O) and handed on to whoever follows the run, at once and in order.

import type { PipelineEvent } from '../../common/events';

/** Something that delivers a run's new events until the returned function is called. */
export interface LiveSource {
  follow(listener: (events: readonly PipelineEvent[]) => void): () => void;
}

export class EventHub implements LiveSource {
  private readonly listeners = new Set<(events: readonly PipelineEvent[]) => void>();

  publish(event: PipelineEvent): void {
    for (const listener of this.listeners) listener([event]);
  }

  follow(listener: (events: readonly PipelineEvent[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
