// The CLI's way to the real pipeline. Imported lazily so `--help`, flag errors and
// `tail ws://…` never load the streamer (nor, through it, the native addon).
import { NatwatchError } from '../errors.js';
import type { createStreamer } from '../streamer.js';

export async function loadStreamerFactory(): Promise<typeof createStreamer> {
  try {
    return (await import('../streamer.js')).createStreamer;
  } catch (err) {
    throw new NatwatchError('ENATIVE', `cannot load the streamer: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
}
