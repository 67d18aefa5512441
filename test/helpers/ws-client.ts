// A tiny /v1/stream client for end-to-end tests: connects, keeps every message, and waits for
// a predicate with a bounded timeout (the failure message lists what did arrive).
import WebSocket from 'ws';
import type { Alert, ServerMessage } from '../../src/types.js';

export interface StreamClient {
  readonly messages: ServerMessage[];
  alerts(): Alert[];
  /** Resolves with the first message (already received or future) matching `pred`. */
  waitFor<T extends ServerMessage = ServerMessage>(
    pred: (m: ServerMessage) => boolean,
    timeoutMs?: number,
    what?: string,
  ): Promise<T>;
  send(obj: unknown): void;
  close(): Promise<void>;
}

export async function connectStream(url: string, timeoutMs = 5_000): Promise<StreamClient> {
  const ws = new WebSocket(url);
  const messages: ServerMessage[] = [];
  const waiters = new Set<{ pred: (m: ServerMessage) => boolean; resolve: (m: ServerMessage) => void }>();

  ws.on('message', (data, isBinary) => {
    if (isBinary) return; // json format only here
    const m = JSON.parse(data.toString()) as ServerMessage;
    messages.push(m);
    for (const w of waiters) {
      if (w.pred(m)) {
        waiters.delete(w);
        w.resolve(m);
      }
    }
  });

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no WebSocket connection to ${url} within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });

  return {
    messages,
    alerts: () => messages.filter((m): m is Alert => m.type === 'alert'),
    waitFor<T extends ServerMessage>(pred: (m: ServerMessage) => boolean, ms = 15_000, what = 'message') {
      const seen = messages.find(pred);
      if (seen) return Promise.resolve(seen as T);
      return new Promise<T>((resolve, reject) => {
        const w = {
          pred,
          resolve: (m: ServerMessage) => {
            clearTimeout(timer);
            resolve(m as T);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(w);
          const alerts = messages
            .filter((m) => m.type === 'alert')
            .map((m) => JSON.stringify(m))
            .join('\n  ');
          reject(new Error(`timed out after ${ms} ms waiting for ${what}; alerts seen:\n  ${alerts || '(none)'}`));
        }, ms);
        waiters.add(w);
      });
    },
    send: (obj) => ws.send(JSON.stringify(obj)),
    close: () =>
      new Promise<void>((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        const timer = setTimeout(() => {
          ws.terminate();
          resolve();
        }, 2_000);
        ws.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        ws.close();
      }),
  };
}
