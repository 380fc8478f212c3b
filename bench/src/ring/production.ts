import { peerConfigSchema } from '@ime/peer';

/** Production timers (the peer configuration's defaults), not the harness's short test timers. */
export const PRODUCTION_TUNING = (() => {
  const f = peerConfigSchema.tuning.fields;
  return {
    pingIntervalMs: f.pingIntervalMs.default,
    pingMisses: f.pingMisses.default,
    rpcTimeoutMs: f.rpcTimeoutMs.default,
    antiEntropyIntervalSec: f.antiEntropyIntervalSec.default,
    expirySweepSec: f.expirySweepSec.default,
  };
})();
