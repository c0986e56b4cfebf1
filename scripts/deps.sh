#!/usr/bin/env bash
# Installs the Debian packages blnkproxy needs to build and test. Idempotent and quiet when
# everything is already there: apt runs only for what is missing.
set -euo pipefail

packages=(
    build-essential cmake pkg-config
    libevent-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev libssl-dev libargon2-dev
    libpq-dev
)
if [ "${1:-}" = "--test" ]; then
    packages+=(libcmocka-dev clang libclang-rt-14-dev sqlite3 openssl ca-certificates)
    # chromium drives the OAuth authorize page in a real browser; prometheus brings promtool,
    # which checks /metrics with Prometheus's own parser.
    packages+=(chromium prometheus)
    # PostgreSQL 15: the tests start their own throw-away server (scripts/pg-test-server.sh);
    # postgresql-client brings psql and pg_dump for the integration tests.
    packages+=(postgresql postgresql-client)
    command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# PostgreSQL refuses to run as root: the test server runs as this system user when the tests run
# as root (CI does). Debian's postgresql package may have started its own cluster; the tests never
# use it.
if [ "${1:-}" = "--test" ] && [ "$(id -u)" -eq 0 ] && ! id -u blnkproxy-test >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin blnkproxy-test
fi
