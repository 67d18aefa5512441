// Command dispatcher. Each subcommand lives in its own file and exports
// `run(argv): Promise<number>` returning the exit code.
import { exitCodeFor, UsageError } from '../errors.js';

const USAGE = `usage: natwatch <command> [options]

commands:
  serve    run the daemon: WebSocket stream and HTTP endpoints
  tail     live view of alerts and top destinations in a terminal
  top      one-shot: dump the table, print the busiest destinations, exit
  events   raw decoded conntrack and NFLOG events, one per line
  doctor   checks and tuning advice for conntrack and NAT
  lab      throwaway namespaces that reproduce the classic failures

run 'natwatch help <command>' (or 'natwatch <command> --help') for a command's options`;

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<{ run: Command }>> = {
  serve: () => import('./serve.js'),
  tail: () => import('./tail.js'),
  top: () => import('./top.js'),
  events: () => import('./events.js'),
  doctor: () => import('./doctor.js'),
  lab: () => import('./lab.js'),
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    // No command is a usage error: the usage goes where errors go.
    process.stderr.write(USAGE + '\n');
    return 2;
  }
  if (name === 'help' && rest.length > 0) return main([rest[0]!, '--help']);
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (name === '--version' || name === '-V') {
    const { VERSION } = await import('../version.js');
    process.stdout.write(VERSION + '\n');
    return 0;
  }
  const load = commands[name];
  try {
    if (!load) throw new UsageError(`unknown command '${name}' (try 'natwatch --help')`);
    const mod = await load();
    return await mod.run(rest);
  } catch (err) {
    process.stderr.write(`natwatch: ${(err as Error)?.message ?? String(err)}\n`);
    return exitCodeFor(err);
  }
}
