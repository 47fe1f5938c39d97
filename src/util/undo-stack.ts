import { ErrorCollector } from './error-collector.js';

/**
 * A stack of undo actions for multi-step acquisition: on failure, everything acquired so far is released
 * in reverse order, and an error during that release never hides the error that caused it.
 */
export class UndoStack {
  readonly #undo: (() => void)[] = [];

  push(undo: () => void): void {
    this.#undo.push(undo);
  }

  /** Runs every undo action, newest first; returns the errors they threw (if any). */
  unwind(): unknown[] {
    const steps = new ErrorCollector();
    while (this.#undo.length > 0) steps.attempt(this.#undo.pop()!);
    return steps.errors;
  }

  /** Forget the actions: ownership passed to the object that was being built. */
  release(): void {
    this.#undo.length = 0;
  }
}
