/**
 * The fake kernel's model of IOMMU groups with several devices, as Linux's vfio core behaves:
 * a group node can be open once at a time (a second open is EBUSY, also while KVM's VFIO pseudo-device
 * still holds the file), GROUP_GET_DEVICE_FD gives only the group's own devices and only once the container
 * has an IOMMU, VFIO_SET_IOMMU needs a group and is once only, and a container whose last group leaves
 * forgets its IOMMU type and every DMA mapping.
 */
import { constants } from 'node:os';

const E = constants.errno;

/** One IOMMU group: its number, whether it is a no-IOMMU group, and its devices (with an optional cdev name). */
export interface FakeGroup {
  readonly id: string;
  readonly noiommu?: boolean;
  readonly devices: readonly { readonly bdf: string; readonly cdev?: string }[];
}

export interface GroupFile { kind: 'group'; container?: number; node?: string }
export interface ContainerFile { kind: 'container'; iommuType?: number; dma: Map<bigint, bigint>; groups?: Set<object> }

/** Group nodes and cdev nodes of a topology, keyed by path, with what each path opens. */
export interface TopologyNodes {
  readonly groups: Map<string, FakeGroup>;
  /** cdev node path -> the device's BDF. */
  readonly cdevs: Map<string, string>;
}

type Fail = (errno: number) => never;

export function topologyNodes(groups: readonly FakeGroup[], devRoot: string): TopologyNodes {
  const nodes = new Map<string, FakeGroup>();
  const cdevs = new Map<string, string>();
  for (const group of groups) {
    nodes.set(`${devRoot}/vfio/${group.noiommu ? 'noiommu-' : ''}${group.id}`, group);
    for (const device of group.devices) if (device.cdev) cdevs.set(`${devRoot}/vfio/devices/${device.cdev}`, device.bdf);
  }
  return { groups: nodes, cdevs };
}

/** Group nodes open right now (by fd or held by KVM): a second open of one of these is EBUSY. */
export class GroupOpens {
  readonly #held = new Map<string, number>();

  /** Throws EBUSY (through `fail`) when `node` is open. */
  open(node: string, fail: Fail): void {
    if ((this.#held.get(node) ?? 0) > 0) fail(E.EBUSY);
    this.#held.set(node, 1);
  }

  hold(node: string): void {
    this.#held.set(node, (this.#held.get(node) ?? 0) + 1);
  }

  /** Drops one hold; true when the group file is gone for good (no fd, no KVM reference). */
  release(node: string): boolean {
    const count = (this.#held.get(node) ?? 0) - 1;
    if (count > 0) {
      this.#held.set(node, count);
      return false;
    }
    this.#held.delete(node);
    return true;
  }
}

export function setContainer(group: GroupFile, container: ContainerFile | undefined, containerFd: number, fail: Fail): number {
  if (group.container !== undefined) return fail(E.EINVAL);
  if (!container) return fail(E.EBADF);
  group.container = containerFd;
  (container.groups ??= new Set()).add(group);
  return 0;
}

export function setIommu(container: ContainerFile, type: number, fail: Fail): number {
  if ((container.groups?.size ?? 0) === 0 || container.iommuType !== undefined) return fail(E.EINVAL);
  container.iommuType = type;
  return 0;
}

/** A group file released for good leaves its container; the last one out takes the IOMMU and its DMA maps with it. */
export function detachGroup(group: GroupFile, container: ContainerFile | undefined): void {
  if (!container?.groups?.delete(group)) return;
  if (container.groups.size > 0) return;
  container.iommuType = undefined;
  container.dma.clear();
}

/** GROUP_GET_DEVICE_FD: the name must be one of the group's devices and the container must have an IOMMU. */
export function deviceOfGroup(group: FakeGroup | undefined, name: string, container: ContainerFile | undefined, fail: Fail): string {
  if (!group?.devices.some((d) => d.bdf === name)) return fail(E.ENODEV);
  if (container?.iommuType === undefined) return fail(E.EINVAL);
  return name;
}
