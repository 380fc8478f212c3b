/**
 * @ime/peer: Ring peer (IME server): admitted libp2p ring member storing DID records.
 *
 * Not built yet; its issue fills this package. It exists now so the workspace graph and the build
 * are complete from the start.
 */
export {};
