#!/usr/bin/env node
// What reading a namespace's kernel facts costs (root): a throwaway namespace with ~100 rules
// (native nft NAT and filter rules, iptables-nft compat targets, an iptables-legacy nat table),
// then repeated reads through the addon, each one a full trip: helper thread setns, netlink
// dumps (tables, chains, rules, set elements; legacy getsockopt), decode to the packed buffer,
// decode in TypeScript and build the Ruleset. Also an rtnetlink address read and a sock_diag
// read of the same namespace, for comparison.
//   npm run build && sudo node scripts/bench-ruleset.mjs
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { readRuleset, readKernelFacts } = await import(`${ROOT}dist/source/ruleset.js`);
const NS = `nwbench-${randomBytes(3).toString('hex')}`;
const READS = 300;

const sh = (cmd, args, input) => execFileSync(cmd, args, { input, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
const inNs = (cmd, args, input) => sh('ip', ['netns', 'exec', NS, cmd, ...args], input);

function build() {
  sh('ip', ['netns', 'add', NS]);
  inNs('ip', ['link', 'set', 'lo', 'up']);
  let rules = 'table ip nat {\n chain post {\n  type nat hook postrouting priority 100;\n';
  for (let i = 0; i < 40; i++) rules += `  oifname "eth${i}" meta l4proto { tcp, udp } masquerade to :${20000 + i * 100}-${20000 + i * 100 + 99}\n`;
  for (let i = 0; i < 20; i++) rules += `  oifname "snat${i}" meta l4proto tcp snat to 203.0.113.${i}-203.0.113.${i + 1}:1024-65535\n`;
  rules += ' }\n}\ntable inet filter {\n chain forward_filter {\n  type filter hook forward priority 0;\n  ct state established,related accept\n';
  for (let i = 0; i < 20; i++) rules += `  tcp dport ${1000 + i} log prefix "deny-${i} " group 5 drop\n`;
  rules += ' }\n}\n';
  inNs('nft', ['-f', '-'], rules);
  for (let i = 0; i < 10; i++) inNs('iptables-nft', ['-t', 'nat', '-A', 'POSTROUTING', '-o', `x${i}`, '-p', 'tcp', '-j', 'MASQUERADE', '--to-ports', '50000-50019']);
  for (let i = 0; i < 10; i++) inNs('iptables-legacy', ['-t', 'nat', '-A', 'POSTROUTING', '-o', `l${i}`, '-p', 'tcp', '-j', 'MASQUERADE', '--to-ports', '60000-60019']);
}

async function time(label, fn) {
  for (let i = 0; i < 20; i++) await fn(); // warm-up
  const t = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < READS; i++) {
    const s = process.hrtime.bigint();
    await fn();
    t.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  const cpu = process.cpuUsage(cpu0);
  t.sort((a, b) => a - b);
  const q = (p) => t[Math.min(t.length - 1, Math.floor(p * t.length))].toFixed(2);
  console.log(`${label}: median ${q(0.5)} ms, p90 ${q(0.9)} ms wall; ${((cpu.user + cpu.system) / 1000 / READS).toFixed(2)} ms CPU per read (all threads)`);
}

try {
  build();
  const path = `/var/run/netns/${NS}`;
  const { ruleset } = await readRuleset(path);
  console.log(`namespace ${NS}: ${ruleset.ruleCount} rules, ${ruleset.nat.length} source NAT statements, ${ruleset.logs.length} log rules`);
  for (let round = 1; round <= 2; round++) {
    console.log(`round ${round}`);
    await time('  readRuleset (nft + legacy + rtnl, decode, build)', () => readRuleset(path));
    await time('  nf_tables only (kernel + copy, no decode)', () => readKernelFacts(path, { nft: true }));
    await time('  iptables-legacy only', () => readKernelFacts(path, { legacy: true }));
    await time('  rtnetlink addresses only', () => readKernelFacts(path, { rtnl: true }));
    await time('  sock_diag sockets only', () => readKernelFacts(path, { diag: true }));
  }
} finally {
  try {
    sh('ip', ['netns', 'del', NS]);
  } catch {}
}
