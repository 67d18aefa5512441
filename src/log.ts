// Logging: pino, JSON lines on stderr (stdout belongs to command output such as `tail --json`).
// On a TTY a small formatter prints one readable line per record instead (pino-pretty is not a
// dependency). Writes are synchronous: log volume is low (counters, not events) and a sync
// destination means nothing is lost when the process exits right after a fatal line.
import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';

export type { Logger };

const LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function isLogLevel(v: string): v is LevelWithSilent {
  return (LEVELS as readonly string[]).includes(v);
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'module']);

/** `HH:MM:SS.mmm LEVEL [module] message key=value ...` for humans at a terminal. */
export function formatPretty(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : line + '\n';
  }
  const time = new Date(typeof rec.time === 'number' ? rec.time : Date.now()).toISOString().slice(11, 23);
  const level = LEVEL_NAMES[rec.level as number] ?? String(rec.level);
  const mod = rec.module ? ` [${String(rec.module)}]` : '';
  let extra = '';
  for (const [k, v] of Object.entries(rec)) {
    if (SKIP.has(k)) continue;
    extra += ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`;
  }
  return `${time} ${level.padEnd(5)}${mod} ${String(rec.msg ?? '')}${extra}\n`;
}

function prettyStderr(): DestinationStream {
  return { write: (s: string) => void process.stderr.write(formatPretty(s)) };
}

let root: Logger | null = null;

export interface LogOptions {
  level?: string;
  /** Force JSON even on a TTY (default: JSON unless stderr is a TTY). */
  json?: boolean;
}

/** (Re)configure the process logger. Call once early; children made before keep their level. */
export function setupLogging(opts: LogOptions = {}): Logger {
  const level = opts.level ?? process.env.NATWATCH_LOG_LEVEL ?? 'info';
  const pretty = opts.json === undefined ? process.stderr.isTTY === true : !opts.json;
  const dest = pretty ? prettyStderr() : pino.destination({ dest: 2, sync: true });
  root = pino({ level: isLogLevel(level) ? level : 'info', base: { pid: process.pid } }, dest);
  return root;
}

function rootLogger(): Logger {
  return root ?? setupLogging();
}

/** A child logger tagged with the module name. */
export function logger(module: string): Logger {
  return rootLogger().child({ module });
}

/** Flush pending log writes; call before exit. */
export function flushLogs(): void {
  try {
    root?.flush();
  } catch {
    // a sync destination on a closed fd: nothing left to flush
  }
}
