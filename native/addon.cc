// Module init: per-environment data through SetInstanceData (no static objects with
// destructors), the Source class, the test/capture entry points, and the batch layout so the
// TypeScript codec can check it mirrors batch-layout.h.
#include <napi.h>

#include "batch-layout.h"
#include "debug.h"
#include "source.h"

namespace nw {
namespace {

struct AddonData {
  Napi::FunctionReference source_ctor;
};

Napi::Object Layout(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  auto set = [&](const char* k, uint32_t v) { o.Set(k, Napi::Number::New(env, v)); };
  set("magic", kBatchMagic);
  set("version", kBatchVersion);
  set("headerSize", kHeaderSize);
  set("hdrCount", kHdrCount);
  set("hdrRecordSize", kHdrRecordSize);
  set("hdrEnobufs", kHdrEnobufs);
  set("hdrDropped", kHdrDropped);
  set("hdrSeqGap", kHdrSeqGap);
  set("hdrDecodeErrors", kHdrDecodeErrors);
  set("hdrUnknownAttrs", kHdrUnknownAttrs);
  set("hdrErrno", kHdrErrno);
  set("hdrKernelDrops", kHdrKernelDrops);
  set("ctRecordSize", kCtRecordSize);
  set("ctOrigSrc", kCtOrigSrc);
  set("ctReplyDst", kCtReplyDst);
  set("ctTcpState", kCtTcpState);
  set("ctOrigSport", kCtOrigSport);
  set("ctReplyDport", kCtReplyDport);
  set("nlRecordSize", kNlRecordSize);
  set("nlPrefix", kNlPrefix);
  set("nlIndevName", kNlIndevName);
  set("nlOutdevName", kNlOutdevName);
  set("nlSeq", kNlSeq);
  set("stRecordSize", kStRecordSize);
  set("stCount", kStCount);
  return o;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  AddonData* data = new AddonData();
  Napi::Function ctor = Source::Define(env);
  data->source_ctor = Napi::Persistent(ctor);
  env.SetInstanceData<AddonData>(data);  // deleted by node-addon-api at environment teardown
  exports.Set("Source", ctor);
  exports.Set("decodeForTest", Napi::Function::New(env, DecodeForTest, "decodeForTest"));
  exports.Set("capture", Napi::Function::New(env, Capture, "capture"));
  exports.Set("layout", Layout(env));
  return exports;
}

}  // namespace nw

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return nw::Init(env, exports); }
NODE_API_MODULE(natwatch, InitModule)
