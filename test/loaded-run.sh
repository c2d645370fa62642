#!/usr/bin/env bash
# Runs the Jest suite (or the files given) with the machine loaded: one busy loop pinned to each
# core beside Jest, so that timing races show up here instead of in CI. Usage:
#   npm run test:loaded [-- <jest args>]        e.g. npm run test:loaded -- test/e2e/exchange.e2e-spec.ts
# GW_LOAD_PROCESSES sets how many busy loops (default: one per core). The loops end with the run,
# and in any case after GW_LOAD_MAX_SECONDS (default 3600).
set -uo pipefail
cd "$(dirname "$0")/.."

cores=$(nproc)
count=${GW_LOAD_PROCESSES:-$cores}
max=${GW_LOAD_MAX_SECONDS:-3600}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
}
trap cleanup EXIT INT TERM

for ((i = 0; i < count; i++)); do
  taskset -c $((i % cores)) timeout "$max" sh -c 'while :; do :; done' &
  pids+=($!)
done
echo "load: ${count} busy loop(s) on ${cores} core(s)" >&2

npx jest --maxWorkers=1 --workerIdleMemoryLimit=2GB "$@"
