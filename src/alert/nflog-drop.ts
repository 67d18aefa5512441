// nflog_drop: packets logged through NFLOG by the operator's drop rules, per
// {prefix, group, proto, dstIp, dstPort}. Fires on the first packets (drops = packets seen since
// firing), re-sent as the count grows (engine rate limit), resolved after nflogQuietMs without
// packets. Keys are bounded; packets for new keys beyond the bound are counted, not tracked.
import { endpoint } from '../endpoint.js';
import type { NflogKey } from '../types.js';
import type { NflogView } from '../source/types.js';
import { protoName } from '../source/names.js';
import type { Clock } from './clock.js';
import type { AlertSink } from './engine.js';
import type { Thresholds } from './thresholds.js';

interface Entry {
  key: NflogKey;
  pending: number;
  lastMs: number;
}

export class NflogDropRule {
  private readonly keys = new Map<string, Entry>();
  /** Packets not tracked because nflogMaxKeys keys were already live. */
  overflow = 0;

  constructor(
    private readonly engine: AlertSink,
    private readonly clock: Clock,
    private readonly t: Thresholds,
  ) {}

  onBatch(view: NflogView): void {
    const now = this.clock.now();
    const fresh: Entry[] = [];
    for (let i = 0; i < view.count; i++) {
      view.seek(i);
      const prefix = view.prefix();
      const dst = view.dst();
      const id = `${prefix}|${view.group}|${view.proto}|${dst}|${view.dport}`;
      let e = this.keys.get(id);
      if (!e) {
        if (this.keys.size >= this.t.nflogMaxKeys) {
          this.overflow++;
          continue;
        }
        e = { key: { prefix, group: view.group, proto: protoName(view.proto), dstIp: dst, dstPort: view.dport }, pending: 0, lastMs: now };
        this.keys.set(id, e);
        fresh.push(e);
      }
      e.pending++;
      e.lastMs = now;
    }
    // First packets fire at once; growth of known keys goes out on the tick.
    for (const e of fresh) this.flush(e);
  }

  tick(): void {
    const now = this.clock.now();
    for (const [id, e] of this.keys) {
      if (e.pending > 0) this.flush(e);
      else if (now - e.lastMs >= this.t.nflogQuietMs) {
        this.keys.delete(id);
        this.engine.resolve('nflog_drop', keyId(e.key));
      }
    }
  }

  private flush(e: Entry): void {
    const n = e.pending;
    e.pending = 0;
    this.engine.observe('nflog_drop', keyId(e.key), e.key, 'warning', {
      used: null,
      capacity: null,
      dropsDelta: n,
      message: (total) => nflogMessage(e.key, total),
    });
  }
}

const keyId = (k: NflogKey) => `${k.prefix}|${k.group}|${k.proto}|${k.dstIp}|${k.dstPort}`;

function nflogMessage(k: NflogKey, packets: number): string {
  const prefix = k.prefix.trim();
  const rule = prefix ? `the rule logging "${prefix}" (NFLOG group ${k.group})` : `a rule logging to NFLOG group ${k.group}`;
  return `Packets to ${k.proto} ${endpoint(k.dstIp, k.dstPort)} are dropped by ${rule}: ${packets} packet${packets === 1 ? '' : 's'} so far; if this traffic is wanted, change that rule`;
}
