/**
 * Random device descriptions: the planner's shared generator (test/plan/arbitraries.ts), which lays out
 * real BAR registers (a 64-bit BAR followed by its upper half) and MSI-X structures inside their BARs —
 * the descriptions `validateDescription` accepts.
 */
export { deviceArb } from '../plan/arbitraries.js';
