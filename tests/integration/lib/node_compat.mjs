// node_compat.mjs — the one place where the integration suite bridges node versions.
//
// The suite must run on Debian 12's own `nodejs` (18.20) as well as on newer node (20+): a fresh
// Debian 12 machine has only the former, and `make test` installs nothing else (README, quick
// start). Every test file gets this module before anything else: tests/CMakeLists.txt passes it
// with `--import`, and lib/harness.mjs imports it too, so `node --test x.test.mjs` by hand works
// as well. When a test or one of its npm packages needs something node 18 lacks, add the shim
// here, not in the test.
//
// Shims, each only where the global is missing:
//   globalThis.crypto  Web Crypto (node 19+ has it as a global; node 18 only as
//                      require('node:crypto').webcrypto). oauth4webapi calls crypto.subtle and
//                      crypto.getRandomValues on the global.

import { webcrypto } from 'node:crypto';

if (globalThis.crypto === undefined) {
    Object.defineProperty(globalThis, 'crypto', {
        value: webcrypto,
        writable: true,
        configurable: true,
        enumerable: false,
    });
}
