/** One rule for every wrapping error: MapError and GuestError copy code, errno and ioctl from their cause alike. */
import { describe, expect, it } from 'vitest';
import { GuestError, KvmError, MapError, SystemError, VfioError } from '../../src/index.js';

describe('causeFacts, through MapError.fromStep and GuestError.wrap', () => {
  const causes = [
    new SystemError({ errno: 17, syscall: 'ioctl', ioctl: 'KVM_SET_USER_MEMORY_REGION', fd: 5 }),
    new KvmError('slot refused', { code: 'EEXIST', errno: 17, ioctl: 'KVM_SET_USER_MEMORY_REGION' }),
    new VfioError('region read failed', { code: 'EIO', errno: 5 }),
  ];

  it('copies the code, errno and ioctl of a cause that carries them, whichever layer threw it', () => {
    for (const cause of causes) {
      const mapped = MapError.fromStep(cause, 'move', 0, 0x1000n, []);
      const guest = GuestError.wrap(cause, 'BAR0 write', { bdf: '0000:00:01.0' });
      expect(mapped.code).toBe(cause.code);
      expect(guest.code).toBe(cause.code);
      expect(mapped.errno).toBe(cause.errno);
      expect(guest.errno).toBe(cause.errno);
      expect(guest.ioctl).toBe(cause.ioctl);
      expect(mapped.cause).toBe(cause);
      expect(guest.message).toContain(cause.message);
    }
  });

  it('a foreign throw is UNKNOWN with no errno', () => {
    const mapped = MapError.fromStep('boom', 'move', 1, undefined, []);
    const guest = GuestError.wrap(new TypeError('bad'), 'config write', { bdf: '0000:00:01.0' });
    expect([mapped.code, mapped.errno, mapped.message]).toEqual(['UNKNOWN', undefined, 'move failed for BAR1: boom']);
    expect([guest.code, guest.errno, guest.message]).toEqual(['UNKNOWN', undefined, 'config write: bad']);
  });
});
