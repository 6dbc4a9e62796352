#!/usr/bin/env bash
# Benchmark of `imagegate scan` over a generated tree: mostly Kubernetes
# manifests (Helm-rendered multi-document YAML, CronJobs, JSON Lists), some
# Dockerfiles and Compose files, and files that are none of those. Reports
# files/s and MB/s (median of the rounds), and the ratio to a baseline run in
# this same script on the same tree: `grep -r image` reads every file once
# (the machine is shared and absolute numbers drift).
#   bench/scan.sh [FILES, default 10000] [ROUNDS, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
files="${1:-10000}"
rounds="${2:-5}"

cargo build --release --quiet --bin imagegate
bin=$PWD/target/release/imagegate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work/tree" "$files" <<'PY'
import json, os, random, sys
root, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
images = ["nginx:1.27", "someuser/custom-image:1", "ghcr.io/corp/api:2.{}", "bitnami/redis:7.2",
          "registry.evil.example/x:1", "corp/worker:{}", "docker.io/library/envoy:latest", "busybox:1.36"]
def image():
    return rng.choice(images).format(rng.randint(0, 99))
def deployment(name):
    containers = "".join(
        f"        - name: c{i}\n          image: \"{image()}\"\n          ports:\n            - containerPort: {8000 + i}\n"
        "          env:\n            - name: LOG_LEVEL\n              value: info\n"
        for i in range(rng.randint(1, 3)))
    return (f"---\n# Source: shop/templates/{name}.yaml\napiVersion: apps/v1\nkind: Deployment\n"
            f"metadata:\n  name: {name}\n  labels:\n    app.kubernetes.io/name: {name}\n"
            f"spec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: {name}\n"
            f"  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n"
            f"      initContainers:\n        - name: init\n          image: {image()}\n"
            f"      containers:\n{containers}")
def service(name):
    return (f"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n"
            f"  selector:\n    app: {name}\n  ports:\n    - port: 80\n      targetPort: 8080\n")
def cronjob(name):
    return (f"apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {name}\nspec:\n"
            f"  schedule: \"0 3 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n"
            f"          containers:\n            - name: job\n              image: {image()}\n"
            f"          restartPolicy: OnFailure\n")
def pod_list(name):
    items = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-{i}"},
              "spec": {"containers": [{"name": "c", "image": image()}]}} for i in range(3)]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2) + "\n"
def dockerfile(_):
    return (f"ARG BASE={image()}\nARG GO=1.23\nFROM golang:${{GO}} AS build\nRUN go build ./...\n"
            f"FROM ${{BASE}}\nCOPY --from=build /app /app\nCOPY --from={image()} /bin/x /bin/x\n")
def compose(_):
    return (f"services:\n  web:\n    image: {image()}\n  db:\n    image: postgres:${{PG:-16}}\n"
            f"  cache:\n    image: {image()}\n")
def readme(name):
    return f"# {name}\n\nNot something imagegate reads; it mentions image: nginx anyway.\n" * 5
kinds = ([("deploy-{}.yaml", lambda n: "".join(deployment(f"{n}-{i}") + service(f"{n}-{i}") for i in range(3)))] * 12
         + [("cronjob-{}.yaml", cronjob)] * 3 + [("list-{}.json", pod_list)] * 2
         + [("Dockerfile.{}", dockerfile)] * 1 + [("docker-compose.{}.yml", compose)] * 1
         + [("README-{}.md", readme)] * 1)
for n in range(count):
    pattern, make = kinds[n % len(kinds)]
    d = os.path.join(root, f"team{n % 20}", f"svc{n % 37}", f"env{n % 3}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, pattern.format(n)), "w") as f:
        f.write(make(f"app{n}"))
PY

bytes=$(find "$work/tree" -type f -printf "%s\n" | awk "{ s += \$1 } END { print s }")
findings=$("$bin" scan --policy examples/policy.yaml --format json "$work/tree" | wc -l || true)

# Interleaved rounds: scan, then the baseline, on the same warm tree.
scan_times=()
base_times=()
now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }
for _ in $(seq "$rounds"); do
  t0=$(now)
  "$bin" scan --policy examples/policy.yaml --format json "$work/tree" >/dev/null || [ $? -eq 1 ]
  t1=$(now)
  grep -r -c image "$work/tree" >/dev/null
  t2=$(now)
  scan_times+=("$(calc "$t1 - $t0")")
  base_times+=("$(calc "$t2 - $t1")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
scan=$(median "${scan_times[@]}")
base=$(median "${base_times[@]}")
printf 'tree: %d files, %.1f MB, %d findings\n' "$files" "$(calc "$bytes / 1000000")" "$findings"
printf 'imagegate scan: %.3f s median of %d: %.0f files/s, %.1f MB/s\n' "$scan" "$rounds" \
  "$(calc "$files / $scan")" "$(calc "$bytes / 1000000 / $scan")"
printf 'grep -r baseline: %.3f s\n' "$base"
printf 'ratio scan/grep: %.1fx\n' "$(calc "$scan / $base")"
