// Module init: per-environment data through SetInstanceData (no static objects with
// destructors; the shared reader lives there), the Source class, the test/capture entry points,
// and every batch-layout.h constant so that the layout test can hold codec.ts's LAYOUT to it.
#include <napi.h>

#include "batch-layout.h"
#include "debug.h"
#include "proc-net.h"
#include "kernel-facts.h"
#include "source.h"

namespace nw {
namespace {

struct AddonData {
  Napi::FunctionReference source_ctor;
  Reader reader;  // the one reader thread for every source of this environment
  BatchPool batch_pool;
};

Napi::Object Layout(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  auto set = [&](const char* k, uint32_t v) { o.Set(k, Napi::Number::New(env, v)); };
  set("magic", kBatchMagic);
  set("version", kBatchVersion);
  set("kindConntrack", kKindConntrack);
  set("kindNflog", kKindNflog);
  set("kindStats", kKindStats);
  set("flagDumpBegin", kFlagDumpBegin);
  set("flagDumpEnd", kFlagDumpEnd);
  set("flagDumpError", kFlagDumpError);
  set("hdrMagic", kHdrMagic);
  set("hdrVersion", kHdrVersion);
  set("hdrKind", kHdrKind);
  set("hdrFlags", kHdrFlags);
  set("hdrCount", kHdrCount);
  set("hdrRecordSize", kHdrRecordSize);
  set("hdrEnobufs", kHdrEnobufs);
  set("hdrDropped", kHdrDropped);
  set("hdrSeqGap", kHdrSeqGap);
  set("hdrDecodeErrors", kHdrDecodeErrors);
  set("hdrUnknownAttrs", kHdrUnknownAttrs);
  set("hdrErrno", kHdrErrno);
  set("hdrKernelDrops", kHdrKernelDrops);
  set("hdrForeign", kHdrForeign);
  set("headerSize", kHeaderSize);
  set("ctTs", kCtTs);
  set("ctId", kCtId);
  set("ctStatus", kCtStatus);
  set("ctTimeout", kCtTimeout);
  set("ctMark", kCtMark);
  set("ctZone", kCtZone);
  set("ctKind", kCtKind);
  set("ctFamily", kCtFamily);
  set("ctProto", kCtProto);
  set("ctTcpState", kCtTcpState);
  set("ctOrigSport", kCtOrigSport);
  set("ctOrigDport", kCtOrigDport);
  set("ctReplySport", kCtReplySport);
  set("ctReplyDport", kCtReplyDport);
  set("ctOrigSrc", kCtOrigSrc);
  set("ctOrigDst", kCtOrigDst);
  set("ctReplySrc", kCtReplySrc);
  set("ctReplyDst", kCtReplyDst);
  set("ctRecordSize", kCtRecordSize);
  set("nlTs", kNlTs);
  set("nlSeq", kNlSeq);
  set("nlMark", kNlMark);
  set("nlLen", kNlLen);
  set("nlGroup", kNlGroup);
  set("nlFamily", kNlFamily);
  set("nlProto", kNlProto);
  set("nlSport", kNlSport);
  set("nlDport", kNlDport);
  set("nlHook", kNlHook);
  set("nlFlags", kNlFlags);
  set("nlPrefixLen", kNlPrefixLen);
  set("nlIndex", kNlIndex);
  set("nlOutdex", kNlOutdex);
  set("nlSrc", kNlSrc);
  set("nlDst", kNlDst);
  set("nlIndevName", kNlIndevName);
  set("nlOutdevName", kNlOutdevName);
  set("nlPrefix", kNlPrefix);
  set("nlPrefixMax", kNlPrefixMax);
  set("nlRecordSize", kNlRecordSize);
  set("nlFlagSeq", kNlFlagSeq);
  set("nlFlagIndev", kNlFlagIndev);
  set("nlFlagOutdev", kNlFlagOutdev);
  set("stFound", kStFound);
  set("stInvalid", kStInvalid);
  set("stInsert", kStInsert);
  set("stInsertFailed", kStInsertFailed);
  set("stDrop", kStDrop);
  set("stEarlyDrop", kStEarlyDrop);
  set("stError", kStError);
  set("stSearchRestart", kStSearchRestart);
  set("stClashResolve", kStClashResolve);
  set("stChainTooLong", kStChainTooLong);
  set("stCpus", kStCpus);
  set("stCount", kStCount);
  set("stRecordSize", kStRecordSize);
  return o;
}

}  // namespace

Reader& EnvReader(Napi::Env env) { return env.GetInstanceData<AddonData>()->reader; }
BatchPool& EnvBatchPool(Napi::Env env) { return env.GetInstanceData<AddonData>()->batch_pool; }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  AddonData* data = new AddonData();
  Napi::Function ctor = Source::Define(env);
  data->source_ctor = Napi::Persistent(ctor);
  env.SetInstanceData<AddonData>(data);  // deleted by node-addon-api at environment teardown
  exports.Set("Source", ctor);
  exports.Set("decodeForTest", Napi::Function::New(env, DecodeForTest, "decodeForTest"));
  exports.Set("capture", Napi::Function::New(env, Capture, "capture"));
  exports.Set("limitBatchPool", Napi::Function::New(env, LimitBatchPool, "limitBatchPool"));
  exports.Set("layout", Layout(env));
  exports.Set("readProcNet", Napi::Function::New(env, ReadProcNet, "readProcNet"));
  exports.Set("kernelFacts", Napi::Function::New(env, KernelFacts, "kernelFacts"));
  exports.Set("watchKernel", Napi::Function::New(env, WatchKernel, "watchKernel"));
  return exports;
}

}  // namespace nw

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return nw::Init(env, exports); }
NODE_API_MODULE(natwatch, InitModule)
