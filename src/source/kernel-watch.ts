// Change notifications for the kernel facts natwatch reads once and then keeps: the nf_tables
// ruleset (NFNLGRP_NFTABLES) and interface addresses (RTMGRP_IPV4/IPV6_IFADDR, RTMGRP_LINK).
// The addon drains each burst on the event loop (native/kernel-facts.cc watchKernel); here a
// burst becomes one debounced call per kind, so a 100-rule `nft -f` is read once, not 100 times.
// iptables-legacy changes send no notification: callers that need them poll (rarely).
import { loadNative } from './native.js';
import { mapFactsError } from './ruleset.js';

export type ChangeKind = 'ruleset' | 'addresses';

export interface KernelWatch {
  close(): void;
}

export function watchKernelChanges(
  netns: string | null,
  what: { ruleset: boolean; addresses: boolean },
  onChange: (kind: ChangeKind) => void,
  debounceMs = 200,
): KernelWatch {
  const timers = new Map<ChangeKind, NodeJS.Timeout>();
  let closed = false;
  let handle: { close(): void };
  try {
    handle = loadNative().watchKernel({ netns, ...what }, (kind) => {
      if (closed || timers.has(kind)) return;
      const t = setTimeout(() => {
        timers.delete(kind);
        if (closed) return;
        try {
          onChange(kind);
        } catch {
          // the consumer reports its own failures; a throw must not reach the addon's callback
        }
      }, debounceMs);
      t.unref();
      timers.set(kind, t);
    });
  } catch (err) {
    throw mapFactsError(err, netns);
  }
  return {
    close() {
      if (closed) return;
      closed = true;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      handle.close();
    },
  };
}
