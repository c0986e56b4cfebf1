#!/usr/bin/env bash
# callgrind_top.sh FILE N: instructions per request from a callgrind dump taken over N requests
# (run.sh zeroes the counters after the warm-up and dumps after the measured requests).
# Functions that were on a stack when the counters were zeroed (thread entry points, the loop's
# dispatch) carry their threads' whole cost in such a dump: they are used for the split by
# thread and left out of the list of the most expensive functions.
set -eu
file=$1
n=$2
ann=$(callgrind_annotate --auto=no --inclusive=no --threshold=100 "$file" 2>/dev/null | sed -n '/file:function/,$p' | tail -n +3)
num() { tr -d , | awk '{ print $1 + 0 }'; }
total=$(printf '%s\n' "$ann" | awk '/pthread_create.c:start_thread / && !d { print; d = 1 }' | num)
loop=$(printf '%s\n' "$ann" | awk '/:worker_main / && !d { print; d = 1 }' | num)
echo "  total $((total / n)) instructions per request; loop thread $((loop / n)), other threads $(((total - loop) / n))"
printf '%s\n' "$ann" | grep -v -E ':(clone|start_thread|worker_main|event_base_dispatch|event_base_loop|[a-z_]*_main|pool_main) ' |
    grep -E '^ *[0-9,]+ ' | awk 'NR <= 25 { print }' |
    awk -v n="$n" '{ v = $1; gsub(",", "", v); sub(/^ *[0-9,]+ *\( *[0-9.]+%\) */, ""); printf "  %8d  %s\n", v / n, $0 }'
