// jest runs the TypeScript sources directly (swc), as native ESM, with the Node 20 polyfill loaded
// before any test module: libp2p needs Promise.withResolvers and jest's realm does not see --import.
// test/reliability/ (churn, crash safety, partition, fuzzing, attacks) runs only as `npm run
// test:reliability` (IME_TEST_SUITE=reliability): it is long, so `npm test` leaves it out.
const reliability = process.env.IME_TEST_SUITE === 'reliability';
/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/packages', '<rootDir>/test', '<rootDir>/bench'],
  testMatch: reliability ? ['<rootDir>/test/reliability/**/*.test.ts'] : ['**/test/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/', ...(reliability ? [] : ['/test/reliability/'])],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'es6' } }],
  },
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: {
    '^@ime/([a-z-]+)$': '<rootDir>/packages/$1/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  setupFiles: ['<rootDir>/packages/core/src/polyfill.ts'],
  testTimeout: reliability ? 600000 : 30000,
};
