// One broadcast, encoded at most once per wire format however many clients receive it.
import { Packr } from 'msgpackr';
import type { Alert, StatsMessage, WireEvent } from '../types.js';
import { alertToEcs, controlToEcs, defaultEcsContext, eventToEcs, statsToEcs, type EcsContext } from './ecs.js';
import type { StreamFormat } from './filter.js';

// Plain maps, no records extension: any msgpack decoder reads the frames.
const packr = new Packr({ useRecords: false });

export interface EncodedFrame {
  data: Buffer;
  binary: boolean;
}

function encodeMessage(msg: object, format: 'json' | 'msgpack'): EncodedFrame {
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
  /** Alert episode id, taken when the broadcast is made so ids follow emission order. */
  private readonly ecsCtx: EcsContext;

  constructor(
    readonly b: Broadcast,
    ecs?: EcsContext,
  ) {
    this.ecsCtx = ecs ?? defaultEcsContext();
    if (b.type === 'alert') this.ecsCtx.episodes.note(b.msg);
  }

  get(format: StreamFormat): EncodedFrame {
    switch (format) {
      case 'json':
        return (this.json ??= encodeMessage(this.b.msg, 'json'));
      case 'msgpack':
        return (this.msgpack ??= encodeMessage(this.b.msg, 'msgpack'));
      case 'ecs':
        return (this.ecs ??= encodeMessage(toEcs(this.b, this.ecsCtx), 'json'));
    }
  }
}

export function toEcs(b: Broadcast, ctx: EcsContext): object {
  switch (b.type) {
    case 'alert':
      return alertToEcs(b.msg, ctx);
    case 'stats':
      return statsToEcs(b.msg, ctx);
    case 'event':
      return eventToEcs(b.msg, ctx);
  }
}

/** Control messages (hello, gap, subscribed, error): their own shape, or an ECS document. */
export function encodeControl(msg: object, format: StreamFormat, ecs?: EcsContext): EncodedFrame {
  if (format === 'ecs') return encodeMessage(controlToEcs(msg as { type: string } & Record<string, unknown>, ecs ?? defaultEcsContext()), 'json');
  return encodeMessage(msg, format);
}
