/** The bench pins both sides of a slot case to one CPU: the main thread's pinning takes and comes undone. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pinThread } from '../../bench/affinity.js';

const allowed = (): string => /Cpus_allowed_list:\s+(\S+)/.exec(readFileSync('/proc/thread-self/status', 'utf8'))![1]!;

describe('pinThread', () => {
  it('pins the calling thread to one CPU and lets it run anywhere again', () => {
    const before = allowed();
    pinThread(0);
    try {
      expect(allowed()).toBe('0');
    } finally {
      pinThread(undefined);
    }
    expect(allowed()).toBe(before);
    expect(() => pinThread(-1)).toThrow(RangeError);
  });
});
