#!/usr/bin/env node
// Entry point of the `ime` command. The polyfill must be evaluated before anything that may load
// libp2p, so it is imported first and the CLI itself is loaded afterwards.
try {
  await import('@ime/core/polyfill');
  const { runFromProcess } = await import('../dist/main.js');
  await runFromProcess();
} catch (err) {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    process.stderr.write('ime: E_NOT_BUILT: the project is not built yet; run `npm run build` in the repository first\n');
    process.exitCode = 1;
  } else {
    throw err;
  }
}
