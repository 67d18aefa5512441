// NFLOG groups chosen from the ruleset are best effort: a group another program holds does not
// fail start(), is reported once, and is retried every 30 s by default until it binds. Groups
// asked for explicitly must bind. Driven through a stand-in addon and fake timers.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { constants } from 'node:os';
import { createNetlinkSource, NFLOG_RETRY_MS } from '../../src/source/netlink-source.js';
import type { NativeAddon, NativeSourceOptions } from '../../src/source/native.js';
import type { SourceHandlers } from '../../src/source/types.js';
import { NatwatchError } from '../../src/errors.js';

const EBUSY = constants.errno.EBUSY; // what an older kernel answers for a held group

/** An addon whose groups in `held` are held by another program until released. */
function fakeAddon(held: Set<number>) {
  const binds: number[] = [];
  const addon = {
    Source: class {
      constructor(private readonly o: NativeSourceOptions) {}
      start() {
        return { conntrack: 0, nflog: 0, groups: this.o.nflogGroups.map((group) => ({ group, errno: held.has(group) ? EBUSY : 0 })) };
      }
      bindNflog(group: number) {
        binds.push(group);
        return held.has(group) ? EBUSY : 0;
      }
      resync() {}
      setUpdates() {}
      readStats(): Buffer { throw new Error('unused'); }
      readSysctls() { return { max: null, buckets: null, portRange: null, reserved: null }; }
      ref() {}
      unref() {}
      close() {}
    },
  } as unknown as NativeAddon;
  return { addon, binds };
}

function handlers() {
  const said = { warn: [] as string[], errors: [] as Error[] };
  const h: SourceHandlers = {
    conntrack() {}, nflog() {}, loss() {}, dumpBegin() {}, dumpEnd() {},
    error: (e) => said.errors.push(e),
    warn: (m) => said.warn.push(m),
  };
  return { h, said };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('NFLOG groups, best effort', () => {
  it('runs without a held ruleset group, says so once, and retries every 30 s until it binds', async () => {
    vi.useFakeTimers();
    const held = new Set([7]);
    const { addon, binds } = fakeAddon(held);
    const src = createNetlinkSource({ netns: null, nflogGroups: [5, 7], nflogBestEffort: true, addon });
    const { h, said } = handlers();
    await src.start(h);
    expect(NFLOG_RETRY_MS).toBe(30_000);
    expect(src.nflogGroups()).toEqual([
      { group: 5, bound: true, reason: null },
      { group: 7, bound: false, reason: 'held by another program' },
    ]);
    expect(said.warn).toEqual(['NFLOG group 7 is held by another program (ulogd?): running without its packets, retrying the bind every 30 s']);
    vi.advanceTimersByTime(29_999);
    expect(binds).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(binds).toEqual([7]);
    vi.advanceTimersByTime(30_000);
    expect(binds).toEqual([7, 7]);
    expect(said.warn).toHaveLength(1); // one warning, not one per retry
    held.delete(7); // ulogd stops
    vi.advanceTimersByTime(30_000);
    expect(binds).toEqual([7, 7, 7]);
    expect(src.nflogGroups()[1]).toEqual({ group: 7, bound: true, reason: null });
    expect(said.warn.at(-1)).toBe('NFLOG group 7 is bound now (the other program let go)');
    vi.advanceTimersByTime(120_000);
    expect(binds).toHaveLength(3); // nothing left to retry
    await src.close();
  });

  it('an explicit group held elsewhere is still a one-line EGROUPBUSY error', async () => {
    const { addon } = fakeAddon(new Set([7]));
    const src = createNetlinkSource({ netns: null, nflogGroups: [7], addon });
    const err = await src.start(handlers().h).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatwatchError);
    expect((err as NatwatchError).code).toBe('EGROUPBUSY');
    expect((err as Error).message).toBe('NFLOG group 7 is already bound by another program (ulogd?)');
  });

  it('stops retrying when closed', async () => {
    vi.useFakeTimers();
    const { addon, binds } = fakeAddon(new Set([7]));
    const src = createNetlinkSource({ netns: null, nflogGroups: [7], nflogBestEffort: true, nflogRetryMs: 1000, addon });
    await src.start(handlers().h);
    vi.advanceTimersByTime(1000);
    expect(binds).toEqual([7]);
    await src.close();
    vi.advanceTimersByTime(10_000);
    expect(binds).toEqual([7]);
  });
});
