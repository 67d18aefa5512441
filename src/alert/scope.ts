// One namespace's view of the shared AlertEngine. The engine keeps one seq, one replay ring and
// one firing set for the whole process; a scope keeps its namespace's key ids apart from the
// others' (every namespace has a table-full key ''), stamps its alerts with the namespace, and
// knows what it has firing, so a namespace that goes away resolves all of it at once.
import type { AlertKey, AlertKind, Severity } from '../types.js';
import type { AlertEngine, AlertSink, Observation } from './engine.js';

export class AlertScope implements AlertSink {
  /** Prepended to key ids: '' for natwatch's own namespace, so its ids are the engine's own. */
  private readonly prefix: string;
  /** What this scope has firing: engine id → kind. */
  private readonly live = new Map<string, { kind: AlertKind; id: string }>();

  constructor(
    private readonly engine: AlertEngine,
    readonly netns: string | null,
  ) {
    // Key ids never hold a NUL: a named namespace's ids cannot meet the own namespace's.
    this.prefix = netns === null ? '' : `${netns}\u0000`;
  }

  observe(kind: AlertKind, keyId: string, key: AlertKey, severity: Severity | null, o: Observation): void {
    const id = this.prefix + keyId;
    this.engine.observe(kind, id, key, severity, this.netns === null ? o : { ...o, netns: this.netns });
    if (this.engine.isFiring(kind, id)) this.live.set(`${kind}|${id}`, { kind, id });
  }

  resolve(kind: AlertKind, keyId: string, o?: Partial<Observation>): void {
    const id = this.prefix + keyId;
    this.live.delete(`${kind}|${id}`);
    this.engine.resolve(kind, id, o);
  }

  isFiring(kind: AlertKind, keyId: string): boolean {
    return this.engine.isFiring(kind, this.prefix + keyId);
  }

  /** Alerts of this namespace firing now. */
  get firingCount(): number {
    return this.live.size;
  }

  /** Resolves everything this namespace has firing (it was deleted, or is no longer watched). */
  resolveAll(why: string): void {
    for (const { kind, id } of this.live.values()) {
      this.engine.resolve(kind, id, { message: () => why });
    }
    this.live.clear();
  }
}
