import type { Syscalls } from '../../../src/sys/syscalls.js';
import type * as uapi from '../../../src/uapi/index.js';

/** Step name → errno (0 = success), in the probe's fixed order. */
export type CdevAnswers = Record<
  | 'regionInfoBeforeBind' | 'preadBeforeBind' | 'attachBeforeBind' | 'featureBeforeBind' | 'bindNonZeroFlags' | 'bindNegativeFd'
  | 'bindNotIommufd' | 'bind' | 'secondBind' | 'attachUnknownId' | 'featureDmaBufProbe' | 'featureUnknownFlag',
  number
>;

/** Opens `paths.cdev` and `paths.iommu`, walks the bind protocol's edge cases, closes both. */
export function probeCdev(sys: Syscalls, codecs: typeof uapi, paths: { cdev: string; iommu: string }): CdevAnswers;
