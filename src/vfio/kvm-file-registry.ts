/**
 * What opening a device needs from KVM's VFIO pseudo-device: add a group or device file, remove it again.
 * `KvmVfioDevice` (src/kvm/vfio-kvm-device.ts) implements it; vfio/ depends on this contract, not on kvm/.
 */
export interface KvmVfioFileRegistry {
  /** `KVM_DEV_VFIO_FILE_ADD`; adding a file twice only counts it again. */
  addFile(fd: number): void;
  /** Drops one count; the last deletes the file (`KVM_DEV_VFIO_FILE_DEL`). A file not added is a no-op. */
  removeFile(fd: number): void;
}

export function isKvmVfioFileRegistry(value: unknown): value is KvmVfioFileRegistry {
  const candidate = value as Partial<KvmVfioFileRegistry> | null;
  if (typeof candidate !== 'object' || candidate === null) return false;
  return typeof candidate.addFile === 'function' && typeof candidate.removeFile === 'function';
}
