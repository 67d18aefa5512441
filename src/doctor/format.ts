// Text report: one line per check — mark, verdict, id, finding, and the fix command.
import type { DoctorReport, Verdict } from './types.js';

const MARK: Record<Verdict, string> = { ok: '✓', info: 'i', warn: '!', fail: '✗' };
const COLOR: Record<Verdict, string> = { ok: '32', info: '36', warn: '33', fail: '31' };

export function formatReport(r: DoctorReport, useColor: boolean): string {
  const lines = [`natwatch doctor: ${r.netns ?? 'current network namespace'}`];
  const w = Math.max(...r.checks.map((c) => c.id.length));
  for (const c of r.checks) {
    const head = `${MARK[c.verdict]} ${c.verdict.padEnd(4)} ${c.id.padEnd(w)}`;
    const line = `${head}  ${c.finding}${c.fix ? `  → fix: ${c.fix}` : ''}`;
    lines.push(useColor ? `\x1b[${COLOR[c.verdict]}m${head}\x1b[0m${line.slice(head.length)}` : line);
  }
  return lines.join('\n') + '\n';
}
