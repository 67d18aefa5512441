// Validates documents against the official ECS field list (@elastic/ecs's EcsFlat, generated
// from ECS's own ecs_flat.yml): every field outside natwatch.* must exist there, hold a value
// of its type (keyword/long/ip/date/...), be an array only where ECS normalizes to an array,
// and use allowed values where ECS lists them (event.kind/category/type, with each
// event.type expected for the document's event.category). natwatch.* keys must be snake_case.
import { isIP } from 'node:net';
import { EcsFlat } from '@elastic/ecs';

interface FieldDef {
  type: string;
  normalize?: readonly string[];
  allowed_values?: ReadonlyArray<{ name: string; expected_event_types?: readonly string[] }>;
}

const FIELDS = EcsFlat as unknown as Record<string, FieldDef>;

const STRINGS = new Set(['keyword', 'constant_keyword', 'wildcard', 'text', 'match_only_text']);
const INTEGERS = new Set(['long', 'integer', 'short', 'byte', 'unsigned_long']);
const FLOATS = new Set(['float', 'double', 'scaled_float', 'half_float']);

function typeError(path: string, def: FieldDef, v: unknown): string | null {
  if (STRINGS.has(def.type)) return typeof v === 'string' ? null : `${path}: ${JSON.stringify(v)} is not a ${def.type} string`;
  if (INTEGERS.has(def.type)) return Number.isInteger(v) ? null : `${path}: ${JSON.stringify(v)} is not a ${def.type}`;
  if (FLOATS.has(def.type)) return typeof v === 'number' && Number.isFinite(v) ? null : `${path}: ${JSON.stringify(v)} is not a ${def.type}`;
  if (def.type === 'ip') return typeof v === 'string' && isIP(v) !== 0 ? null : `${path}: ${JSON.stringify(v)} is not an ip`;
  if (def.type === 'date') return typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v) && !Number.isNaN(Date.parse(v)) ? null : `${path}: ${JSON.stringify(v)} is not an ISO-8601 date`;
  if (def.type === 'boolean') return typeof v === 'boolean' ? null : `${path}: ${JSON.stringify(v)} is not a boolean`;
  return `${path}: type ${def.type} not handled by this validator`;
}

/** Every problem with the document, one line each; [] when it is valid. */
export function ecsProblems(doc: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const leaves: Array<[string, unknown]> = [];
  const walk = (v: unknown, path: string): void => {
    if (path === 'natwatch') return checkSnake(v, 'natwatch', problems);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
      return;
    }
    leaves.push([path, v]);
  };
  walk(doc, '');
  for (const f of ['@timestamp', 'ecs.version', 'host.name', 'observer.hostname', 'observer.product', 'observer.version', 'event.kind']) {
    if (!leaves.some(([p]) => p === f)) problems.push(`${f}: missing`);
  }
  for (const [path, v] of leaves) {
    const def = FIELDS[path];
    if (!def) {
      problems.push(`${path}: not an ECS field`);
      continue;
    }
    if (v === null) {
      problems.push(`${path}: null (omit the field instead)`);
      continue;
    }
    const isArray = Array.isArray(v);
    if (isArray && !def.normalize?.includes('array')) problems.push(`${path}: an array, but ECS does not normalize it to one`);
    for (const x of isArray ? v : [v]) {
      const err = typeError(path, def, x);
      if (err) problems.push(err);
      if (def.allowed_values && !def.allowed_values.some((a) => a.name === x)) problems.push(`${path}: '${String(x)}' is not an allowed value`);
    }
  }
  // Each event.type must be one ECS expects for (one of) the document's categories.
  const cats = leaves.find(([p]) => p === 'event.category')?.[1];
  const types = leaves.find(([p]) => p === 'event.type')?.[1];
  if (Array.isArray(cats) && Array.isArray(types)) {
    const expected = new Set(cats.flatMap((c) => FIELDS['event.category']!.allowed_values!.find((a) => a.name === c)?.expected_event_types ?? []));
    for (const t of types) if (!expected.has(t as string)) problems.push(`event.type: '${String(t)}' is not expected for event.category ${JSON.stringify(cats)}`);
  }
  return problems;
}

function checkSnake(v: unknown, path: string, problems: string[]): void {
  if (Array.isArray(v)) return v.forEach((x, i) => checkSnake(x, `${path}[${i}]`, problems));
  if (v === null || typeof v !== 'object') return;
  for (const [k, x] of Object.entries(v)) {
    if (!/^[a-z0-9_]+$/.test(k)) problems.push(`${path}.${k}: custom field not snake_case`);
    checkSnake(x, `${path}.${k}`, problems);
  }
}
