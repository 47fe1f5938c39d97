/**
 * The one validation layer for descriptions and plans: `validateDescription` before planning,
 * `validatePlan` on every plan that is returned, read or executed (planBarMappings, replan, planFromJSON,
 * and the mapper's `map`). Both throw typed PlanErrors; `planViolations` lists a plan's defects instead.
 */
export { validateDescription, MAX_32BIT_BAR_SIZE } from './validate-description.js';
export { DESCRIPTION_LIMITS, MAX_MSIX_VECTORS } from '../vfio/description-limits.js';
export { validatePlan, validateBarPlacement, planViolations, PLAN_LIMITS } from './validate-plan.js';
