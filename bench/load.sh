#!/usr/bin/env bash
# Load test of `imagegate serve`: AdmissionReviews over HTTPS with keep-alive
# at 1, 16 and 64 concurrent connections, reporting reviews/s and p50/p99
# latency, each relative to GET /healthz on the same server at the same
# concurrency (the baseline, run in this same script: the machine is shared
# and absolute numbers drift). Installs wrk when missing.
#   bench/load.sh [SECONDS per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"

if ! command -v wrk >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk
fi
cargo build --release --quiet --bin imagegate
bin=target/release/imagegate
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin" certs --out "$work" >/dev/null 2>&1
port=18443
IMAGEGATE_LOG=warn "$bin" serve --listen 127.0.0.1:$port --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" \
  --policy crates/server/tests/fixtures/policy.yaml --data-dir "$work/data" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 50); do
  curl -sk "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

# The Deployment of the golden fixtures: three images, one refused.
python3 - "$work/review.json" <<'PY'
import json, sys
f = json.load(open("crates/server/tests/fixtures/admission/deployment-create-v1.json"))
json.dump(f["request"], open(sys.argv[1], "w"))
PY
cat >"$work/post.lua" <<LUA
local f = io.open("$work/review.json", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
LUA

# wrk prints latency percentiles in us/ms/s; normalise to microseconds.
to_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") print n; else if (u == "ms") print n * 1000; else if (u == "s") print n * 1000000; else print n }'
}
run() { # connections path [script]
  local c=$1 path=$2 script=${3:-}
  local threads=$(( c < 2 ? 1 : 2 ))
  local args=(-t "$threads" -c "$c" -d "${seconds}s" --latency)
  [ -n "$script" ] && args+=(-s "$script")
  local out; out=$(wrk "${args[@]}" "https://127.0.0.1:$port$path")
  local rps p50 p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  echo "$rps $p50 $p99"
}

printf '%-12s %14s %10s %10s %24s\n' connections "reviews/s" "p50 us" "p99 us" "vs /healthz (rps, p99)"
for c in 1 16 64; do
  read -r rps p50 p99 < <(run "$c" /admission/validate "$work/post.lua")
  read -r hrps _ hp99 < <(run "$c" /healthz)
  awk -v c="$c" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v hrps="$hrps" -v hp99="$hp99" 'BEGIN {
    printf "%-12s %14.0f %10.0f %10.0f %13.2fx %9.2fx\n", c, rps, p50, p99, rps / hrps, p99 / hp99 }'
done
if grep -q '"level":"ERROR"' "$work/serve.log"; then
  echo "the server logged errors:" >&2; grep '"level":"ERROR"' "$work/serve.log" >&2; exit 1
fi
