/** Host memory for tests: a memfd mapping standing in for guest RAM, guest code or a device region. */
import { PROT, type HostMapping, type Syscalls } from '../../src/index.js';

/** `size` bytes of a fresh memfd, mapped shared and read-write; the memfd itself is closed (the mapping holds it). */
export function hostMemory(sys: Syscalls, size: bigint, name = 'vfio-bars-test'): HostMapping {
  const fd = sys.memfdCreate(name, 0);
  try {
    sys.ftruncate(fd, size);
    return sys.mmap(fd, 0n, size, PROT.READ | PROT.WRITE);
  } finally {
    sys.close(fd);
  }
}
