#!/usr/bin/env bash
# Runs every libFuzzer target for a bounded time on a scratch copy of its seed corpus.
# Exits non-zero on the first crash, leak or sanitizer report.
set -euo pipefail
build_dir=${1:?build dir}
seconds=${2:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
count=0
for bin in "$build_dir"/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    target=${name#fuzz_}
    mkdir -p "$work/$target"
    if [ -d "$root/tests/fuzz/corpus/$target" ]; then
        cp -r "$root/tests/fuzz/corpus/$target/." "$work/$target/"
    fi
    echo "fuzz: $name for ${seconds}s"
    if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
        -artifact_prefix="$work/" "$work/$target" >"$work/$name.log" 2>&1; then
        echo "fuzz: $name FAILED"; tail -40 "$work/$name.log"; status=1
    else
        count=$((count + 1))
        grep -E '^(#[0-9]+|Done)' "$work/$name.log" | tail -1 || true
    fi
done
if [ "$status" -eq 0 ]; then
    echo "fuzz: ${count} passed, 0 failed"
fi
exit $status
