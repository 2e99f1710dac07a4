#!/usr/bin/env bash
# Starts what the AWS tests need on loopback: moto server (S3, DynamoDB, SQS) on 127.0.0.1:5000
# and redis-server on 127.0.0.1:6379, installing them if missing. Idempotent.
set -euo pipefail
PY=${PYTHON:-python3}
MOTO_PORT=${MOTO_PORT:-5000}
REDIS_PORT=${REDIS_PORT:-6379}
LOG_DIR=${TMPDIR:-/tmp}/executor-services
mkdir -p "$LOG_DIR"

if ! $PY -c 'import moto.server' 2>/dev/null; then
  echo "installing moto[server]"
  $PY -m pip install --quiet 'moto[server]'
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server"
  (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null
fi

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! up "$MOTO_PORT"; then
  # moto with DynamoDB requests serialized: its conditional writes are not atomic under
  # concurrency, DynamoDB's are (scripts/moto_server.py says more).
  nohup $PY "$(dirname "$0")/moto_server.py" 127.0.0.1 "$MOTO_PORT" >"$LOG_DIR/moto.log" 2>&1 &
fi
if ! up "$REDIS_PORT"; then
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes \
    --logfile "$LOG_DIR/redis.log" >/dev/null
fi
for i in $(seq 1 100); do
  if up "$MOTO_PORT" && up "$REDIS_PORT"; then
    echo "moto server on http://127.0.0.1:$MOTO_PORT, redis on redis://127.0.0.1:$REDIS_PORT"
    exit 0
  fi
  sleep 0.2
done
echo "services did not start; see $LOG_DIR" >&2
exit 1
