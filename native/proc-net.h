// Reading a namespace's /proc/net tables (the ones /proc/sys does not cover) without moving the
// process: the netns helper thread reads /proc/thread-self/net/NAME, which follows the calling
// thread's namespace (/proc/self/net would follow the process's). An allow-list of names.
#pragma once
#include <napi.h>

namespace nw {

/** readProcNet(netns: string|null, names: string[]) → {name: string|null}; names from the
 *  allow-list only ('netlink', 'netfilter/nfnetlink_log'), others are a TypeError. */
Napi::Value ReadProcNet(const Napi::CallbackInfo& info);

}  // namespace nw
