export { BarMapper, hugePfnAlignment, type BarMapperOptions, type MappedBar, type MappedRegion, type MoveResult } from './bar-mapper.js';
export { MapError, type MapErrorDetails, type MapStep } from './errors.js';
export type { MapperLogger } from './logger.js';
