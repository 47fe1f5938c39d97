import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/cli/main.js';
import { COMMAND_USAGE } from '../../src/cli/usage.js';
import { normalizeBdf } from '../../src/vfio/bdf.js';
import { FakeSysfs, testEnvironment } from './cli-environment.js';

const COMMANDS = ['plan', 'describe', 'inspect', 'map', 'profiles'];

describe('vfio-bars command-line conventions', () => {
  it('--version (and -V) prints the package version', () => {
    const packageJson = path.resolve(import.meta.dirname, '..', '..', 'package.json');
    const { version } = JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) expect(run([flag])).toEqual({ output: `vfio-bars ${version}`, exitCode: 0, stream: 'stdout' });
  });

  it('--help lists every command; COMMAND --help, -h and help COMMAND print that command\'s options, exit 0', () => {
    const overview = run(['--help']);
    expect(overview.exitCode).toBe(0);
    for (const command of COMMANDS) expect(overview.output).toContain(`  ${command} `);
    for (const command of COMMANDS) {
      for (const argv of [[command, '--help'], [command, '-h'], ['help', command], [command, '--bogus', '--help']]) {
        const { output, exitCode, stream } = run(argv);
        expect(exitCode, argv.join(' ')).toBe(0);
        expect(stream).toBe('stdout');
        expect(output).toBe(COMMAND_USAGE[command]);
        expect(output).toMatch(new RegExp(`^usage: vfio-bars ${command}`));
      }
    }
    for (const option of ['--msix', '--iommu', '--dma-map', '--json']) {
      expect(COMMAND_USAGE.inspect).toContain(`  ${option} `);
      expect(COMMAND_USAGE.map).toContain(`  ${option} `);
    }
    expect(COMMAND_USAGE.map).toContain('  --verify ');
  });

  it('every usage error exits 2 on stderr with one clear line and the usage (of the command, when known)', () => {
    using sysfs = new FakeSysfs();
    const env = testEnvironment(sysfs);
    const cases: [string[], string][] = [
      [[], 'usage: vfio-bars COMMAND'],
      [['frobnicate'], 'usage: vfio-bars COMMAND'],
      [['plan'], 'usage: vfio-bars plan'],
      [['plan', '--profile', 'nope'], 'usage: vfio-bars plan'],
      [['plan', '--profile', 'qemu-nvme', '--description', 'x.json'], 'usage: vfio-bars plan'],
      [['plan', '--profile', 'qemu-nvme', '--page-size', 'big'], 'usage: vfio-bars plan'],
      [['plan', '--profile', 'qemu-nvme', '--page-size', '3K'], 'usage: vfio-bars plan'],
      [['plan', '--profile', 'qemu-nvme', '--page-size'], 'usage: vfio-bars plan'],
      [['plan', '--bogus'], 'usage: vfio-bars plan'],
      [['plan', '--profile', 'qemu-nvme', '--bar-gpa', '7=0'], 'usage: vfio-bars plan'],
      [['plan', '--profile', 'qemu-nvme', '--bar-gpa', '0=0x1' + '0'.repeat(20)], 'usage: vfio-bars plan'],
      [['plan', '--profile', 'qemu-nvme', '--msix', 'sideways'], 'usage: vfio-bars plan'],
      [['inspect'], 'usage: vfio-bars inspect'],
      [['inspect', '01:00.0', '02:00.0'], 'usage: vfio-bars inspect'],
      [['inspect', '01:00.0', '--iommu', 'vfio'], 'usage: vfio-bars inspect'],
      [['map', '../etc/passwd'], 'usage: vfio-bars map'],
      [['map', '01:00.0', '--verify=yes'], 'usage: vfio-bars map'],
      [['describe'], 'usage: vfio-bars describe'],
      [['describe', '1:0.0'], 'usage: vfio-bars describe'],
      [['profiles', 'extra'], 'usage: vfio-bars profiles'],
    ];
    for (const [argv, usage] of cases) {
      const { output, exitCode, stream } = run(argv, env);
      expect(exitCode, argv.join(' ')).toBe(2);
      expect(stream).toBe('stderr');
      expect(output.split('\n')[0], argv.join(' ')).toMatch(/^vfio-bars: /);
      expect(output, argv.join(' ')).toContain(usage);
    }
    expect(env.opened).toEqual([]);
  });

  it('a malformed PCI address is a usage error (BAD_BDF) and a 100,000-character one is not echoed in full', () => {
    using sysfs = new FakeSysfs();
    const long = 'a'.repeat(100_000);
    for (const argv of [['inspect', long], ['map', long], ['describe', long], ['plan', '--profile', long], [long], ['plan', `--${long}`]]) {
      const { output, exitCode } = run(argv, testEnvironment(sysfs));
      expect(exitCode).toBe(2);
      expect(output.split('\n')[0]!.length, argv[0]).toBeLessThan(700);
      expect(output.length).toBeLessThan(4_000);
    }
    const { output } = run(['inspect', long], testEnvironment(sysfs));
    expect(output).toMatch(/^vfio-bars: BAD_BDF: invalid PCI address "a{40}"\.\.\. \(100000 characters\)/);
  });

  it('short BDFs as lspci prints them mean domain 0000; upper-case hex is accepted', () => {
    expect(normalizeBdf('01:00.0')).toBe('0000:01:00.0');
    expect(normalizeBdf('3B:1F.7')).toBe('0000:3b:1f.7');
    expect(normalizeBdf('0001:02:03.4')).toBe('0001:02:03.4');
    for (const bad of ['1:00.0', '01:00', '01:20.0', '01:00.8', '0000:01:00.0 ', '', 'x0000:01:00.0']) {
      expect(() => normalizeBdf(bad), bad).toThrow(expect.objectContaining({ code: 'BAD_BDF' }) as Error);
    }
    using sysfs = new FakeSysfs();
    sysfs.bind('0000:01:00.0', 'vfio-pci');
    const env = testEnvironment(sysfs);
    expect(run(['describe', '01:00.0'], env).exitCode).toBe(0);
    expect(env.opened).toEqual(['0000:01:00.0']);
  });

  it('a device held by another driver is named with that driver (sysfs driver link), exit 1, nothing opened', () => {
    using sysfs = new FakeSysfs();
    sysfs.bind('0000:01:00.0', 'nvme');
    sysfs.bind('0000:02:00.0', undefined);
    sysfs.bind('0000:03:00.0', 'mlx5_vfio_pci');
    const env = testEnvironment(sysfs);
    for (const command of ['inspect', 'map', 'describe']) {
      const { output, exitCode } = run([command, '01:00.0'], env);
      expect(exitCode).toBe(1);
      expect(output).toMatch(/^vfio-bars: VfioError WRONG_DRIVER: 0000:01:00.0 is bound to the nvme driver, not vfio-pci: /);
      expect(output).toContain('bind it to vfio-pci first');
    }
    expect(run(['inspect', '02:00.0'], env).output).toMatch(/^vfio-bars: VfioError NO_DRIVER: 0000:02:00.0 is bound to no driver/);
    expect(run(['inspect', '04:00.0'], env).output).toMatch(/^vfio-bars: VfioError NO_SUCH_DEVICE: no PCI device 0000:04:00.0/);
    expect(env.opened).toEqual([]);
    expect(run(['describe', '03:00.0'], env).exitCode).toBe(0);
    expect(env.opened).toEqual(['0000:03:00.0']);
  });

  it('on the real host a missing device exits 1 with a typed one-line error, no stack', () => {
    const { output, exitCode } = run(['inspect', '0000:00:1f.7']);
    expect(exitCode).toBe(1);
    expect(output).toMatch(/^vfio-bars: VfioError (NO_SUCH_DEVICE|WRONG_DRIVER|NO_DRIVER|NO_IOMMU_GROUP): /);
    expect(output).not.toContain('    at ');
  });

  it('long operations report progress on a TTY only, and clear it before the output', () => {
    using sysfs = new FakeSysfs();
    sysfs.bind('0000:01:00.0', 'vfio-pci');
    const tty = testEnvironment(sysfs, { tty: true });
    expect(run(['describe', '01:00.0'], tty).exitCode).toBe(0);
    expect(tty.stderr.written.join('')).toContain('opening 0000:01:00.0');
    expect(tty.stderr.written.at(-1)).toBe('\r\x1b[K');
    const pipe = testEnvironment(sysfs, { tty: false });
    expect(run(['describe', '01:00.0'], pipe).exitCode).toBe(0);
    expect(pipe.stderr.written).toEqual([]);
  });
});
