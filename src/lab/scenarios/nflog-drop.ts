// Packets dropped by the operator's own rule, made visible with NFLOG: R's forward chain logs
// TCP to port 9999 to group 5 and drops it. The client's SYNs (and their retransmits) never
// reach B; natwatch reports them by rule prefix and destination.
import { ADDR } from '../topology.js';
import { nftRulePackets } from './kernel.js';
import { holdConnect } from './traffic.js';
import type { Load, Scenario } from './types.js';

/** Exactly as the rule spells it: the kernel hands the prefix over untrimmed, and so do we. */
export const PREFIX = 'blocked-9999 ';
export const GROUP = 5;
const PORT = 9999;

export function nflogDrop(): Scenario {
  return {
    name: 'nflog-drop',
    title: 'Packets dropped by a firewall rule (NFLOG)',
    story:
      `R's forward chain has: tcp dport ${PORT} log prefix "${PREFIX}" group ${GROUP} drop. ` +
      `The client tries ${ADDR.server}:${PORT} three times; every SYN and retransmit is logged to NFLOG group ${GROUP} and dropped.`,
    ipv6: false,
    globalSysctls: {},
    watch: { nflogGroups: [GROUP] },
    expect: {
      kind: 'nflog_drop',
      key: { prefix: PREFIX, group: GROUP, proto: 'tcp', dstIp: ADDR.server, dstPort: PORT },
      severity: 'warning',
      drops: true,
      resolves: 'after-release',
      flowsExpire: false,
    },
    kernelDrops: async (lab) => ({ what: `packets counted by the "${PREFIX.trim()}" rule`, n: await nftRulePackets(lab, lab.router, `dport ${PORT}`) }),
    async setup(lab) {
      await lab.nft(
        lab.router,
        'table inet nwlab_filter {\n  chain nwfwd {\n    type filter hook forward priority 0;\n' +
          `    tcp dport ${PORT} counter log prefix "${PREFIX}" group ${GROUP} drop\n  }\n}\n`,
      );
      const srv = lab.spawnPeer(lab.server, ['serve', '--proto', 'tcp', '--port', String(PORT)]);
      await srv.ready;
    },
    trigger(lab): Promise<Load> {
      return holdConnect(lab, lab.client, { proto: 'tcp', to: `${ADDR.server}:${PORT}`, count: 3, timeoutMs: 1_500 });
    },
    async verifyKernel(lab) {
      const packets = await nftRulePackets(lab, lab.router, `dport ${PORT}`);
      if (packets === 0) throw new Error('the drop rule counted no packets');
      return [`nft list ruleset in R: the "${PREFIX.trim()}" rule dropped ${packets} packets`];
    },
  };
}
