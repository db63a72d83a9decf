# Two sluice instances in front of the demo's PostgreSQL, side by side:
# sourced by masking-onoff.sh (masking on against off) and
# masking-a-vs-b.sh (one build against another). The caller sets
# `demo_dir` (a running `make demo`), `work` (a scratch directory),
# `seconds` and `args` (pgbench's), then calls the functions below.

declare -A ports

# Checks that the demo is there and that pgbench's tables exist.
pair_check_demo() {
    [ -f "$demo_dir/sluice.toml" ] || { echo "start \`make demo\` first" >&2; exit 2; }
    if ! (. "$demo_dir/direct.env" && psql -XAtqc "select 1 from pgbench_accounts limit 1" >/dev/null 2>&1); then
        (. "$demo_dir/direct.env" && pgbench -i -s 10 -q >/dev/null)
    fi
}

# pair_start NAME PORT BINARY MASKING(on|off): starts BINARY as instance
# NAME on PORT, with the demo's config less what would differ between the
# two or collide: its own [server] listen address, and no ledger (only
# masking is measured), column rules (under them COPY data is masked whole
# without scanning, and the scan is what is measured), admin listener or
# approvers (their ports would collide).
pair_start() {
    local name=$1 port=$2 binary=$3 masking=$4
    local cfg="$work/$name.toml"
    ports[$name]=$port
    awk -v listen="listen = \"127.0.0.1:$port\"" '
        /^\[/ { section = $0; skip = (section == "[ledger]" || section == "[[masking.column_rules]]" || section == "[admin]" || section == "[[approvers]]") }
        section == "[server]" && /^listen = / { print listen; next }
        !skip' "$demo_dir/sluice.toml" > "$cfg"
    if [ "$masking" = off ]; then
        sed -i 's/^\[masking\]$/[masking]\nenabled = false/' "$cfg"
    fi
    "$binary" check-config "$cfg" >/dev/null
    "$binary" serve --config "$cfg" >"$work/$name.log" 2>&1 &
}

# pair_wait NAME...: waits until each instance listens (start-up compiles
# the detectors and resolves the demo's keys; a fixed sleep was too short
# on a busy machine).
pair_wait() {
    local name
    for name in "$@"; do
        for _ in $(seq 1 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/${ports[$name]}") 2>/dev/null && break
            sleep 0.1
        done
        (exec 3<>"/dev/tcp/127.0.0.1/${ports[$name]}") 2>/dev/null ||
            { echo "sluice ($name) did not start:" >&2; cat "$work/$name.log" >&2; exit 1; }
    done
}

# pair_psql NAME ARGS...: psql as the demo's agent through instance NAME.
pair_psql() {
    local name=$1
    shift
    (. "$demo_dir/agent.env" && PGPORT=${ports[$name]} psql -XAtq "$@")
}

# pair_pgbench NAME: pgbench's tps through instance NAME.
pair_pgbench() {
    (. "$demo_dir/agent.env" && PGPORT=${ports[$1]} pgbench $args -T "$seconds" 2>&1) | awk '/^tps/ {print $3}'
}

# pair_rows_sql MIB: a SELECT of enough copies of the demo's PII-dense
# customers table for MIB MiB of COPY text.
pair_rows_sql() {
    local table_bytes copies
    table_bytes=$(. "$demo_dir/direct.env" && psql -XAtqc "copy customers to stdout" | wc -c)
    copies=$(( ($1 * 1024 * 1024 + table_bytes - 1) / table_bytes ))
    echo "select c.* from customers c cross join generate_series(1, $copies)"
}

# pair_timed NAME PSQL_ARGS...: "bytes seconds" of psql's output through
# instance NAME.
pair_timed() {
    local name=$1 start end bytes
    shift
    start=$(date +%s.%N)
    bytes=$(pair_psql "$name" "$@" | wc -c)
    end=$(date +%s.%N)
    echo "$bytes $(echo "$end - $start" | bc)"
}
