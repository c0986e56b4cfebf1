#!/usr/bin/env bash
# deb-test: the Debian package through its life in a fresh Debian 12 root (issue 14, item 1).
#
#   scripts/deb-test.sh [WORKDIR]        (root; network to the Debian mirror; a few minutes)
#
# 1. builds the package twice from this tree (cmake for /usr with dpkg-buildflags, cpack): as
#    <version>-1 and as <version>-2, the upgrade;
# 2. runs lintian on the first: no error, and no warning that packaging/lintian-accepted does not
#    list;
# 3. unpacks a fresh bookworm root (mmdebstrap --variant=apt, cached as a tarball in
#    $BP_DEB_TEST_CACHE, default /var/cache/blnkproxy-deb-test) and there:
#    - apt-get install ./blnkproxy_<version>-1_<arch>.deb: Depends come from the archive;
#      checks the user, /var/lib/blnkproxy (0700), the config (conffile, root:blnkproxy 0640),
#      the unit (enabled), man pages and completions; systemd-analyze verify passes on the unit;
#    - starts the installed binary as the blnkproxy user, as the unit would, with the packaged
#      config; /healthz and /readyz answer; the CLI adds an instance to the packaged store;
#    - edits the config, installs <version>-2: the edit, the store and the user are kept;
#    - apt-get purge: the package's files, its state under /var/lib and the config are gone;
#      the system user stays (README: "Installing the Debian package").
# Exit 0 when every check passed; the failed checks are listed otherwise.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mkdir -p "${1:-$src/build-debtest}" && cd "${1:-$src/build-debtest}" && pwd)
cache=${BP_DEB_TEST_CACHE:-/var/cache/blnkproxy-deb-test}
root=$work/root
fails=()
pids=()
t0=$(date +%s)

say() { printf 'deb-test: %s\n' "$*"; }
check() { # check DESCRIPTION COMMAND...: runs COMMAND; records DESCRIPTION when it fails
    local what=$1
    shift
    if "$@"; then
        say "ok: $what"
    else
        say "FAILED: $what"
        fails+=("$what")
    fi
}
in_root() { chroot "$root" "$@"; }

cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ -d "$root" ]; then
        for m in dev proc sys; do
            umount -R -l "$root/$m" 2>/dev/null || true
        done
        rm -rf --one-file-system "$root"
    fi
}
trap cleanup EXIT

if [ "$(id -u)" -ne 0 ]; then
    echo "deb-test: needs root (chroot, mounts, dpkg in the fresh root)" >&2
    exit 1
fi
for tool in mmdebstrap lintian dpkg-deb dpkg-buildflags cmake cpack systemd-analyze setpriv; do
    if ! command -v "$tool" >/dev/null; then
        echo "deb-test: $tool is missing: scripts/deps.sh --package installs what this test needs" >&2
        exit 1
    fi
done

# ---- 1. two builds of the package ----

build=$work/build
debs=$work/debs
rm -rf "$debs"
mkdir -p "$debs"
say "building the package in $build"
CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)" \
    LDFLAGS="$(dpkg-buildflags --get LDFLAGS)" \
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
    -DBP_TESTS=OFF -DBP_DEB_RELEASE=1 >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" >"$work/build.log" 2>&1 || { tail -50 "$work/build.log"; exit 1; }
(cd "$build" && cpack -G DEB >"$work/cpack1.log" 2>&1) || { cat "$work/cpack1.log"; exit 1; }
deb1=$(ls "$build"/blnkproxy_*-1_*.deb)
cp "$deb1" "$debs/"
cmake -S "$src" -B "$build" -DBP_DEB_RELEASE=2 >>"$work/cmake.log" 2>&1
cmake --build "$build" >>"$work/build.log" 2>&1
(cd "$build" && cpack -G DEB >"$work/cpack2.log" 2>&1) || { cat "$work/cpack2.log"; exit 1; }
deb2=$(ls "$build"/blnkproxy_*-2_*.deb)
cp "$deb2" "$debs/"
cmake -S "$src" -B "$build" -DBP_DEB_RELEASE=1 >>"$work/cmake.log" 2>&1
deb1=$debs/$(basename "$deb1")
deb2=$debs/$(basename "$deb2")
v1=$(dpkg-deb -f "$deb1" Version)
v2=$(dpkg-deb -f "$deb2" Version)
say "built $(basename "$deb1") and $(basename "$deb2")"
# evdns comes from libevent-2.1-7 (libevent_pthreads.pc requires libevent, the library that holds
# core and extra), so the linker never needs libevent_extra itself: no libevent-extra in Depends.
check "Depends names the shared libraries the binary links, libpq5 (loaded for a PostgreSQL store) and adduser" \
    bash -c 'd=$(dpkg-deb -f "$1" Depends); for l in libc6 libevent-core libevent-2.1-7 libevent-pthreads libjansson4 libsqlite3-0 libpq5 libssl3 libargon2-1 adduser; do case "$d" in *"$l"*) ;; *) echo "no $l in: $d"; exit 1;; esac; done' _ "$deb1"
check "the config is a conffile" bash -c 'rm -rf "$2/ctrl" && dpkg-deb -e "$1" "$2/ctrl" && grep -qx /etc/blnkproxy/blnkproxy.json "$2/ctrl/conffiles"' _ "$deb1" "$work"
check "dpkg --compare-versions: $v2 is an upgrade of $v1" dpkg --compare-versions "$v2" gt "$v1"

# ---- 2. lintian ----

lintian_out=$work/lintian.txt
lintian --pedantic --tag-display-limit 0 "$deb1" >"$lintian_out" 2>&1 || true
say "lintian:"
sed 's/^/    /' "$lintian_out"
check "lintian reports no error" bash -c '! grep -q "^E:" "$1"' _ "$lintian_out"
check "lintian warns only about the tags packaging/lintian-accepted lists" bash -c '
    accepted=$(grep -v "^#" "$1" | awk "NF {print \$1}")
    for tag in $(awk "/^W:/ {print \$3}" "$2" | sort -u); do
        echo "$accepted" | grep -qx "$tag" || { echo "not accepted: $tag"; exit 1; }
    done' _ "$src/packaging/lintian-accepted" "$lintian_out"

# ---- 3. a fresh Debian 12 root ----

mkdir -p "$cache"
tarball=$cache/bookworm-apt.tar
if [ ! -s "$tarball" ] || [ -n "$(find "$tarball" -mtime +7 2>/dev/null)" ]; then
    say "making a fresh bookworm root with mmdebstrap (cached in $tarball)"
    sources=()
    # The machine's own sources (mirror, updates, security), as the package was built against them.
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sources=(/etc/apt/sources.list.d/debian.sources)
    fi
    # mmdebstrap picks the output format from the name: keep .tar at the end.
    mmdebstrap --variant=apt bookworm "$cache/new.tar" "${sources[@]}" >"$work/mmdebstrap.log" 2>&1 ||
        { tail -30 "$work/mmdebstrap.log"; exit 1; }
    mv "$cache/new.tar" "$tarball"
fi
rm -rf --one-file-system "$root"
mkdir -p "$root"
tar -C "$root" -xf "$tarball"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
mkdir -p "$root/debs"
cp "$deb1" "$deb2" "$root/debs/"

apt_in_root() {
    in_root env DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Use-Pty=0 "$@" >>"$work/apt.log" 2>&1
}
say "apt-get install ./$(basename "$deb1") in the fresh root"
apt_in_root update -qq || { tail -20 "$work/apt.log"; exit 1; }
check "apt-get install ./$(basename "$deb1") resolves Depends from the archive" \
    in_root sh -c "cd /debs && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 ./$(basename "$deb1") >>/debs/apt-install.log 2>&1" ||
    { cat "$root/debs/apt-install.log"; exit 1; }
check "dpkg says $v1 is installed" test "$(in_root dpkg-query -W -f '${Status} ${Version}' blnkproxy)" = "install ok installed $v1"
check "every library the binary needs is there" bash -c '! chroot "$1" ldd /usr/bin/blnkproxy | grep -q "not found"' _ "$root"
# ldd cannot see libpq: the binary loads it only for a PostgreSQL store. A store on a closed port
# must fail to connect (libpq's own message), not for want of libpq.
check "a PostgreSQL store loads libpq (a closed port: connection refused)" \
    bash -c 'out=$(chroot "$1" /usr/bin/blnkproxy db status --db postgres://u@127.0.0.1:1/none 2>&1); [[ $out == *"Connection refused"* ]] || { echo "$out"; exit 1; }' _ "$root"
check "the blnkproxy system user exists (uid < 1000, no login shell, home /var/lib/blnkproxy)" bash -c '
    IFS=: read -r _ _ uid _ _ home shell < <(chroot "$1" getent passwd blnkproxy)
    [ "$uid" -lt 1000 ] && [ "$home" = /var/lib/blnkproxy ] && [ "$shell" = /usr/sbin/nologin ]' _ "$root"
uid1=$(in_root id -u blnkproxy)
# stat in the root: the names are the root's, not this machine's.
mode_of() { in_root stat -c '%a %U:%G' "$1"; }
check "/var/lib/blnkproxy is 0700 blnkproxy:blnkproxy" test "$(mode_of /var/lib/blnkproxy)" = "700 blnkproxy:blnkproxy"
check "/etc/blnkproxy/blnkproxy.json is 0640 root:blnkproxy" test "$(mode_of /etc/blnkproxy/blnkproxy.json)" = "640 root:blnkproxy"
check "dpkg knows the config as a conffile" bash -c 'chroot "$1" dpkg-query -W -f "\${Conffiles}" blnkproxy | grep -q "/etc/blnkproxy/blnkproxy.json "' _ "$root"
for f in /usr/bin/blnkproxy /usr/share/man/man1/blnkproxy.1.gz /usr/share/man/man5/blnkproxy.json.5.gz \
    /usr/share/bash-completion/completions/blnkproxy /usr/share/zsh/vendor-completions/_blnkproxy \
    /lib/systemd/system/blnkproxy.service /usr/share/doc/blnkproxy/copyright; do
    check "$f is installed" test -f "$root$f"
done
check "the unit is enabled (multi-user.target.wants)" test -L "$root/etc/systemd/system/multi-user.target.wants/blnkproxy.service"
check "the installed bash completion registers itself" \
    bash -c 'chroot "$1" bash -c "source /usr/share/bash-completion/completions/blnkproxy && complete -p blnkproxy" | grep -qx "complete -F _blnkproxy blnkproxy"' _ "$root"

# systemd-analyze verify needs the unit's world: systemd's own units and /bin/kill (procps) in
# the root, and man to find the Documentation= pages.
say "systemd-analyze verify (systemd, procps and man-db installed into the root for it)"
apt_in_root install -y -qq --no-install-recommends systemd procps man-db || { tail -20 "$work/apt.log"; exit 1; }
check "systemd-analyze verify passes on the installed unit" \
    bash -c 'chroot "$1" systemd-analyze verify /lib/systemd/system/blnkproxy.service >"$2/verify.log" 2>&1 || { cat "$2/verify.log"; exit 1; }
             ! grep -q . "$2/verify.log" || { cat "$2/verify.log"; exit 1; }' _ "$root" "$work"
check "man finds both pages in the root" bash -c 'chroot "$1" man -w blnkproxy >/dev/null && chroot "$1" man -w 5 blnkproxy.json >/dev/null' _ "$root"

# serve as the unit runs it (User=blnkproxy, the packaged config), on a free port: the machine
# is shared, so the test does not take the packaged 8080.
serve_log=""
serve_pid=""
start_serve() { # start_serve LOG: sets serve_pid and port
    serve_log=$1
    # Run directly, not through a function: $! must be the pid that becomes blnkproxy (chroot
    # and setpriv exec it).
    chroot "$root" setpriv --reuid=blnkproxy --regid=blnkproxy --init-groups -- \
        /usr/bin/blnkproxy serve --config /etc/blnkproxy/blnkproxy.json --listen 127.0.0.1:0 2>"$serve_log" &
    serve_pid=$!
    pids+=("$serve_pid")
    port=""
    for _ in $(seq 1 100); do
        port=$(grep -o '"msg":"listening".*"port":[0-9]*' "$serve_log" | grep -o '"port":[0-9]*' | cut -d: -f2 || true)
        [ -n "$port" ] && return 0
        kill -0 "$serve_pid" 2>/dev/null || break
        sleep 0.2
    done
    say "serve did not start:"
    cat "$serve_log"
    return 1
}
stop_serve() {
    kill -TERM "$serve_pid"
    wait "$serve_pid"
}

say "starting the installed binary as the blnkproxy user with the packaged config"
check "serve starts from the package" start_serve "$work/serve1.log"
check "/healthz answers 200" bash -c 'r=$(exec 3<>/dev/tcp/127.0.0.1/$1; printf "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" >&3; timeout 10 cat <&3); [[ $r == "HTTP/1.1 200 "* && $r == *"{\"status\":\"ok\"}"* ]]' _ "$port"
check "/readyz answers 200" bash -c 'r=$(exec 3<>/dev/tcp/127.0.0.1/$1; printf "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" >&3; timeout 10 cat <&3); [[ $r == "HTTP/1.1 200 "* ]]' _ "$port"
check "the CLI adds an instance to the packaged store, as the service user" \
    bash -c 'chroot "$1" setpriv --reuid=blnkproxy --regid=blnkproxy --init-groups -- /usr/bin/blnkproxy --db /var/lib/blnkproxy/blnkproxy.db instance add --name core --url http://127.0.0.1:9 --json >"$2/cli.log" 2>&1 || { cat "$2/cli.log"; exit 1; }' _ "$root" "$work"
check "serve stops at SIGTERM with exit 0" stop_serve
check "the store is 0600 blnkproxy:blnkproxy" test "$(mode_of /var/lib/blnkproxy/blnkproxy.db)" = "600 blnkproxy:blnkproxy"

# ---- upgrade ----

say "editing the config, then apt-get install ./$(basename "$deb2")"
sed -i 's/"log_level": "info",/"log_level": "info",\n  "max_connections": 5000,/' "$root/etc/blnkproxy/blnkproxy.json"
check "apt-get install ./$(basename "$deb2") upgrades" \
    in_root sh -c "cd /debs && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 ./$(basename "$deb2") >>/debs/apt-install.log 2>&1"
check "dpkg says $v2 is installed" test "$(in_root dpkg-query -W -f '${Status} ${Version}' blnkproxy)" = "install ok installed $v2"
check "the edited config is kept" grep -q '"max_connections": 5000' "$root/etc/blnkproxy/blnkproxy.json"
check "the config stays 0640 root:blnkproxy" test "$(mode_of /etc/blnkproxy/blnkproxy.json)" = "640 root:blnkproxy"
check "the user keeps its uid" test "$(in_root id -u blnkproxy)" = "$uid1"
check "serve starts after the upgrade" start_serve "$work/serve2.log"
check "/healthz answers 200 after the upgrade" bash -c 'r=$(exec 3<>/dev/tcp/127.0.0.1/$1; printf "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" >&3; timeout 10 cat <&3); [[ $r == "HTTP/1.1 200 "* ]]' _ "$port"
check "the store kept its instance" bash -c 'chroot "$1" setpriv --reuid=blnkproxy --regid=blnkproxy --init-groups -- /usr/bin/blnkproxy --db /var/lib/blnkproxy/blnkproxy.db instance list --json | grep -q "\"name\":\"core\""' _ "$root"
check "serve stops at SIGTERM with exit 0 after the upgrade" stop_serve

# ---- purge ----

say "apt-get purge blnkproxy"
check "apt-get purge succeeds" apt_in_root purge -y -qq blnkproxy
check "dpkg no longer lists the package" bash -c '! chroot "$1" dpkg-query -W -f "\${Status}" blnkproxy 2>/dev/null | grep -q installed' _ "$root"
for f in /usr/bin/blnkproxy /etc/blnkproxy /var/lib/blnkproxy /lib/systemd/system/blnkproxy.service \
    /etc/systemd/system/multi-user.target.wants/blnkproxy.service \
    /var/lib/systemd/deb-systemd-helper-enabled/blnkproxy.service.dsh-also \
    /usr/share/man/man1/blnkproxy.1.gz /usr/share/bash-completion/completions/blnkproxy /usr/share/doc/blnkproxy; do
    check "purge removed $f" test ! -e "$root$f"
done
check "purge removed the config's statoverride" bash -c '! chroot "$1" dpkg-statoverride --list /etc/blnkproxy/blnkproxy.json' _ "$root"
check "the blnkproxy system user stays after purge (Debian practice; README)" bash -c 'chroot "$1" getent passwd blnkproxy >/dev/null' _ "$root"

say "finished in $(($(date +%s) - t0)) s"
if [ ${#fails[@]} -gt 0 ]; then
    say "${#fails[@]} check(s) failed:"
    printf '    %s\n' "${fails[@]}"
    exit 1
fi
say "every check passed"
