// Errors carry a `code` so callers branch on it, and a message that reads as one line after
// "natwatch: ".

export type ErrorCode =
  | 'EUSAGE' // bad flag or value: exit 2
  | 'ENETNS' // namespace missing or not a namespace
  | 'EPERM' // missing CAP_NET_ADMIN / root
  | 'EGROUPBUSY' // NFLOG group bound by another program
  | 'ENATIVE' // addon missing or failed to load
  | 'ERUNTIME';

export class NatwatchError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NatwatchError';
    this.code = code;
  }
}

export class UsageError extends NatwatchError {
  constructor(message: string) {
    super('EUSAGE', message);
    this.name = 'UsageError';
  }
}

/** Exit code for an error per docs/protocol.md: 2 usage, 1 anything else. */
export function exitCodeFor(err: unknown): number {
  return err instanceof NatwatchError && err.code === 'EUSAGE' ? 2 : 1;
}
