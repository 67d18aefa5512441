// natwatch as a library: the pipeline (createStreamer), the WebSocket/HTTP server to attach to
// an existing http.Server or run standalone, the doctor, and the wire types.
export { createStreamer, Streamer, type StreamerOptions, type StreamMessage } from './streamer.js';
export type { MessageQueue } from './message-queue.js';
export { DEFAULT_THRESHOLDS, type Thresholds } from './alert/thresholds.js';
export {
  attachServer,
  startServer,
  FilterError,
  parseSubscription,
  alertToEcs,
  statsToEcs,
  eventToEcs,
  controlToEcs,
  ecsContext,
  ECS_SEVERITY,
  type EcsContext,
  type NflogVerdict,
  type AttachOptions,
  type StartOptions,
  type NatwatchServer,
  type StandaloneServer,
  type ClientInfo,
  type StreamFormat,
  type StreamType,
  type Subscription,
} from './server/index.js';
export { runDoctor, type CheckResult, type DoctorReport, type Verdict } from './doctor/index.js';
export { NatwatchError, UsageError, exitCodeFor, type ErrorCode } from './errors.js';
export { setupLogging, logger, type Logger } from './log.js';
export { VERSION } from './version.js';
export { AlertmanagerPusher, type PusherOptions } from './alertmanager/pusher.js';
export type * from './types.js';
export type { EventSource, SourceHandlers, CounterSnapshot, LossReport, ConntrackView, NflogView, NamespaceLimits } from './source/types.js';
