/**
 * How a peer process should be launched when it holds a large store. Measured with 1 000 000 records
 * (bench ring "rss"): V8's default young generation (16 MB semi-spaces) and glibc's per-thread malloc
 * arenas keep 60–100 MB of freed memory resident after a bulk publication or handoff; a 4 MB
 * semi-space and two arenas give most of it back for a few percent more scavenges. They can only be
 * set when Node starts (V8 ignores the flag at run time, glibc reads the variable at load), so the
 * launcher applies them: the harness, `ime ring up`, and docker/compose.yaml.
 */
export const PEER_PROCESS_NODE_ARGS: readonly string[] = ['--max-semi-space-size=4'];
export const PEER_PROCESS_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };
