/** `plan --description FILE`: a bounded read, so /dev/zero or a huge file is a clear error, not an exhausted heap. */
import { closeSync, openSync, readSync } from 'node:fs';
import { descriptionFromJSON, type DeviceDescription } from '../index.js';
import { UsageError, quote } from './usage.js';

/** A description of the largest device (6 BARs, thousands of sparse areas) is well under this. */
export const MAX_DESCRIPTION_BYTES = 1 << 20;

/**
 * Reads at most MAX_DESCRIPTION_BYTES + 1 bytes of `file`: one byte more than allowed proves it is too big
 * without reading the rest (a character device never ends).
 * @throws {UsageError} `DESCRIPTION_UNREADABLE`, `DESCRIPTION_TOO_LARGE` or `DESCRIPTION_NOT_JSON`.
 */
export function readDescriptionFile(file: string): DeviceDescription {
  const text = readBounded(file);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new UsageError(`--description ${quote(file)}: not JSON (${reason.slice(0, 200)})`, { code: 'DESCRIPTION_NOT_JSON' });
  }
  return descriptionFromJSON(json);
}

function readBounded(file: string): string {
  const buffer = Buffer.alloc(MAX_DESCRIPTION_BYTES + 1);
  let length = 0;
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    for (let n = -1; n !== 0 && length < buffer.length;) {
      n = readSync(fd, buffer, length, buffer.length - length, null);
      length += n;
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new UsageError(`--description ${quote(file)}: cannot read it (${code})`, { code: 'DESCRIPTION_UNREADABLE' });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  if (length > MAX_DESCRIPTION_BYTES) {
    throw new UsageError(`--description ${quote(file)}: larger than ${MAX_DESCRIPTION_BYTES} bytes, not a device description`, {
      code: 'DESCRIPTION_TOO_LARGE',
    });
  }
  return buffer.toString('utf8', 0, length);
}
