#!/usr/bin/python3
"""Helper of bench/keys_scale.sh and bench/audit_pg.sh: the parts that need more precision
than curl in a shell loop. It starts no server; the shell scripts start and stop every process.

  gen           write SQL (SQLite) or COPY text (PostgreSQL) for N-1 API keys on stdout, in the
                row format of a key that `blnkproxy key create` made; the secrets of a few of
                them go to --keys-out (mode 600), for the revocations and the load
  wait-ready    wait for a serve process's "listening" log line, then poll /readyz until 200;
                print "PORT MS" (milliseconds since --t0-ns)
  revoke        revoke keys one at a time through the CLI (the store in $BLNKPROXY_DB) while
                every node is polled with the key being revoked; time until every node answers 401
  rss           print "VmRSS VmHWM" of a process in KiB

Only the standard library: Debian's /usr/bin/python3 runs it as it is.
"""

import argparse
import hashlib
import http.client
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def die(msg):
    print(f"scale_helper: {msg}", file=sys.stderr)
    sys.exit(1)


def b32(value, width):
    out = []
    for _ in range(width):
        out.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


# ---- gen ---------------------------------------------------------------------------------------

def secret_for(seed, i):
    # "blnk_" + 64 lower-case hex, as bp_apikey_generate makes them; derived from a per-run seed
    # so that the script can use any of them without storing a million secrets.
    return "blnk_" + hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()


def cmd_gen(a):
    n = a.count
    if n < 0:
        die("--count must be >= 0")
    # ULIDs: 48-bit millisecond time, then 80 bits that here count up from a random start, so
    # that ids are unique, sorted like the CLI's (time first) and valid Crockford base32.
    now_ms = int(time.time() * 1000)
    rand0 = random.SystemRandom().getrandbits(79)
    revoke_idx = set()
    if a.revoke_count > 0 and n > 0:
        step = max(1, n // a.revoke_count)
        revoke_idx = {min(n - 1, k * step) for k in range(a.revoke_count)}
        if len(revoke_idx) < a.revoke_count:
            die(f"{n} keys cannot hold {a.revoke_count} distinct keys to revoke")
    # The key wrk uses: one that is never revoked (the last, or the middle when that is taken).
    load_idx = n - 1
    while load_idx in revoke_idx and load_idx > 0:
        load_idx -= 1
    if n > 0 and load_idx in revoke_idx:
        die("no key is left for the load run after the revocations")

    fd = os.open(a.keys_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as kf:
        for i in sorted(revoke_idx):
            kf.write(f"revoke\t{ulid_id(now_ms, rand0, i)}\t{secret_for(a.seed, i)}\n")
        if n > 0:
            kf.write(f"load\t{ulid_id(now_ms, rand0, load_idx)}\t{secret_for(a.seed, load_idx)}\n")

    out = sys.stdout
    scopes = a.scopes
    inst = a.instances
    created = a.created_at
    expires = a.expires_at
    if a.kind == "sqlite":
        for ch in (scopes, inst):
            if "'" in ch:
                die("quote in a copied column")
        inst_sql = "NULL" if inst == "" else f"'{inst}'"
        out.write("PRAGMA synchronous=OFF;\nBEGIN;\n")
        batch = 500
        for start in range(0, n, batch):
            rows = []
            for i in range(start, min(n, start + batch)):
                key = secret_for(a.seed, i)
                digest = hashlib.sha256(key.encode()).hexdigest()
                rows.append(f"('{ulid_id(now_ms, rand0, i)}','bench-{i}','{key[:13]}',X'{digest}',"
                            f"'{scopes}',{inst_sql},{created},{expires},0,0,0)")
            out.write("INSERT INTO api_keys (id,name,prefix,digest,scopes,instances,created_at,"
                      "expires_at,last_used_at,revoked,revoked_at) VALUES\n")
            out.write(",\n".join(rows))
            out.write(";\n")
        out.write("COMMIT;\n")
    else:
        # COPY text format: tab-separated, \N for NULL, bytea as \\x<hex> (the backslash escaped).
        inst_copy = "\\N" if inst == "" else inst
        buf = []
        for i in range(n):
            key = secret_for(a.seed, i)
            digest = hashlib.sha256(key.encode()).hexdigest()
            buf.append(f"{ulid_id(now_ms, rand0, i)}\tbench-{i}\t{key[:13]}\t\\\\x{digest}\t{scopes}\t"
                       f"{inst_copy}\t{created}\t{expires}\t0\tf\t0\n")
            if len(buf) >= 5000:
                out.write("".join(buf))
                buf = []
        out.write("".join(buf))
    out.flush()


def ulid_id(now_ms, rand0, i):
    return "key_" + b32(now_ms, 10) + b32(rand0 + i, 16)


# ---- wait-ready --------------------------------------------------------------------------------

LISTEN_RE = re.compile(r'"msg":"listening".*?"port":(\d+)')


def log_tail(path, n=10):
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except OSError:
        return False


def cmd_wait_ready(a):
    deadline = time.monotonic() + a.timeout
    port = None
    while port is None:
        if not alive(a.pid):
            die(f"serve (pid {a.pid}) exited before listening; log tail:\n{log_tail(a.log)}")
        try:
            with open(a.log, "r", errors="replace") as f:
                m = LISTEN_RE.search(f.read(1 << 20))
            if m:
                port = int(m.group(1))
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            die(f"serve (pid {a.pid}) did not log a listening port within {a.timeout}s")
        time.sleep(0.002)
    while True:
        status = 0
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/readyz")
            r = c.getresponse()
            r.read()
            status = r.status
            c.close()
        except OSError:
            pass
        if status == 200:
            ms = (time.time_ns() - a.t0_ns) / 1e6
            print(f"{port} {ms:.1f}")
            return
        if not alive(a.pid):
            die(f"serve (pid {a.pid}) exited before /readyz answered 200; log tail:\n{log_tail(a.log)}")
        if time.monotonic() > deadline:
            die(f"serve (pid {a.pid}) /readyz did not answer 200 within {a.timeout}s (last status {status})")
        time.sleep(0.005)


# ---- rss -----------------------------------------------------------------------------------------

def rss(pid):
    vals = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    vals[k] = int(v.split()[0])
    except OSError:
        return (0, 0)
    return (vals.get("VmRSS", 0), vals.get("VmHWM", 0))


def cmd_rss(a):
    r, h = rss(a.pid)
    print(f"{r} {h}")


# ---- revoke --------------------------------------------------------------------------------------

class Poller(threading.Thread):
    """Asks one node, over one kept-alive connection, for a proxied GET with the key, until it
    answers 401. first_ok is set after the first 200 (the key works there before the revocation)."""

    def __init__(self, port, path, key, poll_s, deadline):
        super().__init__(daemon=True)
        self.port = port
        self.path = path
        self.headers = {"Authorization": f"Bearer {key}"}
        self.poll_s = poll_s
        self.deadline = deadline
        self.first_ok = threading.Event()
        self.first_status = None
        self.refused_at = None
        self.requests = 0
        self.other = 0  # answers that were neither 200 nor 401, and connection errors
        self.stop = False

    def run(self):
        conn = None
        while not self.stop and time.monotonic() < self.deadline:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", self.path, headers=self.headers)
                r = conn.getresponse()
                r.read()
                status = r.status
                if r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                status = 0
                if conn is not None:
                    conn.close()
                conn = None
            now = time.monotonic()
            self.requests += 1
            if self.first_status is None:
                self.first_status = status
                self.first_ok.set()
                if status != 200:
                    break
            if status == 401:
                self.refused_at = now
                break
            if status != 200:
                self.other += 1
            time.sleep(self.poll_s)
        if conn is not None:
            conn.close()


# The CLI process running now: stopped by its PID when this helper is told to stop.
CHILDREN = set()


def on_term(signum, _frame):
    for p in list(CHILDREN):
        try:
            p.kill()
            p.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass
    os._exit(128 + signum)


def pct(sorted_vals, p):
    # Nearest rank: the smallest value with at least p % of the values at or below it.
    if not sorted_vals:
        return float("nan")
    k = max(1, -(-len(sorted_vals) * p // 100))
    return sorted_vals[int(k) - 1]


def cmd_revoke(a):
    if not os.environ.get("BLNKPROXY_DB"):
        die("revoke needs the store's DSN in $BLNKPROXY_DB")
    ports = [int(p) for p in a.ports.split(",")]
    pids = [int(p) for p in a.pids.split(",")]
    logs = a.logs.split(",") if a.logs else []
    keys = []
    with open(a.keys) as f:
        for line in f:
            kind, kid, secret = line.rstrip("\n").split("\t")
            if kind == "revoke":
                keys.append((kid, secret))
    keys = keys[: a.count]
    if len(keys) < a.count:
        die(f"only {len(keys)} keys to revoke in {a.keys}, {a.count} asked")
    path = f"/proxy/ledgers?instance_id={a.instance}"
    rss0 = [rss(p) for p in pids]
    out = open(a.out, "w")
    out.write("n\tkey_id\tcli_ms\tall_ms\t" + "\t".join(f"node{j + 1}_ms" for j in range(len(ports)))
              + "\t" + "\t".join(f"node{j + 1}_rss_kib" for j in range(len(ports))) + "\tpolls\tother\n")
    all_ms = []
    cli_ms = []
    timeouts = 0
    cli_warned = 0
    other_total = 0
    polls_total = 0
    rss_series = [[] for _ in pids]
    t_start = time.monotonic()
    for n, (kid, secret) in enumerate(keys, 1):
        deadline = time.monotonic() + a.timeout
        pollers = [Poller(p, path, secret, a.poll_ms / 1000.0, deadline) for p in ports]
        for p in pollers:
            p.start()
        for j, p in enumerate(pollers):
            if not p.first_ok.wait(10):
                die(f"node {j + 1} did not answer the first poll within 10 s")
            if p.first_status != 200:
                for q in pollers:
                    q.stop = True
                die(f"node {j + 1} answered {p.first_status} (not 200) to key {kid} before its "
                    f"revocation: the benchmark would measure nothing")
        t0 = time.monotonic()
        # The DSN reaches the CLI in $BLNKPROXY_DB (inherited), not in argv where `ps` shows it.
        proc = subprocess.Popen([a.bin, "key", "revoke", kid], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        CHILDREN.add(proc)
        try:
            _, err = proc.communicate(timeout=a.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            die(f"key revoke {kid} did not finish within {a.timeout}s")
        finally:
            CHILDREN.discard(proc)
        t_cli = time.monotonic()
        if "warning:" in err:
            # "the change is saved, but N running servers ... did not apply it within 2 s"
            cli_warned += 1
        if proc.returncode != 0:
            for q in pollers:
                q.stop = True
            die(f"key revoke {kid} failed (exit {proc.returncode}): {err.strip()}")
        for p in pollers:
            p.join(max(0.0, deadline - time.monotonic()) + 5)
            p.stop = True
        node_ms = []
        for p in pollers:
            if p.refused_at is None:
                node_ms.append(None)
            else:
                node_ms.append((p.refused_at - t0) * 1000)
            other_total += p.other
            polls_total += p.requests
        c_ms = (t_cli - t0) * 1000
        cli_ms.append(c_ms)
        if any(v is None for v in node_ms):
            timeouts += 1
            worst = None
        else:
            worst = max(node_ms)
            all_ms.append(worst)
        rs = [rss(p) for p in pids]
        for j, x in enumerate(rs):
            rss_series[j].append(x[0])
        out.write(f"{n}\t{kid}\t{c_ms:.1f}\t{'' if worst is None else f'{worst:.1f}'}\t"
                  + "\t".join("" if v is None else f"{v:.1f}" for v in node_ms) + "\t"
                  + "\t".join(str(x[0]) for x in rs) + f"\t{sum(p.requests for p in pollers)}"
                  + f"\t{sum(p.other for p in pollers)}\n")
        out.flush()
        if a.progress and (n % a.progress == 0 or n == len(keys)):
            print(f"  revoked {n}/{len(keys)}: last {'timeout' if worst is None else f'{worst:.0f} ms'}, "
                  f"{time.monotonic() - t_start:.0f} s so far", file=sys.stderr)
        # The polls are logged like any request (one access-log line each); keep the logs small.
        for lp in logs:
            try:
                if os.path.getsize(lp) > (64 << 20):
                    open(lp, "w").close()
            except OSError:
                pass
    out.close()
    rss1 = [rss(p) for p in pids]
    s = sorted(all_ms)
    c = sorted(cli_ms)
    # key=value lines, read by the shell script into its summary.
    print(f"revokes={len(keys)}")
    print(f"timeouts={timeouts}")
    print(f"all_p50={statistics.median(s):.1f}" if s else "all_p50=-")
    print(f"all_p99={pct(s, 99):.1f}" if s else "all_p99=-")
    print(f"all_max={s[-1]:.1f}" if s else "all_max=-")
    print(f"all_min={s[0]:.1f}" if s else "all_min=-")
    print(f"cli_p50={statistics.median(c):.1f}")
    print(f"cli_p99={pct(c, 99):.1f}")
    print(f"cli_warned={cli_warned}")
    print(f"polls={polls_total}")
    print(f"other={other_total}")
    for j in range(len(pids)):
        print(f"node{j + 1}_rss_before={rss0[j][0]}")
        print(f"node{j + 1}_rss_after={rss1[j][0]}")
        print(f"node{j + 1}_hwm_after={rss1[j][1]}")
        ser = rss_series[j]
        # after the first revocation, after half of them, after the last: flat or growing
        print(f"node{j + 1}_rss_first_half_last={ser[0]},{ser[(len(ser) - 1) // 2]},{ser[-1]}")
    print(f"seconds={time.monotonic() - t_start:.1f}")


def main():
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    ap = argparse.ArgumentParser(prog="scale_helper.py")
    sub = ap.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("gen")
    g.add_argument("--kind", choices=("sqlite", "pg"), required=True)
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--seed", required=True)
    g.add_argument("--scopes", required=True)
    g.add_argument("--instances", default="")
    g.add_argument("--created-at", type=int, required=True)
    g.add_argument("--expires-at", type=int, default=0)
    g.add_argument("--revoke-count", type=int, default=0)
    g.add_argument("--keys-out", required=True)

    w = sub.add_parser("wait-ready")
    w.add_argument("--log", required=True)
    w.add_argument("--pid", type=int, required=True)
    w.add_argument("--t0-ns", type=int, required=True)
    w.add_argument("--timeout", type=float, default=120)

    r = sub.add_parser("rss")
    r.add_argument("--pid", type=int, required=True)

    v = sub.add_parser("revoke")
    v.add_argument("--bin", required=True)
    v.add_argument("--ports", required=True)
    v.add_argument("--pids", required=True)
    v.add_argument("--logs", default="")
    v.add_argument("--instance", required=True)
    v.add_argument("--keys", required=True)
    v.add_argument("--count", type=int, required=True)
    v.add_argument("--timeout", type=float, default=60)
    v.add_argument("--poll-ms", type=float, default=2)
    v.add_argument("--out", required=True)
    v.add_argument("--progress", type=int, default=10)

    a = ap.parse_args()
    {"gen": cmd_gen, "wait-ready": cmd_wait_ready, "rss": cmd_rss, "revoke": cmd_revoke}[a.cmd](a)


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        sys.exit(1)
