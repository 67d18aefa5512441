// One readable line per event for `natwatch events` (text mode), read straight off the views.
import { IPPROTO_TCP, natOf, protoName, tcpStateName } from './names.js';
import { CtKind, type ConntrackView, type LossReport, type NflogView } from './types.js';

const KIND_LABEL: Record<number, string> = {
  [CtKind.New]: '[NEW]    ',
  [CtKind.Update]: '[UPDATE] ',
  [CtKind.Destroy]: '[DESTROY]',
  [CtKind.Dump]: '[DUMP]   ',
};

function hostPort(addr: string, port: number, family: number): string {
  return family === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}

/** `12:00:01.234 [NEW]     tcp  192.0.2.5:41000 -> 198.51.100.8:80  reply 198.51.100.8:80 -> 198.51.100.1:50003  SYN_SENT snat id=12` */
export function formatConntrack(v: ConntrackView): string {
  const f = v.family;
  const state = v.proto === IPPROTO_TCP ? tcpStateName(v.tcpState) : null;
  const nat = natOf(v.status);
  return (
    `${clock(v.tsMs)} ${KIND_LABEL[v.kind] ?? `[${v.kind}]`} ${protoName(v.proto).padEnd(4)} ` +
    `${hostPort(v.origSrc(), v.origSport, f)} -> ${hostPort(v.origDst(), v.origDport, f)}  ` +
    `reply ${hostPort(v.replySrc(), v.replySport, f)} -> ${hostPort(v.replyDst(), v.replyDport, f)}` +
    `${state ? `  ${state}` : ''}${nat ? ` ${nat}` : ''}${v.mark ? ` mark=${v.mark}` : ''}` +
    `${v.zone ? ` zone=${v.zone}` : ''} id=${v.id}`
  );
}

/** `12:00:01.234 [NFLOG]   group=5 "blocked-9999" tcp 192.0.2.5:40000 -> 198.51.100.8:9999 in=r-in out=r-out len=60` */
export function formatNflog(v: NflogView): string {
  const f = v.family;
  const hasPorts = v.sport !== 0 || v.dport !== 0;
  const src = hasPorts ? hostPort(v.src(), v.sport, f) : v.src();
  const dst = hasPorts ? hostPort(v.dst(), v.dport, f) : v.dst();
  const inDev = v.indev();
  const outDev = v.outdev();
  return (
    `${clock(v.tsMs)} [NFLOG]   group=${v.group} ${JSON.stringify(v.prefix().trimEnd())} ${protoName(v.proto)} ` +
    `${src} -> ${dst}${inDev ? ` in=${inDev}` : ''}${outDev ? ` out=${outDev}` : ''}` +
    `${v.mark ? ` mark=${v.mark}` : ''} len=${v.len}`
  );
}

/** The stderr line for lost events. */
export function formatLoss(r: LossReport): string {
  const parts: string[] = [];
  if (r.kernelDrops) parts.push(`${r.kernelDrops} the kernel could not queue (socket drops)`);
  if (r.enobufs) parts.push(`${r.enobufs} receive-buffer overflow${r.enobufs === 1 ? '' : 's'} (ENOBUFS)`);
  if (r.dropped) parts.push(`${r.dropped} lost in the reader (truncated datagram or no memory)`);
  if (r.seqGap) parts.push(`${r.seqGap} NFLOG sequence number${r.seqGap === 1 ? '' : 's'} skipped`);
  return `natwatch: ${r.source} events lost: ${parts.join(', ')}`;
}
