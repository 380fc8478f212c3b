/** @ime/harness */
export {};
