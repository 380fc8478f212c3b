/**
 * @ime/validator: Validator: turns VCRs into validations, buckets and tickets.
 *
 * Not built yet; its issue fills this package. It exists now so the workspace graph and the build
 * are complete from the start.
 */
export {};
