// The VFIO cdev + iommufd edge cases, run once against the real Linux 6.12 kernel (in the emulated guest)
// and once against the fake kernel (test/vfio/iommufd-cdev.test.ts), both compared with one table of
// answers (test/fake/iommufd-rules.ts, LINUX_612_CDEV_ANSWERS): the fake must answer as the kernel does.
// Plain JavaScript without imports: the caller hands in the Syscalls and the uapi encoders it has.

const O_RDWR = 2;
const DMA_BUF = 11;

/** errno of a call that threw a SystemError, 0 when it succeeded. Anything else is a bug: rethrown. */
function errnoOf(call) {
  try {
    call();
    return 0;
  } catch (error) {
    if (typeof error?.errno === 'number') return error.errno;
    throw error;
  }
}

/**
 * Opens `cdev` and `iommu`, walks the bind protocol's edge cases in a fixed order, closes both, and
 * returns the errno (0 = success) of each step by name.
 */
export function probeCdev(sys, uapi, paths) {
  const fd = sys.open(paths.cdev, O_RDWR);
  let iommuFd;
  try {
    iommuFd = sys.open(paths.iommu, O_RDWR);
    const ioctl = (name, arg) => () => sys.ioctl(fd, name, arg);
    const bindWith = (iommufd, flags = 0) => {
      const b = uapi.encodeBindIommufd(iommufd);
      b.writeUInt32LE(flags, 4);
      return ioctl('VFIO_DEVICE_BIND_IOMMUFD', b);
    };
    const feature = (extraFlags = 0) => {
      const b = uapi.encodeDeviceFeatureProbe(DMA_BUF, 'get');
      b.writeUInt32LE(b.readUInt32LE(4) | extraFlags, 4);
      return ioctl('VFIO_DEVICE_FEATURE', b);
    };
    const answers = {};
    answers.regionInfoBeforeBind = errnoOf(ioctl('VFIO_DEVICE_GET_REGION_INFO', uapi.encodeRegionInfo(0)));
    answers.preadBeforeBind = errnoOf(() => sys.pread(fd, Buffer.alloc(4), 7n << 40n));
    answers.attachBeforeBind = errnoOf(ioctl('VFIO_DEVICE_ATTACH_IOMMUFD_PT', uapi.encodeAttachIommufdPt(1)));
    answers.featureBeforeBind = errnoOf(feature());
    answers.bindNonZeroFlags = errnoOf(bindWith(iommuFd, 1));
    answers.bindNegativeFd = errnoOf(bindWith(-1));
    answers.bindNotIommufd = errnoOf(bindWith(fd));
    answers.bind = errnoOf(bindWith(iommuFd));
    answers.secondBind = errnoOf(bindWith(iommuFd));
    answers.attachUnknownId = errnoOf(ioctl('VFIO_DEVICE_ATTACH_IOMMUFD_PT', uapi.encodeAttachIommufdPt(0xfffff)));
    answers.featureDmaBufProbe = errnoOf(feature());
    answers.featureUnknownFlag = errnoOf(feature(1 << 20));
    return answers;
  } finally {
    if (iommuFd !== undefined) sys.close(iommuFd);
    sys.close(fd);
  }
}
