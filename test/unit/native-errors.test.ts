// The addon's failures as the CLI shows them.
import { describe, expect, it } from 'vitest';
import { constants } from 'node:os';
import { NatwatchError } from '../../src/errors.js';
import { loadNative, mapNativeError, type NativeAddon } from '../../src/source/native.js';
import { createNetlinkSource } from '../../src/source/netlink-source.js';
import type { SourceHandlers } from '../../src/source/types.js';

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

  it('refuses NFLOG groups the reader cannot carry before touching the addon', async () => {
    let constructed = 0;
    const addon = { Source: class { constructor() { constructed++; } } } as unknown as NativeAddon;
    const handlers = {} as SourceHandlers;
    const start = (nflogGroups: number[]) => createNetlinkSource({ netns: null, nflogGroups, addon }).start(handlers);
    await expect(start([5, 70000])).rejects.toMatchObject({ code: 'EUSAGE', message: 'NFLOG group 70000 is not a number in 0-65535' });
    await expect(start([1.5])).rejects.toMatchObject({ code: 'EUSAGE' });
    await expect(start(Array.from({ length: 33 }, (_, i) => i))).rejects.toMatchObject({ code: 'EUSAGE', message: '33 NFLOG groups: at most 32 per source' });
    expect(constructed).toBe(0);
  });
});
