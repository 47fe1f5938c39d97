/**
 * `describeKvm`: a describe block for tests that need the real /dev/kvm. Where KVM is not usable it
 * skips with a reason — except under CI (CI=true), where a missing /dev/kvm is a failure: the KVM tier
 * must run there, never silently vanish.
 */
import { accessSync, constants } from 'node:fs';
import { describe, it } from 'vitest';

export function kvmUnavailableReason(): string | undefined {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return undefined;
  } catch (error) {
    return `/dev/kvm is not usable: ${(error as NodeJS.ErrnoException).code ?? String(error)}`;
  }
}

export function describeKvm(name: string, body: () => void): void {
  const reason = kvmUnavailableReason();
  if (reason === undefined) {
    describe(name, body);
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      it('needs /dev/kvm (CI=true: KVM tests must run, not skip)', () => {
        throw new Error(reason);
      });
    });
  } else {
    describe.skip(`${name} (skipped: ${reason})`, body);
  }
}
