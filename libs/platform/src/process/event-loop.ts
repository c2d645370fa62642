import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * Long synchronous work split into turns: a loop over many items (the entries of a 1 000-entry
 * Bundle take ~1.5 ms each to validate and index) calls `await turns.pass()` after each item, and
 * every `sliceMs` of work the event loop gets a turn (other requests, health probes, timers).
 * `await` alone does not yield: a resolved promise runs as a microtask, before any I/O.
 */
export class EventLoopTurns {
  private sliceStart = performance.now();

  constructor(private readonly sliceMs = 10) {}

  async pass(): Promise<void> {
    if (performance.now() - this.sliceStart >= this.sliceMs) {
      await nextTurn();
      this.sliceStart = performance.now();
    }
  }
}
