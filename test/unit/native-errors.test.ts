// The addon's failures as the CLI shows them.
import { describe, expect, it } from 'vitest';
import { constants } from 'node:os';
import { NatwatchError } from '../../src/errors.js';
import { loadNative, mapNativeError } from '../../src/source/native.js';

const sys = (errno: number, syscall: string, group?: number) => Object.assign(new Error(`${syscall}: x`), { errno, syscall, group });
const E = constants.errno;

describe('native errors', () => {
  it('a missing build says how to build it, in one line', () => {
    let err: unknown;
    try {
      loadNative('/nonexistent-natwatch-root/');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NatwatchError);
    expect((err as NatwatchError).code).toBe('ENATIVE');
    expect((err as Error).message).toMatch(/^native addon not built \(.*\): run 'npm rebuild natwatch' or 'npx node-gyp rebuild'/);
    expect((err as Error).message).not.toContain('\n');
  });

  it('maps namespace, privilege and group failures', () => {
    expect(mapNativeError(sys(E.ENOENT, 'open'), '/var/run/netns/lab1').message).toBe("network namespace 'lab1' not found (/var/run/netns/lab1)");
    expect(mapNativeError(sys(E.ENOENT, 'open'), '/tmp/x/ns').message).toBe("network namespace '/tmp/x/ns' not found (/tmp/x/ns)");
    expect((mapNativeError(sys(E.EINVAL, 'setns'), '/etc/hostname') as NatwatchError).code).toBe('ENETNS');
    const perm = mapNativeError(sys(E.EPERM, 'membership'), null) as NatwatchError;
    expect([perm.code, perm.message]).toEqual(['EPERM', 'need CAP_NET_ADMIN to subscribe to conntrack events']);
    const busy = mapNativeError(sys(E.EBUSY, 'nflog-bind', 5), null) as NatwatchError;
    expect([busy.code, busy.message]).toEqual(['EGROUPBUSY', 'NFLOG group 5 is already bound by another program (ulogd?)']);
    expect((mapNativeError(sys(E.ENOMEM, 'socket'), null) as NatwatchError).code).toBe('ERUNTIME');
  });
});
