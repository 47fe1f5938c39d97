/**
 * Release paths try every step even when one fails (a failed DMA unmap must not keep the mmap alive):
 * each step's error is kept in order, none stops the others, and the caller decides what to throw.
 */
export class ErrorCollector {
  /** The errors the attempted steps threw, in the order they ran. */
  readonly errors: unknown[] = [];

  /** Runs `step`; an error it throws is recorded instead of propagated. */
  attempt(step: () => void): void {
    try {
      step();
    } catch (error) {
      this.errors.push(error);
    }
  }
}
