import { VfioBarsError } from '../index.js';

/**
 * A command could not do its job for a reason outside the library (a file it cannot write, a self-test layout
 * that does not fit). Exit code 1, like the library's own errors; `code` says which.
 */
export class CliError extends VfioBarsError {
  readonly code: string;

  constructor(message: string, code: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
