#!/usr/bin/env bash
# Sign-in flood (issue 11, item 5): client_credentials latency idle and while 200 addresses
# (127.0.x.y) flood the authorize page with wrong passwords, each an Argon2id verification. Runs
# tests/integration/oauth_signin_flood.test.mjs BENCH_ROUNDS times (3) and prints its line per
# round: the sign-ins' statuses, the token requests' statuses, and their p50/p99 in ms, idle
# (40 sequential requests) and under the flood (4 at a time for as long as it lasts). The test
# asserts what must hold (every token request 200, sign-ins 429 and never 503), never a time.
#
# Knobs: BENCH_ROUNDS, BLNKPROXY_BIN (default build/blnkproxy). Needs node and the integration
# tests' npm packages (scripts/deps.sh --test).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BLNKPROXY_BIN=${BLNKPROXY_BIN:-$root/build/blnkproxy}
rounds=${BENCH_ROUNDS:-3}
[ -x "$BLNKPROXY_BIN" ] || { echo "signin_flood: no binary at $BLNKPROXY_BIN" >&2; exit 1; }
echo "blnkproxy signin_flood: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $("$BLNKPROXY_BIN" --version | head -n1), $rounds round(s)"
cd "$root/tests/integration"
for i in $(seq 1 "$rounds"); do
    out=$(node --test oauth_signin_flood.test.mjs 2>&1) || { printf '%s\n' "$out" >&2; exit 1; }
    printf '%s\n' "$out" | sed -n 's/^# sign-ins:/round '"$i"': sign-ins:/p'
done
