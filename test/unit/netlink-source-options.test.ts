// What NetlinkSource asks of the addon: conntrack UPDATE off unless asked for, and the longer
// hand-off window while only tracking (no event reader), unless a window was given explicitly.
import { describe, expect, it } from 'vitest';
import { createNetlinkSource } from '../../src/source/netlink-source.js';
import type { NativeAddon, NativeSourceOptions } from '../../src/source/native.js';

function capture() {
  const seen: { opts?: NativeSourceOptions; updates: boolean[] } = { updates: [] };
  const addon = {
    Source: class {
      constructor(o: NativeSourceOptions) {
        seen.opts = o;
      }
      start() { return { conntrack: 0, nflog: 0, groups: [] }; }
      setUpdates(on: boolean) { seen.updates.push(on); }
      close() {}
    },
  } as unknown as NativeAddon;
  return { addon, seen };
}

const h = { conntrack() {}, nflog() {}, loss() {}, dumpBegin() {}, dumpEnd() {}, error() {} };

describe('NetlinkSource options', () => {
  it('tracks without UPDATE and with a 100 ms window; UPDATE on demand', async () => {
    const { addon, seen } = capture();
    const src = createNetlinkSource({ netns: null, addon });
    await src.start(h);
    expect(seen.opts).toMatchObject({ updates: false, batchMs: 5, quietBatchMs: 100 });
    src.setUpdates(true);
    src.setUpdates(true); // no change, no call
    src.setUpdates(false);
    expect(seen.updates).toEqual([true, false]);
    await src.close();
  });

  it('an explicit window holds in both modes; updates asked for up front', async () => {
    const { addon, seen } = capture();
    const src = createNetlinkSource({ netns: null, addon, batchMs: 1, updates: true });
    await src.start(h);
    expect(seen.opts).toMatchObject({ updates: true, batchMs: 1, quietBatchMs: 1 });
    await src.close();
  });
});
