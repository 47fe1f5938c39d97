import { VfioError } from './errors.js';

/** domain:bus:device.function in lowercase hex, exactly as sysfs names it. Nothing else gets near a path. */
const BDF = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/;
/** What people type: `lspci`'s short `01:00.0` (domain 0000 implied), either case. */
const LOOSE_BDF = /^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$/i;
/** Longest text echoed back in an error message: a hostile 100,000-character argument is cut, not repeated. */
const MAX_ECHO = 40;

/**
 * Quotes `text` for an error message, cut to a few dozen characters (with the full length said) so that a
 * huge argument does not flood a terminal or a log.
 */
export function quoteForMessage(text: string, max = MAX_ECHO): string {
  if (text.length <= max) return JSON.stringify(text);
  return `${JSON.stringify(text.slice(0, max))}... (${text.length} characters)`;
}

function badBdf(bdf: unknown, expected: string): VfioError {
  const shown = typeof bdf === 'string' ? quoteForMessage(bdf) : typeof bdf;
  return new VfioError(`invalid PCI address ${shown}: expected ${expected}`, { code: 'BAD_BDF' });
}

/**
 * Checks that `bdf` is a canonical PCI address (`0000:00:01.0`, lowercase hex) and returns it.
 * @throws {VfioError} `BAD_BDF` (the offending text is quoted, cut to 40 characters).
 */
export function validateBdf(bdf: string): string {
  if (typeof bdf !== 'string' || !BDF.test(bdf)) throw badBdf(bdf, 'dddd:bb:dd.f in lowercase hex, e.g. 0000:00:01.0');
  return bdf;
}

/**
 * The canonical form of a PCI address as an operator types it: `01:00.0` (what `lspci` prints) means domain
 * 0000, and hex digits may be upper case. `normalizeBdf('01:00.0')` is `'0000:01:00.0'`.
 * @throws {VfioError} `BAD_BDF` for anything else.
 * @example
 * ```ts
 * using device = VfioDevice.open(normalizeBdf('3B:00.1')); // opens 0000:3b:00.1
 * ```
 */
export function normalizeBdf(text: string): string {
  const match = typeof text === 'string' ? LOOSE_BDF.exec(text) : null;
  if (!match) throw badBdf(text, '[dddd:]bb:dd.f in hex, e.g. 0000:01:00.0 or 01:00.0');
  const [, domain = '0000', bus, device, fn] = match;
  return `${domain}:${bus}:${device}.${fn}`.toLowerCase();
}
