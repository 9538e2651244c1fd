#!/usr/bin/env bash
# Offline validation of the deployment files under k8s/ (no cluster, no Docker needed).
# Needs kubectl (with kustomize), promtool, python3 and node/npm; installs its Python and
# npm tools into k8s/.cache on first use (PyPI and npm registries only). Exits non-zero
# on the first failure. Checks, in order:
#   1. kubectl kustomize renders overlays/dev, overlays/prod and prometheus-adapter
#   2. kubernetes-validate --strict --kubernetes-version $K8S_VERSION on every built-in
#      resource (bundled OpenAPI schemas; unknown fields are errors)
#   3. custom resources (Strimzi Kafka/KafkaNodePool/KafkaTopic, PodMonitor,
#      PrometheusRule) against the packaged CRD schemas (@kubernetes-models/*), and with
#      tsc against the packages' types, which rejects unknown fields
#   4. promtool check rules on the PrometheusRule groups, and promtool test rules with
#      the alert unit tests in tests/prometheusrule.test.yaml
#   5. promtool check rules on every PromQL expression of the Grafana dashboard and of the
#      prometheus-adapter rules (written out as recording rules)
#   6. cross-checks: drain timing, Secrets referenced vs rendered, HPA metrics served by
#      the adapter, metric names known, topics present
#   7. `exchange check-config` on each overlay's exchange.toml, when a built `exchange`
#      binary is found (target/{release,debug}/exchange or $EXCHANGE_BIN; skipped
#      otherwise); then that binary serves the dev config on a free loopback port: its
#      /metrics must export every series the dashboard and rules use, and SIGTERM must
#      end it with exit 0
#   8. static checks of Dockerfile, .dockerignore and docker-compose.yml (there is no
#      Docker engine here, so the image is never built by this script or by CI)
set -euo pipefail
cd "$(dirname "$0")"
K8S="$PWD"

K8S_VERSION="${K8S_VERSION:-1.32.0}"
KUBERNETES_VALIDATE_VERSION=1.37.0
NPM_PACKAGES=(@kubernetes-models/strimzi-kafka-operator@1.0.1 @kubernetes-models/prometheus-operator@6.0.0 typescript@5.9.3)
CACHE="$K8S/.cache"
OUT="$CACHE/out"
start=$(date +%s)

step() { printf '\n==> %s\n' "$*"; }
die() { echo "validate.sh: FAIL: $*" >&2; exit 1; }

step "tools"
for t in kubectl promtool python3 node npm; do
  command -v "$t" >/dev/null || die "$t not found (kubectl with kustomize, promtool from Debian's prometheus, python3, node+npm)"
done
mkdir -p "$CACHE"
if ! "$CACHE/venv/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$KUBERNETES_VALIDATE_VERSION"; then
  python3 -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
mkdir -p "$CACHE/node"
if [ ! -f "$CACHE/node/.installed" ] || [ "$(cat "$CACHE/node/.installed")" != "${NPM_PACKAGES[*]}" ]; then
  (cd "$CACHE/node" && { [ -f package.json ] || echo '{"name":"rtb-k8s-validate","private":true}' > package.json; } \
    && npm install --no-audit --no-fund --loglevel=error "${NPM_PACKAGES[@]}" >npm-install.log 2>&1) \
    || { cat "$CACHE/node/npm-install.log" >&2; die "npm install ${NPM_PACKAGES[*]}"; }
  echo "${NPM_PACKAGES[*]}" > "$CACHE/node/.installed"
fi
PY="$CACHE/venv/bin/python"
echo "kubectl $(kubectl version --client 2>/dev/null | sed -n 's/Kustomize Version: //p' | sed 's/^/kustomize /')"
promtool --version 2>&1 | head -n1
echo "kubernetes-validate $("$CACHE/venv/bin/kubernetes-validate" --version), target Kubernetes $K8S_VERSION"
echo "node $(node --version); ${NPM_PACKAGES[*]}"

rm -rf "$OUT"; mkdir -p "$OUT"

step "1. kubectl kustomize"
for o in dev prod; do
  kubectl kustomize "overlays/$o" > "$OUT/$o.yaml" || die "kustomize overlays/$o"
  echo "overlays/$o: $(grep -c '^kind:' "$OUT/$o.yaml") resources -> $OUT/$o.yaml"
done
kubectl kustomize prometheus-adapter > "$OUT/adapter.yaml" || die "kustomize prometheus-adapter"
echo "prometheus-adapter: $(grep -c '^kind:' "$OUT/adapter.yaml") resources"

step "2. kubernetes-validate --strict --kubernetes-version $K8S_VERSION (built-in kinds)"
for o in dev prod adapter; do
  "$PY" scripts/check.py split "$OUT/$o.yaml" "$OUT/$o"
  "$CACHE/venv/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$K8S_VERSION" "$OUT/$o"/core/*.yaml \
    || die "kubernetes-validate on $o"
  echo "$o: $(ls "$OUT/$o"/core | wc -l) resources valid: $(ls "$OUT/$o"/core | sed 's/^[0-9]*-//; s/\.yaml$//' | tr '\n' ' ')"
done

step "3. custom resources: packaged CRD schemas (@kubernetes-models), then tsc for unknown fields"
cp scripts/validate-crs.mjs "$CACHE/node/validate-crs.mjs"
for o in dev prod; do
  (cd "$CACHE/node" && node validate-crs.mjs "$OUT/$o/crs.ts" "$OUT/$o"/cr/*.json) || die "CR schema validation ($o)"
  cp "$OUT/$o/crs.ts" "$CACHE/node/crs-$o.ts"
done
cat > "$CACHE/node/tsconfig.json" <<'JSON'
{ "compilerOptions": { "strict": true, "noEmit": true, "module": "esnext", "moduleResolution": "bundler",
    "target": "es2022", "skipLibCheck": true, "types": [] },
  "files": ["crs-dev.ts", "crs-prod.ts"] }
JSON
(cd "$CACHE/node" && node node_modules/typescript/bin/tsc -p tsconfig.json) || die "tsc: unknown or mistyped fields in custom resources (see above)"
echo "tsc: dev and prod custom resources have no unknown fields"

step "4. promtool check rules (PrometheusRule)"
"$PY" scripts/check.py promrules "$OUT/dev.yaml" "$OUT/prod.yaml" "$OUT/prometheusrule.rules.yaml"
promtool check rules "$OUT/prometheusrule.rules.yaml" || die "promtool check rules (PrometheusRule)"
cp tests/prometheusrule.test.yaml "$OUT/"
promtool test rules "$OUT/prometheusrule.test.yaml" || die "promtool test rules (alert unit tests)"

step "5. promtool check rules (Grafana dashboard and prometheus-adapter PromQL)"
"$PY" scripts/check.py dashboard base/monitoring/grafana/rtb-exchange.json "$OUT/dashboard.rules.yaml"
promtool check rules "$OUT/dashboard.rules.yaml" || die "promtool check rules (dashboard expressions)"
"$PY" scripts/check.py adapter prometheus-adapter/rules.yaml prometheus-adapter/values.yaml "$OUT/adapter.rules.yaml"
promtool check rules "$OUT/adapter.rules.yaml" || die "promtool check rules (adapter queries)"

step "6. cross-checks"
"$PY" scripts/check.py consistency "$OUT/dev.yaml" "$OUT/prod.yaml" prometheus-adapter/rules.yaml \
  base/monitoring/grafana/rtb-exchange.json || die "cross-checks"

step "7. exchange check-config on the rendered configs; live /metrics and SIGTERM"
bin="${EXCHANGE_BIN:-}"
if [ -z "$bin" ]; then
  for b in ../target/release/exchange ../target/debug/exchange; do
    if [ -x "$b" ] && { [ -z "$bin" ] || [ "$b" -nt "$bin" ]; }; then bin="$b"; fi
  done
fi
if [ -n "$bin" ]; then
  for o in dev prod; do
    "$PY" scripts/check.py tomls "$OUT/$o.yaml" "$OUT/$o/config" >/dev/null
    "$bin" check-config --config "$OUT/$o/config/exchange.toml" || die "exchange check-config ($o)"
  done
  "$PY" scripts/check.py livemetrics "$bin" "$OUT/dev/config/exchange.toml" || die "exchange /metrics vs dashboard"
else
  echo "skipped: no exchange binary (cargo build first, or set EXCHANGE_BIN)"
fi

step "8. Dockerfile / docker-compose.yml (static; not built: no Docker engine here)"
"$PY" scripts/check.py docker .. "$OUT/dev.yaml" || die "Docker files"

echo
echo "validate.sh: all checks passed in $(( $(date +%s) - start ))s"
