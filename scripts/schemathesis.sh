#!/usr/bin/env bash
# Schemathesis against a live `executor dev` (embedded backend, simulators): every operation
# of the generated OpenAPI document (examples, coverage, fuzzing) and stateful sequences
# (create -> get / cancel / events through the document's links), with the checks
# not_a_server_error, status_code_conformance, content_type_conformance and
# response_schema_conformance. Prints the seed and the number of generated cases; exits
# non-zero on any failure.
#   SCHEMATHESIS_SEED     seed (default: random, printed)
#   SCHEMATHESIS_EXAMPLES max examples per operation (default 60)
#   EXECUTOR_BIN          an executor binary (default: cargo run)
set -euo pipefail
cd "$(dirname "$0")/.."

SEED=${SCHEMATHESIS_SEED:-$(( (RANDOM << 15) | RANDOM ))}
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-60}
PORT=${SCHEMATHESIS_PORT:-18181}
KEY="exk_schemathesis_$(date +%s)"
WORK=$(mktemp -d)
trap 'kill "$DEV_PID" 2>/dev/null || true; wait "$DEV_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT

if [ -n "${EXECUTOR_BIN:-}" ]; then
  BIN=("$EXECUTOR_BIN")
else
  cargo build --quiet --locked -p executor-cli --bin executor
  BIN=("${CARGO_TARGET_DIR:-target}/debug/executor")
fi

# Fast simulators and a short Prefer: wait cap keep the run short; the contract is the same.
EXECUTOR__API__MAX_WAIT_SECONDS=2 "${BIN[@]}" dev --bind "127.0.0.1:$PORT" \
  --data-dir "$WORK/data" --api-key "$KEY" --time-scale 0.05 > "$WORK/dev.log" 2>&1 &
DEV_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" > /dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/healthz" > /dev/null || { cat "$WORK/dev.log"; exit 1; }

echo "schemathesis seed: $SEED, max examples per operation: $EXAMPLES"
set +e
"${SCHEMATHESIS_BIN:-st}" run "http://127.0.0.1:$PORT/openapi.json" \
  --header "Authorization: Bearer $KEY" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing,stateful \
  --seed "$SEED" --max-examples "$EXAMPLES" --workers 2 \
  --request-timeout 30 --no-color \
  --report junit --report-junit-path "$WORK/junit.xml" 2>&1 | tee "$WORK/st.log"
rc=${PIPESTATUS[0]}
set -e
cases=$(grep -Eo '[0-9]+ generated' "$WORK/st.log" | tail -1 || true)
echo "schemathesis: exit $rc, seed $SEED, ${cases:-unknown number of} cases (see the summary above)"
if [ "$rc" != 0 ]; then
  echo "--- executor dev log (warnings and errors)"; grep -E "WARN|ERROR" "$WORK/dev.log" | tail -40 || true
fi
exit "$rc"
