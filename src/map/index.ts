export { BarMapper, type BarMapperOptions, type MappedBar, type MappedRegion, type MapperWarning, type MoveResult } from './bar-mapper.js';
export { hugePfnAlignment, hugePfnBlock, hugePfnPlacement, type HugePfnPlacement } from './huge-pfn.js';
export { MapError, type MapErrorDetails, type MapStep } from './errors.js';
export type { MapperLogger } from './logger.js';
export type { BarParking, ParkCode } from './parking.js';
