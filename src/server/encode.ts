// One broadcast, encoded at most once per wire format however many clients receive it.
import { Packr } from 'msgpackr';
import type { Alert, StatsMessage, WireEvent } from '../types.js';
import { alertToEcs, eventToEcs, statsToEcs } from './ecs.js';
import type { StreamFormat } from './filter.js';

// Plain maps, no records extension: any msgpack decoder reads the frames.
const packr = new Packr({ useRecords: false });

export interface EncodedFrame {
  data: Buffer;
  binary: boolean;
}

function encodeMessage(msg: object, format: StreamFormat): EncodedFrame {
  if (format === 'msgpack') return { data: packr.pack(msg), binary: true };
  return { data: Buffer.from(JSON.stringify(msg)), binary: false };
}

export type Broadcast =
  | { type: 'alert'; msg: Alert }
  | { type: 'stats'; msg: StatsMessage }
  | { type: 'event'; msg: WireEvent };

/** Lazily encoded frames of one broadcast; reused for every client of the same format. */
export class FrameCache {
  private json: EncodedFrame | null = null;
  private msgpack: EncodedFrame | null = null;
  private ecs: EncodedFrame | null = null;
  constructor(readonly b: Broadcast) {}

  get(format: StreamFormat): EncodedFrame {
    switch (format) {
      case 'json':
        return (this.json ??= encodeMessage(this.b.msg, 'json'));
      case 'msgpack':
        return (this.msgpack ??= encodeMessage(this.b.msg, 'msgpack'));
      case 'ecs':
        return (this.ecs ??= encodeMessage(toEcs(this.b), 'json'));
    }
  }
}

function toEcs(b: Broadcast): object {
  switch (b.type) {
    case 'alert':
      return alertToEcs(b.msg);
    case 'stats':
      return statsToEcs(b.msg);
    case 'event':
      return eventToEcs(b.msg);
  }
}

/** Control messages (hello, gap, subscribed, error) keep their own shape in every format. */
export function encodeControl(msg: object, format: StreamFormat): EncodedFrame {
  return encodeMessage(msg, format === 'msgpack' ? 'msgpack' : 'json');
}
