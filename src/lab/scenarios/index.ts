// The lab's scenarios by name, in the order `--scenario all` runs them.
import { flush } from './flush.js';
import { loss } from './loss.js';
import { nflogDrop } from './nflog-drop.js';
import { portExhaustion } from './port-exhaustion.js';
import { tableFull } from './table-full.js';
import type { Scenario, ScenarioName } from './types.js';

export const SCENARIOS: Record<ScenarioName, () => Scenario> = {
  'port-exhaustion': () => portExhaustion(),
  'table-full': () => tableFull(),
  'nflog-drop': () => nflogDrop(),
  flush: () => flush(),
  loss: () => loss(),
};

export function isScenarioName(s: string): s is ScenarioName {
  return Object.hasOwn(SCENARIOS, s);
}
