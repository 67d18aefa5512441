import { NatwatchError } from '../errors.js';

export async function run(_argv: string[]): Promise<number> {
  throw new NatwatchError('ERUNTIME', "'events' is not built yet");
}
