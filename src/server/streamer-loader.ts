// The CLI's way to the real pipeline. Imported lazily so `--help`, flag errors and `tail ws://`
// never load the native addon.
import { NatwatchError } from '../errors.js';
import type { StreamerLike } from '../types.js';

export interface RunnableStreamer extends StreamerLike {
  start(): Promise<void>;
}

export interface StreamerSettings {
  netns?: string;
  natPorts?: [number, number];
  nflogGroups?: number[];
  thresholds?: Record<string, unknown>;
}

type Factory = (opts: StreamerSettings) => RunnableStreamer;

export async function loadStreamerFactory(): Promise<Factory> {
  // A variable specifier keeps this file compiling while the streamer is being written.
  const spec = '../streamer.js';
  try {
    const mod = (await import(spec)) as { createStreamer: Factory };
    return mod.createStreamer;
  } catch (err) {
    throw new NatwatchError('ENATIVE', `cannot load the streamer: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
}
