/** Random device descriptions: the planner's generator (registers laid out as real BARs, MSI-X anywhere). */
export { deviceArb } from '../plan/arbitraries.js';
