/** @ime/admission: who may be in the ring — the signed ring configuration, ring certificates, roster rules. Pure. */
export * from './ring-certificate.js';
export * from './ring-configuration.js';
export * from './admission.js';
export * from './protocols.js';
