// `natwatch doctor [--netns NAME] [--json]`: checks and tuning advice. Exit 0 once the checks
// ran (verdicts are in the output), 1 when they could not run, 2 on bad flags.
import { parse, netnsPath } from './args.js';
import { runDoctor } from '../doctor/index.js';
import { formatReport } from '../doctor/format.js';

const HELP = `usage: natwatch doctor [--netns NAME|PATH] [--json]

Checks conntrack and NAT settings of a network namespace and prints, per check, a verdict
(ok, info, warn, fail), the finding, and a command that fixes it.

environment:
  NO_COLOR   no colours in the report

example:
  natwatch doctor --netns gw`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse({
    args: argv,
    options: { netns: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const report = await runDoctor({ netns: netnsPath(values.netns) });
  process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report, process.stdout.isTTY === true && process.env.NO_COLOR === undefined));
  return 0;
}
