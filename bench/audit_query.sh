#!/usr/bin/env bash
# Times `blnkproxy audit list` over a large audit log (issue 4: "a query over 1,000,000 records
# answers in well under a second"). Fills a temp database with AUDIT_RECORDS records (default
# 1,000,000; bench/audit_gen.sql, via the sqlite3 CLI), then runs each filter with --limit 100
# AUDIT_RUNS times (default 5) and prints the median wall time of the whole command (process
# start, open, query, JSON lines to /dev/null). A benchmark, not a test: nothing fails on a slow
# number. Needs sqlite3 and a built blnkproxy (BLNKPROXY_BIN, default build/blnkproxy).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${BLNKPROXY_BIN:-$here/../build/blnkproxy}
records=${AUDIT_RECORDS:-1000000}
runs=${AUDIT_RUNS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db=$work/audit.db

[ -x "$bin" ] || { echo "no blnkproxy binary at $bin (set BLNKPROXY_BIN)" >&2; exit 1; }
command -v sqlite3 >/dev/null || { echo "needs the sqlite3 CLI" >&2; exit 1; }

"$bin" db migrate --db "$db" >/dev/null
t0=$(date +%s%N)
sed "s/@N@/$records/g" "$here/audit_gen.sql" | sqlite3 "$db" >/dev/null
t1=$(date +%s%N)
count=$(sqlite3 "$db" 'SELECT count(*) FROM audit_log')
size=$(du -m "$db" | cut -f1)
printf 'filled %s records in %d ms (database %s MiB)\n\n' "$count" $(( (t1 - t0) / 1000000 )) "$size"

# One row per query: label|arguments separated by ';' (so a value may hold spaces).
rfc=$(date -u -d '15 days ago' +%Y-%m-%dT%H:%M:%SZ)
queries=(
  "no filter|"
  "--since 1h|--since;1h"
  "--since 8d --until 7d|--since;8d;--until;7d"
  "--since RFC 3339 (15 days ago)|--since;$rfc"
  "--category identities|--category;identities"
  "--category admin|--category;admin"
  "--instance instance_3|--instance;instance_3"
  "--credential key_17|--credential;key_17"
  "--action \"Identity created\"|--action;Identity created"
  "--status 404|--status;404"
  "--status 5xx|--status;5xx"
  "--status 599 (no match: full scan)|--status;599"
  "--credential nobody (no match)|--credential;nobody"
  "category+instance+credential+2xx+since 3d|--category;transactions;--instance;instance_2;--credential;key_5;--status;2xx;--since;3d"
  "category+credential, 20d..19d ago|--category;balances;--credential;client_33;--since;20d;--until;19d"
)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-52s %10s %6s\n' "audit list --limit 100 --json ..." "median ms" "rows"
# The floor: starting the binary at all (no database, no query).
times=()
for _ in $(seq "$runs"); do
  s=$(date +%s%N)
  "$bin" --help >/dev/null
  e=$(date +%s%N)
  times+=($(( (e - s) / 1000 )))
done
awk -v m="$(printf '%s\n' "${times[@]}" | median)" 'BEGIN { printf "%-52s %10.1f %6s\n", "(baseline: blnkproxy --help, no query)", m / 1000, "-" }'
for q in "${queries[@]}"; do
  label=${q%%|*}
  IFS=';' read -r -a args <<<"${q#*|}"
  times=()
  rows=0
  for _ in $(seq "$runs"); do
    s=$(date +%s%N)
    rows=$("$bin" audit list --db "$db" --limit 100 --json "${args[@]}" | wc -l)
    e=$(date +%s%N)
    times+=($(( (e - s) / 1000 )))
  done
  med=$(printf '%s\n' "${times[@]}" | median)
  awk -v l="$label" -v m="$med" -v r="$rows" 'BEGIN { printf "%-52s %10.1f %6s\n", l, m / 1000, r }'
done
