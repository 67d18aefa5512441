// Terminal rendering for `natwatch tail`: alert lines scroll, and below them a block (status
// line, conntrack gauge, top destinations) is redrawn in place. The block is erased by moving
// the cursor up over it and clearing to the end of the screen, then new alert lines are
// printed (scrolling as usual) and the block is drawn again. Block lines are cut to the
// terminal width so each takes exactly one row.
import { endpoint } from '../endpoint.js';
import type { Alert, PortKey, StatsMessage, TopEntry, WireEvent } from '../types.js';

const ESC = '\x1b[';
const RESET = `${ESC}0m`;
const color = {
  red: (s: string) => `${ESC}31m${s}${RESET}`,
  yellow: (s: string) => `${ESC}33m${s}${RESET}`,
  green: (s: string) => `${ESC}32m${s}${RESET}`,
  dim: (s: string) => `${ESC}2m${s}${RESET}`,
  bold: (s: string) => `${ESC}1m${s}${RESET}`,
  cyan: (s: string) => `${ESC}36m${s}${RESET}`,
};
type Paint = (s: string) => string;
const plain: Paint = (s) => s;

/**
 * Text from the server (messages, prefixes, host names) with control characters removed: a
 * server, or an NFLOG prefix an attacker chose, must not move the cursor, retitle the terminal
 * or hide lines. C0/C1 controls, DEL, and the bidirectional overrides are dropped.
 */
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
export function printable(v: unknown): string {
  return String(v ?? '').replace(UNPRINTABLE, '');
}

/** `NETNS: ` before what is about a named namespace (nothing for natwatch's own). */
const nsText = (netns: string | null | undefined): string => (netns ? `${printable(netns)}: ` : '');

function keyText(key: Alert['key'], destinations?: number): string {
  const k = key as { [F in keyof PortKey]?: PortKey[F] | null } & { prefix?: string; group?: number };
  if (k.prefix !== undefined) {
    const dst = k.dstIp === null || k.dstIp === undefined ? `${destinations !== undefined ? Number(destinations) : 'many'} destinations` : endpoint(printable(k.dstIp), Number(k.dstPort ?? 0));
    return `nflog ${printable(k.group)} "${printable(k.prefix).trim()}" ${printable(k.proto ?? '')} → ${dst}`;
  }
  if (k.dstIp !== undefined && k.dstIp !== null) return `${printable(k.proto)} ${printable(k.natIp)} → ${endpoint(printable(k.dstIp), Number(k.dstPort ?? 0))}`;
  return 'host';
}

export function eta(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '-';
  if (seconds <= 0) return 'now';
  if (seconds < 120) return `${Math.round(seconds)}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${Math.round(seconds / 3600)}h`;
}

export function bar(fraction: number, width: number): string {
  const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.round(f * width);
  return '█'.repeat(full) + '░'.repeat(width - full);
}

export function alertLine(a: Alert, useColor: boolean): string {
  const t = a.ts.slice(11, 19);
  const sev = a.severity === 'critical' ? 'CRIT' : 'WARN';
  const paint: Paint = !useColor ? plain : a.state === 'resolved' ? color.green : a.severity === 'critical' ? color.red : color.yellow;
  const load = a.used !== null && a.capacity !== null ? ` ${Number(a.used)}/${Number(a.capacity)}` : '';
  const drops = a.drops > 0 ? ` drops ${Number(a.drops)}` : '';
  return paint(`${printable(t)} ${sev} ${printable(a.state).toUpperCase().padEnd(8)} ${printable(a.kind)} ${nsText(a.netns)}${keyText(a.key, a.destinations)}${load}${drops} — ${printable(a.message)}`);
}

export function eventLine(e: WireEvent): string {
  if (e.source === 'conntrack') {
    const nat = e.nat ? ` [${e.nat} ${endpoint(e.reply.dst, e.reply.dport)}]` : '';
    return printable(`${e.ts.slice(11, 23)} ${nsText(e.netns)}${e.event.padEnd(7)} ${e.proto} ${endpoint(e.orig.src, e.orig.sport)} → ${endpoint(e.orig.dst, e.orig.dport)}${nat}`);
  }
  return printable(`${e.ts.slice(11, 23)} ${nsText(e.netns)}nflog   ${e.group} "${e.prefix.trim()}" ${e.proto} ${endpoint(e.src, e.sport)} → ${endpoint(e.dst, e.dport)}`);
}

export interface ViewState {
  status: string;
  stats: StatsMessage | null;
  /** Latest alert per key (to show drops and ETA beside a top row). */
  firing: Map<string, Alert>;
}

const idOf = (kind: Alert['kind'], netns: string | null | undefined, key: Alert['key']): string => `${kind}|${netns ?? ''}|${JSON.stringify(key)}`;
export const alertId = (a: Alert): string => idOf(a.kind, a.netns, a.key);

function fit(s: string, width: number): string {
  return s.length > width ? s.slice(0, Math.max(0, width - 1)) + '…' : s;
}

/** The redrawn block, one string per terminal row (no colour codes inside widths). */
export function renderBlock(st: ViewState, width: number, useColor: boolean): string[] {
  const c = useColor ? color : { red: plain, yellow: plain, green: plain, dim: plain, bold: plain, cyan: plain };
  const lines: string[] = [];
  lines.push(c.dim(fit('─'.repeat(Math.min(width, 100)), width)));
  lines.push(c.cyan(fit(printable(st.status), width)));
  const s = st.stats;
  if (!s) {
    lines.push(fit('waiting for stats…', width));
    return lines;
  }
  const ct = s.conntrack;
  const frac = ct.max > 0 ? ct.count / ct.max : 0;
  const gauge = `conntrack ${ct.count}/${ct.max} ${bar(frac, 20)} ${(frac * 100).toFixed(1)}%  buckets ${ct.buckets}  new ${s.rates.new}/s  destroy ${s.rates.destroy}/s  drop ${s.rates.drop}/s  insert_failed ${s.counters.insert_failed}`;
  lines.push((frac >= 0.9 ? c.red : frac >= 0.75 ? c.yellow : plain)(fit(printable(gauge), width)));
  const header = `${'DESTINATION'.padEnd(44)} ${'UTILIZATION'.padEnd(27)} ${'USED/CAP'.padStart(13)} ${'NEW/S'.padStart(7)} ${'DROPS'.padStart(7)} ${'ETA'.padStart(5)}`;
  lines.push(c.bold(fit(header, width)));
  if (s.top.length === 0) lines.push(c.dim(fit('(no NAT destinations yet)', width)));
  for (const e of s.top) lines.push(topRow(e, st, width, c));
  return lines;
}

function topRow(e: TopEntry, st: ViewState, width: number, c: typeof color): string {
  let alert: Alert | undefined;
  for (const kind of ['nat_port_exhaustion', 'local_port_exhaustion'] as const) {
    alert ??= st.firing.get(idOf(kind, e.netns, e.key));
  }
  const row =
    `${fit(nsText(e.netns) + keyText(e.key), 44).padEnd(44)} ${bar(e.utilization, 20)} ${(e.utilization * 100).toFixed(0).padStart(4)}%` +
    ` ${`${e.used}/${e.capacity}`.padStart(13)} ${e.newPerSec.toFixed(e.newPerSec < 10 ? 1 : 0).padStart(7)}` +
    ` ${String(alert?.drops ?? 0).padStart(7)} ${eta(alert?.etaSeconds).padStart(5)}`;
  const paint = e.utilization >= 0.9 ? c.red : e.utilization >= 0.75 ? c.yellow : plain;
  return paint(fit(printable(row), width));
}

/** Keeps the block at the bottom of the terminal while lines scroll above it. */
export class TtyView {
  private drawn = 0;
  readonly state: ViewState = { status: 'starting…', stats: null, firing: new Map() };

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly useColor = true,
  ) {}

  /** Print lines above the block, then redraw it. */
  print(lines: string[]): void {
    this.out.write(this.erase() + lines.map((l) => l + '\n').join('') + this.draw());
  }

  refresh(): void {
    this.out.write(this.erase() + this.draw());
  }

  alert(a: Alert): void {
    if (a.state === 'firing') this.state.firing.set(alertId(a), a);
    else this.state.firing.delete(alertId(a));
    this.print([alertLine(a, this.useColor)]);
  }

  private erase(): string {
    if (this.drawn === 0) return '';
    return `\r${ESC}${this.drawn}A${ESC}J`;
  }

  private draw(): string {
    const width = Math.max(20, (this.out.columns ?? 100) - 1);
    const rows = Math.max(4, (this.out.rows ?? 40) - 2);
    const lines = renderBlock(this.state, width, this.useColor).slice(0, rows);
    this.drawn = lines.length;
    return lines.map((l) => l + '\n').join('');
  }

  /** Leave the block on screen and the cursor below it. */
  close(): void {
    this.drawn = 0;
  }
}
