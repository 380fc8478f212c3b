/** @ime/ticket: IME tickets, their issuer (the terminating peer) and verifier (the edge). */
export * from './ticket-secret.js';
export * from './ticket-codec.js';
export * from './ticket-issuer.js';
export * from './ticket-verifier.js';
