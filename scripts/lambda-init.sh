#!/usr/bin/env bash
# Cold start of each function's bootstrap under cargo-lambda's local Lambda runtime emulator
# (`cargo lambda watch --only-lambda-apis`), on the AWS backend against moto + redis.
# For each function: start the release bootstrap, invoke it once (cold: process start, init,
# first event) and once more (warm); init ≈ cold − warm. Peak RSS from /proc.
#
#   ./scripts/lambda-init.sh [RUNS]
#
# The bootstraps are built for this machine (x86_64): there is no arm64 CPU here to run the
# arm64 zips, whose sizes scripts/lambda-sizes.sh reports.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
./scripts/services.sh >/dev/null
cargo build --quiet --release --locked -p executor-cli -p submit -p poll -p finalize -p webhook
T=${CARGO_TARGET_DIR:-target}/release
PORT=19011

# Resources on moto (the same ones `executor dev --backend aws` uses).
"$T/executor" dev --backend aws --bind 127.0.0.1:18383 > /tmp/lambda-init-dev.out 2>&1 &
DEV=$!
for _ in $(seq 1 60); do curl -fsS -o /dev/null http://127.0.0.1:18383/healthz 2>/dev/null && break; sleep 0.5; done
kill $DEV; wait $DEV 2>/dev/null || true
Q=http://127.0.0.1:5000/123456789012/executor-dev
export AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-east-1 EXECUTOR_S3_PATH_STYLE=true \
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  EXECUTOR_TABLE=executor-dev EXECUTOR_BUCKET=executor-dev EXECUTOR_REDIS_URL=redis://127.0.0.1:6379 \
  EXECUTOR_SUBMIT_QUEUE_URL=$Q-submit EXECUTOR_POLL_QUEUE_URL=$Q-poll \
  EXECUTOR_FINALIZE_QUEUE_URL=$Q-finalize EXECUTOR_OUTCOME_QUEUE_URL=$Q-outcomes \
  EXECUTOR_PUBLIC_URL=http://127.0.0.1:18383 \
  EXECUTOR_WEBHOOK_SECRET=whsec_ZGV2LW91dGJvdW5kLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM= \
  OPENAI_API_KEY=x RUNWAYML_API_SECRET=x REPLICATE_API_TOKEN=x FAL_KEY=x \
  REPLICATE_WEBHOOK_SECRET=whsec_ZGV2LW91dGJvdW5kLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM= \
  AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512 AWS_LAMBDA_FUNCTION_NAME=_ \
  AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:$PORT/.rt RUST_LOG=error

cargo lambda watch --only-lambda-apis -P $PORT > /tmp/lambda-init-emulator.out 2>&1 &
EMU=$!
trap 'kill $EMU 2>/dev/null || true' EXIT
sleep 3

now_ms() { date +%s%3N; }
invoke() {
  curl -fsS -o /dev/null -X POST -H 'content-type: application/json' --data-binary "@$1" \
    "http://127.0.0.1:$PORT/2015-03-31/functions/_/invocations"
}

printf '%-9s %-26s %8s %8s %8s %9s\n' function event cold_ms warm_ms init_ms peak_rss_kb
for pair in submit:api-get.json poll:sqs-poll.json finalize:sqs-finalize.json webhook:webhook-replicate.json; do
  fn=${pair%%:*}; ev=events/${pair#*:}
  for run in $(seq 1 "$RUNS"); do
    t0=$(now_ms)
    "$T/$fn" > /tmp/lambda-init-$fn.log 2>&1 &
    PID=$!
    invoke "$ev"; t1=$(now_ms)
    invoke "$ev"; t2=$(now_ms)
    rss=$(awk '/VmHWM/ {print $2}' /proc/$PID/status 2>/dev/null || echo -)
    kill $PID; wait $PID 2>/dev/null || true
    printf '%-9s %-26s %8s %8s %8s %9s\n' "$fn" "${ev#events/}" $((t1 - t0)) $((t2 - t1)) $(((t1 - t0) - (t2 - t1))) "$rss"
  done
done
