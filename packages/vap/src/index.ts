/**
 * @ime/vap: VAP server: call managers connect, authenticate, publish numbers and VCRs.
 *
 * Not built yet; its issue fills this package. It exists now so the workspace graph and the build
 * are complete from the start.
 */
export {};
