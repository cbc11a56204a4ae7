# Shared set-up of scripts/storage-compare and scripts/query-compare:
# the same generated samples in Vigie, Prometheus and VictoriaMetrics.
# Source it from the repository root with `work` set to the work dir.
#
# Needs promtool and prometheus (Debian `prometheus`) and victoria-metrics
# (Debian `victoria-metrics`).

VM_PORT=${VM_PORT:-18428}

# Samples in the data, from the bench's output.
samples=""

per_sample() { awk -v b="$1" -v n="$samples" 'BEGIN { printf "%.3f", b / n }'; }
size_of() { du -sb "$1" | cut -f1; }

# First second of the generated data (the bench's START_MS), and its last
# (24 h later unless VIGIE_BENCH_HOURS says otherwise).
data_start() { grep -o 'START_MS: i64 = [0-9_]*' analyzer/benches/storage.rs | tr -d '_' | grep -o '[0-9]*$' | awk '{ print $1 / 1000 }'; }
data_end() { echo $(( $(data_start) + ${VIGIE_BENCH_HOURS:-24} * 3600 )); }

# Runs the storage bench: Vigie's data dir in $work/vigie (Parquet files
# under samples/, flushed then compacted per 2 h window), the same samples
# as text in $work/node.om and $work/node.prom. Prints Vigie's figures
# (also kept in $work/vigie.txt) and sets `samples`. GEN_PROFILE=dev
# builds the bench in the dev profile: the same bytes, slower timings, and
# no second optimised build of DataFusion next to the `vigie` binary's.
generate() {
    rm -rf "$work/vigie"
    VIGIE_BENCH_DATA="$work/vigie" VIGIE_BENCH_EXPORT="$work" \
        cargo bench --profile "${GEN_PROFILE:-bench}" -p vigie-analyzer --bench storage | tee "$work/vigie.txt"
    load_samples
}

# Sets `samples` from an earlier generate's output.
load_samples() {
    samples=$(grep -o '= [0-9]* samples' "$work/vigie.txt" | grep -o '[0-9]*')
}

# Prometheus TSDB blocks from $work/node.om: $work/prom2h as the head
# would cut them, and $work/prom24h, one block for the day, as
# Prometheus' own compactor would leave it.
prom_blocks() {
    rm -rf "$work/prom2h" "$work/prom24h"
    promtool tsdb create-blocks-from openmetrics "$work/node.om" "$work/prom2h" >/dev/null
    promtool tsdb create-blocks-from openmetrics --max-block-duration=24h "$work/node.om" "$work/prom24h" >/dev/null
}

# Waits until URL answers (up to 60 s).
wait_up() {
    for _ in $(seq 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.2; done
    echo "no answer from $1" >&2
    return 1
}

# Starts VictoriaMetrics on 127.0.0.1:$VM_PORT over $work/vm (extra
# arguments go to it); sets `vm_pid`. The caller's EXIT trap stops it.
start_vm() {
    victoria-metrics -storageDataPath="$work/vm" -httpListenAddr=127.0.0.1:$VM_PORT \
        -retentionPeriod=100y -loggerLevel=ERROR "$@" >"$work/vm.log" 2>&1 &
    vm_pid=$!
    wait_up 127.0.0.1:$VM_PORT/health
}

# Imports $work/node.prom into the VictoriaMetrics start_vm started on an
# empty $work/vm, flushes and lets its merges settle.
vm_import() {
    split -l 500000 "$work/node.prom" "$work/vmpart."
    for part in "$work"/vmpart.*; do
        curl -sf --data-binary @"$part" 127.0.0.1:$VM_PORT/api/v1/import/prometheus
    done
    rm -f "$work"/vmpart.*
    curl -sf 127.0.0.1:$VM_PORT/internal/force_flush
    sleep 10
    curl -sf 127.0.0.1:$VM_PORT/internal/force_merge || true
    sleep 20
    curl -sf 127.0.0.1:$VM_PORT/internal/force_flush
}

# Series VictoriaMetrics holds for job "node" over the generated day.
vm_series() {
    curl -s 127.0.0.1:$VM_PORT/api/v1/query -d 'query=count(count_over_time({job="node"}[2d]))' -d "time=$(data_end)"
}
