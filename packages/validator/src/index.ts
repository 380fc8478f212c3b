/**
 * @ime/validator: turns voice call records into validations, buckets and tickets (SPEC §6). The VCR
 * stores come first: what the call managers upload over VAP, kept for validation.
 */
export * from './vcr-store.js';
