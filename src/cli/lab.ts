// `natwatch lab`: throwaway namespaces that reproduce the classic failures, with natwatch's
// streamer running in-process on the router and the kernel's own counters beside what it
// reports. Always cleans up (namespaces, peers, a lowered nf_conntrack_max), also on Ctrl-C.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from './args.js';
import { NatwatchError, UsageError } from '../errors.js';
import { setupLogging } from '../log.js';
import type { Alert } from '../types.js';
import { alertLine } from './tail-view.js';
import { loadStreamerFactory } from './streamer-loader.js';
import type { StreamerOptions } from '../streamer.js';
import { LAB_THRESHOLDS, runScenario, type LabWatcher, type WatchFactory } from '../lab/runner.js';
import { SCENARIOS, isScenarioName } from '../lab/scenarios/index.js';
import { portExhaustion } from '../lab/scenarios/port-exhaustion.js';
import type { Lab } from '../lab/topology.js';
import type { Scenario } from '../lab/scenarios/types.js';

const HELP = `usage: natwatch lab [--scenario NAME] [--keep] [--prefix P] [--proto tcp|udp] [--ipv6]

  --scenario NAME   port-exhaustion | table-full | nflog-drop | flush | loss | all (default all)
  --proto P         port-exhaustion over tcp (default) or udp
  --ipv6            port-exhaustion through NAT66 (2001:db8:1::5 → 2001:db8:2::8)
  --keep            leave the namespaces afterwards (prints the 'ip netns del' commands)
  --prefix P        namespace name prefix (default nwlab; a random suffix is added)

Builds client – NAT router – server namespaces (documentation addresses only), makes the
kernel fail in one classic way, and shows what natwatch reported next to what the kernel did.
Needs root. table-full lowers the machine-wide nf_conntrack_max for a few seconds and always
restores it. Exit 0 when every expected alert was seen, 1 otherwise.

environment:
  NATWATCH_LOG_LEVEL  log level of the in-process streamer (default warn)
  NO_COLOR            no colours in the alert lines

example:
  sudo natwatch lab --scenario port-exhaustion`;

const BIN = fileURLToPath(new URL('../../bin/natwatch.js', import.meta.url));

export async function run(argv: string[]): Promise<number> {
  const { values } = parse({
    args: argv,
    options: {
      scenario: { type: 'string', default: 'all' },
      keep: { type: 'boolean' },
      prefix: { type: 'string', default: 'nwlab' },
      proto: { type: 'string', default: 'tcp' },
      ipv6: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const name = values.scenario;
  if (name !== 'all' && !isScenarioName(name)) {
    throw new UsageError(`--scenario: '${name}' is not one of ${Object.keys(SCENARIOS).join(', ')}, all`);
  }
  if (!/^[a-z][a-z0-9]{0,11}$/.test(values.prefix)) {
    throw new UsageError(`--prefix: '${values.prefix}' must be 1-12 lowercase letters and digits, starting with a letter`);
  }
  const proto = values.proto;
  if (proto !== 'tcp' && proto !== 'udp') throw new UsageError(`--proto: '${proto}' is not tcp or udp`);
  if ((proto !== 'tcp' || values.ipv6) && name !== 'port-exhaustion' && name !== 'all') {
    throw new UsageError(`--${values.ipv6 ? 'ipv6' : 'proto'}: only for --scenario port-exhaustion`);
  }
  if (process.getuid?.() !== 0 || !holdsLabCapabilities()) {
    throw new NatwatchError('EPERM', 'lab needs root: it creates network namespaces and nft rules (run it with sudo)');
  }
  setupLogging({ level: process.env.NATWATCH_LOG_LEVEL ?? 'warn' });
  const createStreamer = await loadStreamerFactory();
  const color = process.stdout.isTTY === true && process.env.NO_COLOR === undefined;

  const watch: WatchFactory = async (lab: Lab, sc: Scenario): Promise<LabWatcher> => {
    const settings: StreamerOptions = {
      netns: lab.nsPath(lab.router),
      thresholds: LAB_THRESHOLDS,
      ...(sc.watch.natPorts ? { natPorts: sc.watch.natPorts } : {}),
      ...(sc.watch.nflogGroups ? { nflogGroups: sc.watch.nflogGroups } : {}),
      ...(sc.watch.rcvbufBytes ? { rcvbufBytes: sc.watch.rcvbufBytes } : {}),
    };
    const streamer = createStreamer(settings);
    const alerts: Alert[] = [];
    const listeners: Array<(a: Alert) => void> = [];
    streamer.on('alert', (a) => {
      alerts.push(a);
      for (const fn of listeners) fn(a);
    });
    streamer.on('error', (err) => process.stderr.write(`natwatch: streamer: ${err.message}\n`));
    await streamer.start();
    return { alerts, onAlert: (fn) => void listeners.push(fn), top: () => streamer.top(), close: () => streamer.close() };
  };

  const names = name === 'all' ? (Object.keys(SCENARIOS) as Array<keyof typeof SCENARIOS>) : [name];
  let failed = 0;
  for (const n of names) {
    const sc = n === 'port-exhaustion' ? portExhaustion({ proto, ipv6: values.ipv6 === true }) : SCENARIOS[n]();
    const r = await runScenario(sc, {
      watch,
      keep: values.keep === true,
      prefix: values.prefix,
      render: (a) => alertLine(a, color),
      doctor: runDoctor,
    });
    if (!r.ok) failed++;
  }
  if (names.length > 1) process.stdout.write(`${names.length - failed}/${names.length} scenarios behaved as expected\n`);
  return failed === 0 ? 0 : 1;
}

/** `natwatch doctor --netns <router>` as its own process, so its output is ours to narrate. */
function runDoctor(lab: Lab): Promise<{ ok: boolean; text: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'doctor', '--netns', lab.nsPath(lab.router)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d));
    child.stderr.on('data', (d: Buffer) => (text += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      // What doctor must notice: R tracks connections although no NAT rule is left.
      resolve({ ok: code === 0 && /track/i.test(text), text });
    });
  });
}

/**
 * uid 0 is not enough: a root shell with its capabilities dropped (setpriv, a container) cannot
 * create namespaces either. The lab needs CAP_SYS_ADMIN and CAP_NET_ADMIN (linux/capability.h
 * bits 21 and 12) in the effective set.
 */
function holdsLabCapabilities(): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    const eff = m ? BigInt(`0x${m[1]}`) : 0n;
    return ((eff >> 21n) & 1n) === 1n && ((eff >> 12n) & 1n) === 1n;
  } catch {
    return false;
  }
}
