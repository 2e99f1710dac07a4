#!/usr/bin/env bash
# Prints the bootstrap and deployment-zip size of each built function (as `sam build` or
# `cargo lambda build --output-format zip` leaves them). Usage: lambda-sizes.sh [BUILD_DIR]
set -euo pipefail
dir=${1:-.aws-sam/build}
if ! compgen -G "$dir/*/bootstrap" >/dev/null; then
  echo "lambda-sizes: no built functions under $dir (run sam build --beta-features first)" >&2
  exit 1
fi
printf '%-18s %12s %12s\n' function bootstrap zip
for f in "$dir"/*/bootstrap; do
  name=$(basename "$(dirname "$f")")
  zip=$(mktemp --suffix .zip)
  python3 - "$f" "$zip" <<'P'
import sys, zipfile
with zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.write(sys.argv[1], "bootstrap")
P
  printf '%-18s %12s %12s\n' "$name" "$(stat -c %s "$f")" "$(stat -c %s "$zip")"
  rm -f "$zip"
done
