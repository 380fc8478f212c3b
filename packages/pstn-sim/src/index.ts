/**
 * @ime/pstn-sim: Simulated PSTN switch that call-manager simulators attach to.
 *
 * Not built yet; its issue fills this package. It exists now so the workspace graph and the build
 * are complete from the start.
 */
export {};
