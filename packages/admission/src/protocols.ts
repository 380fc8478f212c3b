/** The libp2p protocols of the ring (docs/RING.md "Roles and protocols"), shared by peers and bootstraps. */
export const ENROLL_PROTOCOL = '/ime/enroll/1.0.0';
export const CONFIG_PROTOCOL = '/ime/config/1.0.0';
export const BOOTSTRAP_SYNC_PROTOCOL = '/ime/bootstrap-sync/1.0.0';
export const RING_PROTOCOL = '/ime/ring/1.0.0';
/** Version carried by every top-level message of these protocols. */
export const WIRE_VERSION = 1;
