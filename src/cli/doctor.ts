// `natwatch doctor [--netns NAME] [--json] [--fail-on warn|fail]`: checks and tuning advice.
// Exit 0 once the checks ran (verdicts are in the output), 3 with --fail-on when a check reached
// that verdict (to gate CI and monitoring), 1 when they could not run, 2 on bad flags.
import { parse, netnsPath } from './args.js';
import { runDoctor } from '../doctor/index.js';
import { formatReport } from '../doctor/format.js';
import { UsageError } from '../errors.js';
import type { Verdict } from '../doctor/types.js';

/** Exit code when a check reached the --fail-on verdict. */
export const EXIT_CHECK_FAILED = 3;
const RANK: Record<Verdict, number> = { ok: 0, info: 0, warn: 1, fail: 2 };

const HELP = `usage: natwatch doctor [--netns NAME|PATH] [--json] [--fail-on warn|fail]

Checks conntrack and NAT settings of a network namespace and prints, per check, a verdict
(ok, info, warn, fail), the finding, and a command that fixes it.
  --fail-on warn|fail   exit 3 when a check is at that verdict or worse (for CI and monitoring)

environment:
  NO_COLOR   no colours in the report

example:
  natwatch doctor --netns gw --fail-on fail`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse({
    args: argv,
    options: { netns: { type: 'string' }, json: { type: 'boolean' }, 'fail-on': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const failOn = values['fail-on'];
  if (failOn !== undefined && failOn !== 'warn' && failOn !== 'fail') throw new UsageError(`--fail-on: '${failOn}' is not warn or fail`);
  const report = await runDoctor({ netns: netnsPath(values.netns) });
  process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report, process.stdout.isTTY === true && process.env.NO_COLOR === undefined));
  if (failOn !== undefined && report.checks.some((c) => RANK[c.verdict] >= RANK[failOn])) return EXIT_CHECK_FAILED;
  return 0;
}
