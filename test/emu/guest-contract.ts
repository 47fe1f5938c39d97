/**
 * The host↔guest result contract of the emulated tier. The guest (guest/guest-test.mjs) prints exactly one
 * `VFIOBARS-RESULT {json}` line; the host parses it here against a schema whose TypeScript type is derived
 * from the schema itself, so the type the tests assert on and the check the host runs cannot drift apart.
 * A guest that broke the contract fails with the JSON path that is wrong, not with an undefined deep in a test.
 */

/** A runtime check that also carries the TypeScript type it accepts. */
export interface Schema<T> {
  readonly describe: string;
  check(value: unknown, path: string): T;
}
export type Infer<S> = S extends Schema<infer T> ? T : never;

export class ContractError extends Error {
  constructor(readonly path: string, readonly expected: string, readonly actual: unknown) {
    super(`guest result breaks the contract at ${path}: expected ${expected}, got ${JSON.stringify(actual)?.slice(0, 200)}`);
    this.name = 'ContractError';
  }
}

function primitive<T>(describe: string, test: (v: unknown) => boolean): Schema<T> {
  return { describe, check: (v, path) => { if (!test(v)) throw new ContractError(path, describe, v); return v as T; } };
}
export const str = primitive<string>('a string', (v) => typeof v === 'string');
export const num = primitive<number>('a number', (v) => typeof v === 'number' && Number.isFinite(v));
export const bool = primitive<boolean>('a boolean', (v) => typeof v === 'boolean');
/** `0x…` as the guest prints bigints. */
export const hexStr = primitive<string>('a 0x hex string', (v) => typeof v === 'string' && /^0x[0-9a-f]+$/.test(v));
export const unknownValue = primitive<unknown>('anything', () => true);

export function literal<const L extends string>(...values: L[]): Schema<L> {
  return primitive<L>(values.map((v) => JSON.stringify(v)).join(' | '), (v) => values.includes(v as L));
}
/** Exactly `value` (e.g. the `ok` discriminant). */
export function exactly<const T extends boolean>(value: T): Schema<T> {
  return primitive<T>(String(value), (v) => v === value);
}
export function optional<T>(inner: Schema<T>): Schema<T | undefined> & { optional: true } {
  return {
    describe: `${inner.describe} or absent`,
    optional: true,
    check: (v, path) => (v === undefined ? undefined : inner.check(v, path)),
  };
}
export function array<T>(item: Schema<T>): Schema<T[]> {
  return {
    describe: `an array of ${item.describe}`,
    check: (v, path) => {
      if (!Array.isArray(v)) throw new ContractError(path, 'an array', v);
      return v.map((x, i) => item.check(x, `${path}[${i}]`));
    },
  };
}

type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K] extends { optional: true } ? K : never }[keyof S];
type ObjectOf<S extends Shape> =
  { [K in Exclude<keyof S, OptionalKeys<S>>]: Infer<S[K]> } & { [K in OptionalKeys<S>]?: Infer<S[K]> };

/** An object with at least these keys (extra keys are kept: the guest may report more than a test reads). */
export function object<S extends Shape>(shape: S): Schema<ObjectOf<S>> {
  return {
    describe: 'an object',
    check: (v, path) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ContractError(path, 'an object', v);
      const record = v as Record<string, unknown>;
      for (const [key, schema] of Object.entries(shape)) schema.check(record[key], `${path}.${key}`);
      return v as ObjectOf<S>;
    },
  };
}

/** The steps of guest/cdev-probe.mjs, in order. */
export const CDEV_PROBE_STEPS = [
  'regionInfoBeforeBind', 'preadBeforeBind', 'attachBeforeBind', 'featureBeforeBind', 'bindNonZeroFlags', 'bindNegativeFd',
  'bindNotIommufd', 'bind', 'secondBind', 'attachUnknownId', 'featureDmaBufProbe', 'featureUnknownFlag',
] as const;
type CdevStep = (typeof CDEV_PROBE_STEPS)[number];

// ---- the guest's result -----------------------------------------------------------------------

/** What a vCPU saw at a GPA: the value it loaded, or the MMIO exit it caused. */
const vcpuRead = object({ value: optional(hexStr), mmio: optional(hexStr) });
const errorInfo = object({ name: optional(str), code: optional(str), message: str });

const step = object({
  name: str,
  error: optional(errorInfo),
  isKvmError: optional(bool),
  registered: optional(hexStr),
  mapped: optional(hexStr),
  skipped: optional(str),
});

const plan = object({
  guestSize: hexStr,
  mappings: array(object({ size: hexStr, gpa: hexStr, reason: str })),
  trapped: array(object({ offset: hexStr, size: hexStr, kind: str, fileOffset: optional(hexStr), cause: str, reason: str })),
  msix: optional(object({ table: optional(hexStr), pba: optional(hexStr), relocated: bool })),
  warnings: array(object({ bar: num, code: str, message: str })),
});

/** Every guest run reports these, whether it succeeded or not. */
const common = {
  scenario: optional(str),
  /** `process.version` of the Node that ran the guest test. */
  node: str,
  /** `uname -r` of the emulated host. */
  kernel: optional(str),
  iommuRequested: optional(literal('auto', 'iommufd', 'type1', 'noiommu')),
  error: optional(object({ name: optional(str), code: optional(str), message: str, stack: optional(str) })),
};

/** A guest run that mapped the NVMe BAR0 and read it through a nested vCPU. */
export const guestSuccess = object({
  ...common,
  ok: exactly(true),
  pageSize: num,
  iommu: literal('type1', 'type1v2', 'iommufd', 'noiommu'),
  iommuReason: str,
  /** DmaMapper.mmioDmaUnsupported, when the IOMMU cannot DMA-map BARs. */
  mmioDma: optional(object({ code: str, message: str })),
  dmaMap: bool,
  /** guest/cdev-probe.mjs answers (errno per step), where the kernel has a VFIO cdev. */
  cdevProbe: optional(object(Object.fromEntries(CDEV_PROBE_STEPS.map((k) => [k, num])) as Record<CdevStep, Schema<number>>)),
  mapperWarnings: array(str),
  bar0: object({ size: hexStr, flags: num, caps: array(str) }),
  msix: optional(object({ vectors: num, table: hexStr, pba: hexStr, bir: num })),
  description: unknownValue,
  steps: array(step),
  plan,
  slotsAfterMap: num,
  deviceMappingsAfterMap: num,
  host: object({ cap: hexStr, vs: hexStr }),
  guest: object({ cap: vcpuRead, vs: vcpuRead, msixTable: optional(vcpuRead) }),
  move: object({ state: literal('direct', 'trapped'), cap: vcpuRead, old: vcpuRead }),
  afterUnmap: object({ slots: num, mappedBars: num, deviceMappings: num, read: vcpuRead }),
  cli: optional(unknownValue),
  e1000e: optional(unknownValue),
});
export type GuestSuccess = Infer<typeof guestSuccess>;

const guestFailure = object({ ...common, ok: exactly(false) });
export type GuestFailure = Infer<typeof guestFailure>;
export type GuestOutcome = GuestSuccess | GuestFailure;

export const RESULT_PREFIX = 'VFIOBARS-RESULT ';

/**
 * Finds the guest's one result line in its console log and checks it against the contract.
 * @throws ContractError when the line is missing, repeated, not JSON, or does not match the schema.
 */
export function parseGuestResult(log: string): GuestOutcome {
  const lines = log.split('\n').filter((l) => l.startsWith(RESULT_PREFIX));
  if (lines.length !== 1) throw new ContractError('(console)', `exactly one ${RESULT_PREFIX.trim()} line`, `${lines.length} lines`);
  let value: unknown;
  try {
    value = JSON.parse(lines[0]!.slice(RESULT_PREFIX.length));
  } catch {
    throw new ContractError('(console)', 'JSON after the prefix', lines[0]!.slice(0, 200));
  }
  const ok = (value as { ok?: unknown } | null)?.ok;
  if (ok === true) return guestSuccess.check(value, '$');
  if (ok === false) return guestFailure.check(value, '$');
  throw new ContractError('$.ok', 'true or false', ok);
}
