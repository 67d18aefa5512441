export type Verdict = 'ok' | 'warn' | 'fail' | 'info';

/** One doctor finding. `fix` is a command to run (with a short comment), or null. */
export interface CheckResult {
  id: string;
  verdict: Verdict;
  finding: string;
  fix: string | null;
}

export interface DoctorReport {
  netns: string | null;
  checks: CheckResult[];
}
