#!/usr/bin/env bash
# Installs the Debian 12 packages blnkproxy needs. Idempotent and quiet when everything is
# already there: apt runs only for what is missing, and its output is shown only if it fails.
#   scripts/deps.sh          what building and running need (`make run`)
#   scripts/deps.sh --test   that, plus what the tests need (`make test`)
#   scripts/deps.sh --package  that, plus what the package test needs (`make test-package`)
set -euo pipefail

packages=(
    build-essential cmake pkg-config
    libevent-dev libjansson-dev libsqlite3-dev libssl-dev libargon2-dev
    libpq-dev
)
case "${1:-}" in
"") ;;
--package)
    # scripts/deb-test.sh: a fresh Debian root (mmdebstrap), lintian, dpkg-shlibdeps (dpkg-dev,
    # part of build-essential), systemd-analyze (systemd).
    packages+=(mmdebstrap lintian systemd)
    ;;
--test)
    # Unit tests (cmocka), fuzz build (clang + its libFuzzer runtime), tools the integration
    # tests run (sqlite3, openssl, git for the version test, curl as a client of the TLS
    # listener, mount for the full-disk test's tmpfs), and npm's TLS trust.
    packages+=(libcmocka-dev clang libclang-rt-14-dev sqlite3 openssl git ca-certificates curl mount)
    # The fuzz build compiles llhttp from the C sources this package installs, as the oracle of
    # the differential request-parser fuzz target (tests/fuzz/fuzz_http_llhttp.c).
    packages+=(node-llhttp)
    # chromium drives the OAuth authorize page in a real browser; prometheus brings promtool,
    # which checks /metrics with Prometheus's own parser.
    packages+=(chromium prometheus)
    # PostgreSQL 15: the tests start their own throw-away server (scripts/pg-test-server.sh);
    # postgresql-client brings psql and pg_dump for the integration tests.
    packages+=(postgresql postgresql-client)
    # HAProxy in front of three nodes: the cluster test (tests/integration/cluster.test.mjs).
    packages+=(haproxy)
    # groff and man render the generated man pages with warnings on (docs.test.mjs); zsh runs
    # the generated zsh completion in a real interactive shell (docs.test.mjs).
    packages+=(groff-base man-db zsh)
    # The seccomp test runs serve under the unit's system call filter (libseccomp), expanded by
    # systemd-analyze (systemd).
    packages+=(libseccomp-dev systemd)
    # The integration tests run on Debian 12's own node (18.20, tests/integration/package.json
    # "engines"); a node already on PATH (e.g. a newer one from nodesource) is used as it is.
    if ! command -v node >/dev/null 2>&1; then
        packages+=(nodejs)
    fi
    if ! command -v npm >/dev/null 2>&1; then
        packages+=(npm)
    fi
    ;;
*)
    echo "usage: scripts/deps.sh [--test | --package]" >&2
    exit 2
    ;;
esac

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
# PostgreSQL refuses to run as root: the test server runs as this system user when the tests run
# as root (CI does). Debian's postgresql package may have started its own cluster; the tests never
# use it.
if [ "${1:-}" = "--test" ] && [ "$(id -u)" -eq 0 ] && ! id -u blnkproxy-test >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin blnkproxy-test
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq &&
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "deps: apt-get failed (its output above); the packages needed: ${missing[*]}" >&2
    exit 1
fi
