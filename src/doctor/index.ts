// `natwatch doctor`: gather the namespace's facts once, run every check over them.
import { gatherFacts, type FactReaders, type Facts } from './facts.js';
import { conntrackActive, conntrackBuckets, conntrackCount, conntrackEvents, tcpTimeouts } from './checks-conntrack.js';
import { natPortRange, receiveBuffer, snatCapacity } from './checks-nat.js';
import { nflogGroups } from './checks-nflog.js';
import type { CheckResult, DoctorReport } from './types.js';

export type { CheckResult, DoctorReport, Verdict } from './types.js';
export { gatherFacts, type FactReaders, type Facts } from './facts.js';

const CHECKS: ReadonlyArray<(f: Facts) => CheckResult> = [
  conntrackActive,
  conntrackCount,
  conntrackBuckets,
  natPortRange,
  snatCapacity,
  conntrackEvents,
  receiveBuffer,
  tcpTimeouts,
  (f) => nflogGroups(f.nflog),
];

function runChecks(facts: Facts): CheckResult[] {
  return CHECKS.map((check) => check(facts));
}

export async function runDoctor(opts: { netns?: string | null; readers?: FactReaders } = {}): Promise<DoctorReport> {
  const facts = await gatherFacts(opts.netns ?? null, opts.readers);
  return { netns: facts.netns, checks: runChecks(facts) };
}
