#!/usr/bin/env bash
# Side-by-side pgbench against two sluice instances in front of the same
# PostgreSQL (for example the previous build and this one), alternating
# rounds so that machine noise hits both equally.
#
# Usage: bench/scripts/pgbench-a-vs-b.sh AGENT_ENV PORT_A PORT_B [SECONDS] [ROUNDS]
# AGENT_ENV is an agent.env from `sluice demo` (host, user, token, CA); the
# two ports replace its PGPORT. Extra pgbench arguments come from
# PGBENCH_ARGS (default: -S -M prepared -c 8 -j 2). The pgbench tables must
# exist (create them directly: `. direct.env && pgbench -i -s 10`).
set -euo pipefail
envfile=$1
port_a=$2
port_b=$3
seconds=${4:-15}
rounds=${5:-3}
args=${PGBENCH_ARGS:--S -M prepared -c 8 -j 2}

run() {
    local port=$1
    # shellcheck disable=SC1090
    (. "$envfile" && PGPORT=$port pgbench $args -T "$seconds" 2>&1 | awk '/^tps/ {print $3}')
}

for round in $(seq 1 "$rounds"); do
    a=$(run "$port_a")
    b=$(run "$port_b")
    printf 'round %s\tA(%s) %s tps\tB(%s) %s tps\n' "$round" "$port_a" "$a" "$port_b" "$b"
done
