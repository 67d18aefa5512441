// Conntrack table full: nf_conntrack_max is machine-wide (read-only inside child namespaces)
// and caps every namespace's own count. Lowered to a few dozen, R's table fills with
// established (assured, so not early-droppable) flows and the kernel drops new ones
// ("nf_conntrack: table full, dropping packet"; counters drop/early_drop).
import { ADDR } from '../topology.js';
import { deltas, formatDeltas, snapshot } from './kernel.js';
import { fastClose } from './port-exhaustion.js';
import { holdConnect } from './traffic.js';
import type { Load, Scenario } from './types.js';

export interface TableFullOptions {
  /** The lowered global nf_conntrack_max. */
  max?: number;
  /** Flows opened; well past max. */
  flows?: number;
}

export function tableFull(o: TableFullOptions = {}): Scenario {
  const max = o.max ?? 64;
  const flows = o.flows ?? max + 36;
  return {
    name: 'table-full',
    title: 'Conntrack table full',
    story:
      `The global net.netfilter.nf_conntrack_max is lowered to ${max} (restored afterwards, whatever happens). ` +
      `R NATs as usual; the client opens ${flows} TCP connections to ${ADDR.server}:80. ` +
      `The table fills with established flows the kernel may not evict, and it drops every new one.`,
    ipv6: false,
    globalSysctls: { 'net.netfilter.nf_conntrack_max': String(max) },
    watch: {},
    expect: {
      kind: 'conntrack_table_full',
      key: {},
      severity: 'critical',
      capacity: max,
      drops: true,
      resolves: 'after-release',
      flowsExpire: true,
    },
    kernelDrops: async (lab, before) => {
      const d = deltas(before, await snapshot(lab, lab.router));
      return { what: 'drop + early_drop', n: (d.drop ?? 0) + (d.early_drop ?? 0) };
    },
    async setup(lab) {
      await fastClose(lab, lab.router);
      await lab.nft(
        lab.router,
        'table ip nwlab_nat {\n  chain post {\n    type nat hook postrouting priority 100;\n    oifname "r-out" masquerade\n  }\n}\n',
      );
      const srv = lab.spawnPeer(lab.server, ['serve', '--proto', 'tcp', '--port', '80']);
      await srv.ready;
    },
    trigger(lab): Promise<Load> {
      return holdConnect(lab, lab.client, { proto: 'tcp', to: `${ADDR.server}:80`, count: flows, timeoutMs: 2_000 });
    },
    async verifyKernel(lab, before) {
      const after = await snapshot(lab, lab.router);
      const d = deltas(before, after);
      if ((d.drop ?? 0) + (d.early_drop ?? 0) === 0) throw new Error(`kernel did not drop anything (counters: ${formatDeltas(d)})`);
      if (after.count > max) throw new Error(`R holds ${after.count} entries, above nf_conntrack_max ${max}`);
      return [`conntrack -S in R: ${formatDeltas(d)}`, `conntrack -C in R: ${after.count} of nf_conntrack_max ${max}`];
    },
  };
}
