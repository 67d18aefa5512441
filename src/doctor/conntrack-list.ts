// A summary of `conntrack -L` for the doctor: entries by TCP state, and SNAT'd flows per
// (proto, NAT address, destination ip, destination port) — the unit whose port range runs out.
// Lines look like:
//   tcp 6 431999 ESTABLISHED src=192.0.2.5 dst=198.51.100.8 sport=40000 dport=80
//       src=198.51.100.8 dst=198.51.100.1 sport=80 dport=50000 [ASSURED] mark=0 use=1

export interface DestinationLoad {
  proto: string;
  natIp: string;
  dstIp: string;
  dstPort: number;
  flows: number;
}

export interface CtSummary {
  entries: number;
  byState: Record<string, number>;
  /** Entries whose reply destination differs from the original source (source NAT). */
  snat: number;
  /** Busiest (proto, NAT ip, dst, dport) first; at most 10. */
  busiest: DestinationLoad[];
}

export function parseConntrackList(text: string): CtSummary {
  const byState: Record<string, number> = {};
  const load = new Map<string, DestinationLoad>();
  let entries = 0;
  let snat = 0;
  for (const line of text.split('\n')) {
    const head = /^(\S+)\s+\d+\s+\d+\s+(?:([A-Z_]+)\s+)?src=/.exec(line);
    if (!head) continue;
    entries++;
    const proto = head[1]!;
    if (head[2]) byState[head[2]] = (byState[head[2]] ?? 0) + 1;
    const src = [...line.matchAll(/\bsrc=(\S+)/g)].map((m) => m[1]!);
    const dst = [...line.matchAll(/\bdst=(\S+)/g)].map((m) => m[1]!);
    const dport = [...line.matchAll(/\bdport=(\d+)/g)].map((m) => Number(m[1]));
    if (src.length < 2 || dst.length < 2) continue;
    if (dst[1] === src[0]) continue;
    snat++;
    const k = `${proto}|${dst[1]}|${dst[0]}|${dport[0] ?? 0}`;
    const e = load.get(k);
    if (e) e.flows++;
    else load.set(k, { proto, natIp: dst[1]!, dstIp: dst[0]!, dstPort: dport[0] ?? 0, flows: 1 });
  }
  const busiest = [...load.values()].sort((a, b) => b.flows - a.flows).slice(0, 10);
  return { entries, byState, snat, busiest };
}
