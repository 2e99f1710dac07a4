#!/usr/bin/env bash
# Side by side: the immediate path through `executor dev` and through LiteLLM's proxy, both
# in front of the same OpenAI images simulator, driven by the same load generator
# (`executor load`) in one run, plus the bare simulator as the baseline for added latency.
#
#   ./scripts/bench-peer.sh [REQUESTS] [CONCURRENCY]
#
# Installs LiteLLM's proxy into .bench/venv (PyPI) on first use. Prints one JSON report per
# target and a summary with the ratios docs/benchmarks.md quotes.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${1:-2000}
CONCURRENCY=${2:-16}
WORK=${BENCH_WORK:-.bench}
mkdir -p "$WORK"
PY=${PYTHON:-python3}

if [ ! -x "$WORK/venv/bin/litellm" ]; then
  $PY -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet 'litellm[proxy]'
fi
cargo build --quiet --release --locked -p executor-cli --bin executor
EXE=${CARGO_TARGET_DIR:-target}/release/executor

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

SIM_PORT=19191; DEV_PORT=18181; LITELLM_PORT=14000
"$EXE" simulators --bind 127.0.0.1:$SIM_PORT > "$WORK/sims.out" 2>&1 & pids+=($!)
rm -rf "$WORK/data"
SIM=http://127.0.0.1:$SIM_PORT
EXECUTOR_OPENAI_BASE_URL=$SIM/openai EXECUTOR_RUNWAY_BASE_URL=$SIM/runway \
EXECUTOR_REPLICATE_BASE_URL=$SIM/replicate EXECUTOR_FAL_BASE_URL=$SIM/fal \
OPENAI_API_KEY=sk-sim RUNWAYML_API_SECRET=sim REPLICATE_API_TOKEN=sim FAL_KEY=sim \
  "$EXE" dev --no-simulators --bind 127.0.0.1:$DEV_PORT --data-dir "$WORK/data" \
  > "$WORK/dev.out" 2> "$WORK/dev.err" & pids+=($!)

cat > "$WORK/litellm.yaml" <<Y
model_list:
  - model_name: gpt-image-1
    litellm_params:
      model: openai/gpt-image-1
      api_base: http://127.0.0.1:$SIM_PORT/openai/v1
      api_key: sk-sim
general_settings:
  master_key: sk-bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
litellm_settings:
  set_verbose: false
  drop_params: true
Y
"$WORK/venv/bin/litellm" --config "$WORK/litellm.yaml" --host 127.0.0.1 --port $LITELLM_PORT \
  > "$WORK/litellm.out" 2>&1 & pids+=($!)

wait_for() { for _ in $(seq 1 120); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.5; done; echo "not up: $1"; exit 1; }
wait_for http://127.0.0.1:$DEV_PORT/healthz
wait_for http://127.0.0.1:$LITELLM_PORT/health/liveliness
LITELLM_KEY=$(sed -n 's/^  master_key: //p' "$WORK/litellm.yaml")
KEY=$(sed -n 's/^dev API key (tenant .dev.): //p' "$WORK/dev.out")

BODY_OPENAI='{"model":"gpt-image-1","prompt":"a lighthouse at dusk"}'
BODY_EXEC='{"model":"openai/gpt-image-1","input":{"prompt":"a lighthouse at dusk"}}'
run() { "$EXE" load "$@" --requests "$REQUESTS" --concurrency "$CONCURRENCY"; }

echo "== simulator (baseline)"; run http://127.0.0.1:$SIM_PORT/openai/v1/images/generations \
  --body "$BODY_OPENAI" -H "Authorization: Bearer sk-sim" | tee "$WORK/sim.json"
echo "== executor dev"; run http://127.0.0.1:$DEV_PORT/v1/executions \
  --body "$BODY_EXEC" -H "Authorization: Bearer $KEY" -H "Prefer: wait=30" | tee "$WORK/executor.json"
echo "== litellm proxy"; run http://127.0.0.1:$LITELLM_PORT/v1/images/generations \
  --body "$BODY_OPENAI" -H "Authorization: Bearer $LITELLM_KEY" | tee "$WORK/litellm.json"

$PY - "$WORK" <<'P'
import json, sys
w = sys.argv[1]
sim, ex, ll = (json.load(open(f"{w}/{n}.json")) for n in ("sim", "executor", "litellm"))
def added(r, q): return r["latency"][q] - sim["latency"][q]
print(f"\nrequests {ex['requests']} x concurrency {ex['concurrency']}; errors: executor {ex['errors']}, litellm {ll['errors']}")
print(f"throughput req/s: simulator {sim['per_second']:.0f}, executor {ex['per_second']:.0f}, litellm {ll['per_second']:.0f}; executor/litellm = {ex['per_second']/ll['per_second']:.1f}x")
for q in ("p50_ms", "p99_ms"):
    a, b = added(ex, q), added(ll, q)
    print(f"added latency {q}: executor {a:.2f} ms, litellm {b:.2f} ms; litellm/executor = {b/a if a > 0 else float('inf'):.1f}x")
P
