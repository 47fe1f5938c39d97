import { VfioBarsError } from '../errors.js';

/** The planner was given options it cannot plan with (never thrown for a valid device description). */
export class PlanError extends VfioBarsError {
  readonly code: string;
  /** BAR index the problem concerns, when there is one. */
  readonly bar: number | undefined;

  constructor(code: string, message: string, bar?: number) {
    super(message);
    this.code = code;
    this.bar = bar;
  }
}
