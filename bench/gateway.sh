#!/usr/bin/env bash
# The registry gateway against the same client pulling straight from the
# upstream, in this one script (the machine is shared and noisy: only the
# ratios mean anything). Upstream: the CNCF distribution registry on loopback.
#   1. wall time of `skopeo copy` of a 1 GiB single-layer image, gateway vs
#      direct (aim <= 1.15x), and of an image of 200 small layers (aim <= 1.3x);
#      runs interleaved, median of ROUNDS;
#   2. the gateway's peak memory (VmHWM) relaying a 4 GiB blob vs a 64 MiB
#      blob, each in a fresh gateway process (aim <= 1.1x);
#   3. upstream manifest GETs of an allowed pull, gateway vs direct (aim: no
#      more), and upstream requests of a refused pull (aim: none).
# Token verification caching is measured in-process: cargo bench --bench gateway.
# The upstream serves HTTPS, as real upstreams do (Docker Hub, ghcr.io), so
# the direct pull pays for TLS too; UPSTREAM=http measures against a
# plain-HTTP upstream instead (the gateway's TLS is then all extra).
#   bench/gateway.sh [ROUNDS, default 3] [BIG, default 1g] [HUGE, default 4g]
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
rounds="${1:-3}"
big="${2:-1g}"
huge="${3:-4g}"

for tool in skopeo docker-registry curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/gateway.sh needs $tool (apt-get install skopeo docker-registry curl python3)" >&2; exit 2; }
done
cargo build --release --quiet --bin imagegate
bin=$PWD/target/release/imagegate
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

upstream_scheme="${UPSTREAM:-https}"
"$bin" certs --dns localhost --ip 127.0.0.1 --out "$work/certs" >/dev/null 2>&1
mkdir -p "$work/ca" && cp "$work/certs/ca.crt" "$work/ca/"
# The gateway trusts the test CA for its upstream through SSL_CERT_FILE.
cat /etc/ssl/certs/ca-certificates.crt "$work/certs/ca.crt" >"$work/trust.pem" 2>/dev/null || cp "$work/certs/ca.crt" "$work/trust.pem"

reg_port=15000
reg_tls=""
[ "$upstream_scheme" = https ] && reg_tls=", tls: {certificate: $work/certs/tls.crt, key: $work/certs/tls.key}"
cat >"$work/registry.yml" <<YML
version: 0.1
log: {level: info, formatter: text}
storage: {filesystem: {rootdirectory: $work/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$reg_port$reg_tls}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
upstream="$upstream_scheme://localhost:$reg_port"
for _ in $(seq 50); do curl -sf --cacert "$work/ca/ca.crt" "$upstream/v2/" >/dev/null && break; sleep 0.1; done
data="$work/data"
"$bin" admin --data-dir "$data" org create corp --namespace corp >/dev/null
cat >"$work/policy.yaml" <<YML
apiVersion: imagegate.dev/v1
kind: ImagePolicy
metadata: {name: corp}
spec:
  imageAccess: {enabled: true, allow: [official], organizationNamespaces: [corp]}
  registryAccess: {enabled: true, allow: [docker.io]}
YML
"$bin" admin --data-dir "$data" org policy set corp --file "$work/policy.yaml" >/dev/null
echo "bench password" | "$bin" admin --data-dir "$data" user create dev >/dev/null
"$bin" admin --data-dir "$data" member add corp dev --role member >/dev/null
pat=$("$bin" admin --data-dir "$data" token create dev --name bench)

gw_port=15443
start_gateway() {
  SSL_CERT_FILE="$work/trust.pem" IMAGEGATE_LOG=warn "$bin" serve --listen 127.0.0.1:$gw_port --data-dir "$data" \
    --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" \
    --upstream "docker.io=$upstream" >>"$work/serve.log" 2>&1 &
  gateway=$!
  pids+=("$gateway")
  for _ in $(seq 50); do curl -sf --cacert "$work/ca/ca.crt" "https://localhost:$gw_port/healthz" >/dev/null && break; sleep 0.1; done
}
stop_gateway() { kill "$gateway"; wait "$gateway" 2>/dev/null || true; }

push() { # name tag sizes -> prints the layer digests as stored (skopeo compresses on push)
  local dir="$work/img-$1"
  python3 bench/mkimage.py "$dir" "$2" "$3" >/dev/null
  skopeo copy -q --dest-cert-dir "$work/ca" --dest-tls-verify=false "oci:$dir:$2" "docker://localhost:$reg_port/library/$1:$2"
  rm -rf "$dir"
  curl -sf --cacert "$work/ca/ca.crt" -H "Accept: application/vnd.oci.image.manifest.v1+json" \
    "$upstream/v2/library/$1/manifests/$2" | python3 -c 'import json,sys; print(" ".join(l["digest"] for l in json.load(sys.stdin)["layers"]))'
}
echo "generating and pushing images (1 x $big, 200 x 64k, $huge and 64m blobs)..." >&2
push big 1 "$big" >/dev/null
push many 1 "$(printf '64k,%.0s' $(seq 199))64k" >/dev/null
small_blob=$(push small-blob 1 64m)
huge_blob=$(push huge-blob 1 "$huge")

now() { date +%s.%N; }
copy() { # direct|gateway image
  rm -rf "$work/out"
  local t0; t0=$(now)
  if [ "$1" = direct ]; then
    skopeo copy -q --src-cert-dir "$work/ca" --src-tls-verify="$([ "$upstream_scheme" = https ] && echo true || echo false)" "docker://localhost:$reg_port/library/$2" "dir:$work/out"
  else
    skopeo copy -q --src-cert-dir "$work/ca" --src-creds "dev:$pat" "docker://localhost:$gw_port/library/$2" "dir:$work/out"
  fi
  awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

start_gateway
echo "upstream: $upstream_scheme"
printf '%-34s %10s %10s %8s %8s\n' "skopeo copy" "direct s" "gateway s" ratio aim
for case in "big:1 $big single layer:1.15" "many:1 200 small layers:1.3"; do
  image=${case%% *}; rest=${case#* }; label=${rest%:*}; aim=${rest##*:}
  copy gateway "$image" >/dev/null # warm caches (upstream token, page cache) for both
  d=(); g=()
  for _ in $(seq "$rounds"); do d+=("$(copy direct "$image")"); g+=("$(copy gateway "$image")"); done
  dm=$(printf '%s\n' "${d[@]}" | median); gm=$(printf '%s\n' "${g[@]}" | median)
  awk -v l="$label" -v d="$dm" -v g="$gm" -v aim="$aim" 'BEGIN { printf "%-34s %10.2f %10.2f %7.2fx %7.2fx\n", l, d, g, g / d, aim }'
done

# Upstream requests: manifest GETs the registry saw for one pull each way.
# (the registry's access log: "GET /v2/... HTTP/1.1" status size)
manifest_gets() { grep -c '"GET /v2/library/many/manifests/' "$work/registry.log" || true; }
all_requests() { grep -c '"[A-Z]* /v2/[^ ]* HTTP/[0-9.]*" [0-9]' "$work/registry.log" || true; }
settle() { sleep 0.5; } # the registry writes its access log after answering
before=$(manifest_gets); copy direct many:1 >/dev/null; settle; direct_gets=$(( $(manifest_gets) - before ))
before=$(manifest_gets); copy gateway many:1 >/dev/null; settle; gateway_gets=$(( $(manifest_gets) - before ))
before=$(all_requests)
skopeo copy -q --src-cert-dir "$work/ca" --src-creds "dev:$pat" "docker://localhost:$gw_port/someuser/custom-image:1" "dir:$work/out" 2>/dev/null && { echo "a community image was not refused" >&2; exit 1; }
settle; refused=$(( $(all_requests) - before ))
printf '%-34s %10s %10s\n' "upstream manifest GETs, one pull" "direct $direct_gets" "gateway $gateway_gets"
printf '%-34s %10s\n' "upstream requests, refused pull" "$refused"
stop_gateway

# Peak memory relaying one blob, each in a fresh gateway.
hwm() { # blob-repo digest -> VmHWM kB after relaying it
  start_gateway
  local jwt
  jwt=$(curl -sf --cacert "$work/ca/ca.crt" -u "dev:$pat" \
    "https://localhost:$gw_port/token?service=imagegate&scope=repository:library/$1:pull" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  local size
  size=$(curl -sf --cacert "$work/ca/ca.crt" -H "Authorization: Bearer $jwt" -o /dev/null -w '%{size_download}' \
    "https://localhost:$gw_port/v2/library/$1/blobs/$2")
  [ "$size" -gt $((60 << 20)) ] || { echo "relayed only $size bytes of $1" >&2; exit 1; }
  awk '/^VmHWM:/ { print $2 }' "/proc/$gateway/status"
  stop_gateway
}
small_hwm=$(hwm small-blob "$small_blob")
huge_hwm=$(hwm huge-blob "$huge_blob")
awk -v s="$small_hwm" -v h="$huge_hwm" -v big="$huge" 'BEGIN {
  printf "%-34s %9.1fM %9.1fM %7.2fx %7.2fx\n", "peak RSS relaying 64 MiB vs " big, s / 1024, h / 1024, h / s, 1.1 }'
if grep -q '"level":"ERROR"' "$work/serve.log"; then
  echo "the gateway logged errors:" >&2; grep '"level":"ERROR"' "$work/serve.log" >&2; exit 1
fi
