#!/usr/bin/env bash
# Soak (issue 11, item 10): the 10-minute version of tests/integration/soak.test.mjs, which CI runs
# for 10 s. 10,000 client connections held open, each sending a proxied GET every 5 s (2,000 req/s
# in all), against blnkproxy (2 workers, audit on) and a node Core that answers at once; prints the
# server's RSS idle and under traffic, and fails on any error, non-200, unanswered request, closed
# connection, or RSS growth over SOAK_RSS_GROWTH_MIB (8) after the first third. Not a benchmark of
# speed: of holding up.
#
#   bench/soak.sh                          # 10,000 connections, 600 s
#   SOAK_CONNECTIONS=20000 SOAK_SECONDS=1800 bench/soak.sh
#
# Knobs: SOAK_CONNECTIONS, SOAK_SECONDS, SOAK_RSS_GROWTH_MIB, BLNKPROXY_BIN (default
# build/blnkproxy). Needs node and the integration tests' npm packages (scripts/deps.sh --test).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export SOAK_CONNECTIONS=${SOAK_CONNECTIONS:-10000}
export SOAK_SECONDS=${SOAK_SECONDS:-600}
export BLNKPROXY_BIN=${BLNKPROXY_BIN:-$root/build/blnkproxy}
[ -x "$BLNKPROXY_BIN" ] || { echo "soak: no binary at $BLNKPROXY_BIN (build first, or set BLNKPROXY_BIN)" >&2; exit 1; }
echo "blnkproxy soak: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $("$BLNKPROXY_BIN" --version | head -n1), $SOAK_CONNECTIONS connections, $SOAK_SECONDS s"
cd "$root/tests/integration"
exec node --test --test-reporter=spec soak.test.mjs
