export * from './types.js';
export { PlanError } from './errors.js';
export { planBarMappings, replan } from './planner.js';
export { replanBar } from './replan-bar.js';
export { locateInBar, locateGpa } from './locate.js';
export { checkPlanInvariants } from './invariants.js';
export { planToJSON, planFromJSON } from './json.js';
export { validateDescription, validatePlan, validateBarPlacement, planViolations, DESCRIPTION_LIMITS, PLAN_LIMITS } from './validate.js';
