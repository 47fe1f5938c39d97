import { VfioBarsError } from '../errors.js';

/**
 * The planner was given a description, options or a plan it cannot plan or execute soundly. `code` says
 * which, e.g. (see validateDescription, validatePlan, planBarMappings, replan, planFromJSON for the lists):
 * - options: `BAD_OPTIONS`, `BAD_PAGE_SIZE`, `BAD_MSIX_STRATEGY`, `NO_SUCH_BAR`, `BAD_GUEST_ADDRESS`;
 * - descriptions: `BAD_DESCRIPTION`, `DUPLICATE_INDEX`, `BAR_TOO_LARGE`, `BAR_REGISTERS_INCONSISTENT`, `MSIX_*`;
 * - plans: `BAD_PLAN`, `BAD_PLAN_JSON`, `BAR_WRAPS`, `BAR_ABOVE_4G`, `BARS_OVERLAP`, `BAD_SIZE_MASK`,
 *   `BAD_GUEST_SIZE`, `BAD_MAPPING`, `MAPPING_BEYOND_REGION`, `MAPPING_BEYOND_BAR`, `MAPPINGS_OVERLAP`,
 *   `BAD_GPA`, `MSIX_OUTSIDE_BAR`, `MSIX_MAPPED`, `BAD_COVERAGE`, `BAD_SUSPENDED`, `BAD_ORDER`, `BAD_TRAPPED`;
 * - arithmetic guards: `VALUE_OUT_OF_RANGE`.
 */
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
