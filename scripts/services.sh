#!/usr/bin/env bash
# Starts what the AWS tests need on loopback: moto server (S3, DynamoDB, SQS, Secrets Manager)
# on 127.0.0.1:5000, redis-server on 127.0.0.1:6379, a TLS-only redis-server on
# 127.0.0.1:6380 (as ElastiCache Serverless: TLS only) with a CA and certificate made here by
# openssl, and a TLS-only Redis Cluster of three masters on 127.0.0.1:7000-7002 (ElastiCache
# Serverless is cluster mode enabled; docs/aws.md, "Redis"), installing what is missing.
# Idempotent.
set -euo pipefail
PY=${PYTHON:-python3}
MOTO_PORT=${MOTO_PORT:-5000}
REDIS_PORT=${REDIS_PORT:-6379}
REDIS_TLS_PORT=${REDIS_TLS_PORT:-6380}
REDIS_CLUSTER_PORTS=${REDIS_CLUSTER_PORTS:-"7000 7001 7002"}
LOG_DIR=${TMPDIR:-/tmp}/executor-services
mkdir -p "$LOG_DIR"

if ! $PY -c 'import moto.server' 2>/dev/null; then
  echo "installing moto[server]"
  $PY -m pip install --quiet 'moto[server]'
fi
if ! command -v openssl >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq openssl) >/dev/null
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
TLS_DIR="$LOG_DIR/redis-tls"
if [ ! -s "$TLS_DIR/ca.crt" ] || [ ! -s "$TLS_DIR/server.crt" ]; then
  mkdir -p "$TLS_DIR"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=executor test CA" \
    -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$TLS_DIR/ext.cnf"
  openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" \
    -CAcreateserial -days 30 -extfile "$TLS_DIR/ext.cnf" -out "$TLS_DIR/server.crt" 2>/dev/null
fi
# The cluster nodes' certificate: the cluster bus authenticates both ends (each node presents
# its certificate as a TLS client too), so it is for server and client authentication.
if [ ! -s "$TLS_DIR/cluster.crt" ]; then
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$TLS_DIR/cluster.key" -out "$TLS_DIR/cluster.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' >"$TLS_DIR/cluster-ext.cnf"
  openssl x509 -req -in "$TLS_DIR/cluster.csr" -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" \
    -CAcreateserial -days 30 -extfile "$TLS_DIR/cluster-ext.cnf" -out "$TLS_DIR/cluster.crt" 2>/dev/null
fi
if ! up "$REDIS_TLS_PORT"; then
  # TLS only (--port 0): what ElastiCache Serverless offers; clients need no certificate.
  redis-server --bind 127.0.0.1 --port 0 --tls-port "$REDIS_TLS_PORT" \
    --tls-cert-file "$TLS_DIR/server.crt" --tls-key-file "$TLS_DIR/server.key" \
    --tls-ca-cert-file "$TLS_DIR/ca.crt" --tls-auth-clients no \
    --save '' --appendonly no --daemonize yes --logfile "$LOG_DIR/redis-tls.log" >/dev/null
fi
# The cluster: three TLS-only masters (cluster bus over TLS too), no replicas, slots spread by
# redis-cli. A node that is not running starts from an empty directory (no stale nodes.conf).
CLI_TLS=(--tls --cacert "$TLS_DIR/ca.crt")
cluster_nodes=()
for port in $REDIS_CLUSTER_PORTS; do
  cluster_nodes+=("127.0.0.1:$port")
  if ! up "$port"; then
    dir="$LOG_DIR/redis-cluster/$port"
    rm -rf "$dir" && mkdir -p "$dir"
    redis-server --bind 127.0.0.1 --port 0 --tls-port "$port" --tls-cluster yes \
      --tls-cert-file "$TLS_DIR/cluster.crt" --tls-key-file "$TLS_DIR/cluster.key" \
      --tls-ca-cert-file "$TLS_DIR/ca.crt" --tls-auth-clients no \
      --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" --cluster-node-timeout 5000 \
      --dir "$dir" --save '' --appendonly no --daemonize yes --logfile "$dir/redis.log" >/dev/null
  fi
done
first_port=${REDIS_CLUSTER_PORTS%% *}
for i in $(seq 1 100); do
  up "$first_port" && break
  sleep 0.1
done
if ! redis-cli "${CLI_TLS[@]}" -p "$first_port" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
  if redis-cli "${CLI_TLS[@]}" -p "$first_port" cluster info 2>/dev/null | grep -q 'cluster_slots_assigned:0'; then
    timeout 60 redis-cli "${CLI_TLS[@]}" --cluster create "${cluster_nodes[@]}" --cluster-replicas 0 \
      --cluster-yes >"$LOG_DIR/redis-cluster/create.log" 2>&1 || {
      echo "creating the Redis Cluster failed; see $LOG_DIR/redis-cluster/create.log" >&2
      exit 1
    }
  fi
fi

for i in $(seq 1 100); do
  if up "$MOTO_PORT" && up "$REDIS_PORT" && up "$REDIS_TLS_PORT" \
    && redis-cli "${CLI_TLS[@]}" -p "$first_port" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
    echo "moto server on http://127.0.0.1:$MOTO_PORT, redis on redis://127.0.0.1:$REDIS_PORT, TLS redis on rediss://127.0.0.1:$REDIS_TLS_PORT, TLS Redis Cluster on rediss://127.0.0.1:$first_port (${cluster_nodes[*]}; CA $TLS_DIR/ca.crt)"
    exit 0
  fi
  sleep 0.2
done
echo "services did not start; see $LOG_DIR" >&2
exit 1
