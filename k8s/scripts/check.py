#!/usr/bin/env python3
"""Helpers for k8s/validate.sh (run with the venv's python, which has PyYAML).

  split RENDERED.yaml OUTDIR          one file per resource: OUTDIR/core/*.yaml (Kubernetes
                                      built-in kinds) and OUTDIR/cr/*.json (custom resources)
  promrules RENDERED.yaml... OUT      PrometheusRule groups -> plain rules file for promtool
  dashboard DASHBOARD.json OUT        every PromQL expr of the dashboard -> recording rules
  adapter RULES.yaml VALUES.yaml OUT  prometheus-adapter metricsQuery/seriesQuery -> rules;
                                      checks values.yaml carries the same rules
  consistency DEV.yaml PROD.yaml ADAPTER_RULES.yaml DASHBOARD.json
                                      cross-checks between the manifests (see below)
  tomls RENDERED.yaml OUTDIR          exchange.toml of each exchange-config ConfigMap
  livemetrics BIN CONFIG              start `BIN serve` on a free loopback port, check that
                                      /metrics exports every metric the dashboard and rules
                                      expect today, then SIGTERM: it must exit 0 in time
  docker REPO_ROOT DEV.yaml           static checks of Dockerfile/docker-compose.yml (no engine
                                      here): binaries, uid, mounted files, bidder names
"""
import json
import os
import re
import sys

import yaml

CR_GROUPS = ("kafka.strimzi.io/", "monitoring.coreos.com/")

# Metric names the exchange exports today, and the ones planned by the ledger/Kafka issue
# (k8s/README.md); anything else in a dashboard or rule is a typo.
EXCHANGE_METRICS = {
    "rtb_auction_requests_total", "rtb_auctions_total", "rtb_shed_requests_total",
    "rtb_bidder_requests_total", "rtb_bidder_bids_total", "rtb_bidder_wins_total",
    "rtb_bidder_no_bids_total", "rtb_bidder_timeouts_total", "rtb_bidder_errors_total",
    "rtb_in_flight_auctions", "rtb_budget_lost_bids_total",
}
# Exported by `serve` only with samples once a budget exists (one per budgeted account).
EXCHANGE_METRICS_PER_BUDGET = {"rtb_budget_lease_available_micros"}
for h in ("rtb_stage_duration_seconds", "rtb_bidder_duration_seconds"):
    EXCHANGE_METRICS |= {h + "_bucket", h + "_sum", h + "_count"}
# Served by `exchange ledger` on [ledger] metrics_addr (exchange/src/ledger/metrics.rs;
# exchange/tests/ledger_metrics.rs checks them); not by `serve`, so livemetrics skips them.
LEDGER_METRICS = {
    "rtb_ledger_batches_total", "rtb_ledger_messages_total", "rtb_ledger_debits_total",
    "rtb_ledger_duplicates_total", "rtb_ledger_dead_letters_total", "rtb_ledger_consumer_lag",
    "rtb_budget_spent_micros_total", "rtb_budget_remaining_micros", "rtb_budget_leased_micros",
}
LEDGER_METRICS |= {"rtb_ledger_commit_lag_seconds" + s for s in ("_bucket", "_sum", "_count")}
PLANNED_METRICS = {"rtb_spool_events"}
OTHER_METRICS = {"up", "kafka_consumergroup_lag"}  # Prometheus itself; Strimzi Kafka Exporter


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def fail(msg):
    print(f"FAIL {msg}", file=sys.stderr)
    sys.exit(1)


def split(rendered, outdir):
    os.makedirs(f"{outdir}/core", exist_ok=True)
    os.makedirs(f"{outdir}/cr", exist_ok=True)
    n_core = n_cr = 0
    for i, d in enumerate(load_all(rendered)):
        name = f"{i:02d}-{d['kind']}-{d['metadata']['name']}".lower()
        if d["apiVersion"].startswith(CR_GROUPS):
            with open(f"{outdir}/cr/{name}.json", "w") as f:
                json.dump(d, f)
            n_cr += 1
        else:
            with open(f"{outdir}/core/{name}.yaml", "w") as f:
                yaml.safe_dump(d, f, sort_keys=False)
            n_core += 1
    print(f"{rendered}: {n_core} built-in resources, {n_cr} custom resources")


def promrules(args):
    *rendered, out = args
    groups = []
    for path in rendered:
        for d in load_all(path):
            if d["kind"] == "PrometheusRule":
                groups += d["spec"]["groups"]
    if not groups:
        fail("no PrometheusRule groups found")
    names = [g["name"] for g in groups]
    # dev and prod render the same rules: keep one copy of each group
    uniq = {}
    for g in groups:
        if g["name"] in uniq and uniq[g["name"]] != g:
            fail(f"rule group {g['name']} differs between overlays")
        uniq[g["name"]] = g
    with open(out, "w") as f:
        yaml.safe_dump({"groups": list(uniq.values())}, f, sort_keys=False)
    n = sum(len(g["rules"]) for g in uniq.values())
    print(f"{out}: {len(uniq)} groups, {n} rules from {len(names)} PrometheusRule groups")


GRAFANA_VARS = [
    (re.compile(r"\$__rate_interval|\$\{__rate_interval\}"), "1m"),
    (re.compile(r"\$__interval|\$\{__interval\}"), "1m"),
    (re.compile(r"\$__range|\$\{__range\}"), "1h"),
    (re.compile(r"\$\{(\w+)(:\w+)?\}|\$(\w+)"), "grafana_var"),
]


def grafana_exprs(node, path="$"):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                yield path, v
            else:
                yield from grafana_exprs(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from grafana_exprs(v, f"{path}[{i}]")


def subst(expr):
    for rx, rep in GRAFANA_VARS:
        expr = rx.sub(rep, expr)
    return expr


def dashboard(src, out):
    with open(src) as f:
        dash = json.load(f)
    rules = []
    for path, expr in grafana_exprs(dash):
        rules.append({"record": f"dashboard:expr_{len(rules)}", "expr": subst(expr),
                      "labels": {"panel_path": path}})
    # template variables: label_values(SELECTOR, label) -> check SELECTOR as PromQL
    for var in dash.get("templating", {}).get("list", []):
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"label_values\((.*),\s*\w+\)", q or "")
        if var.get("type") == "query":
            if not m:
                fail(f"dashboard variable {var['name']}: unrecognised query {q!r}")
            rules.append({"record": f"dashboard:var_{var['name']}", "expr": subst(m.group(1))})
    if not rules:
        fail("dashboard has no expressions")
    with open(out, "w") as f:
        yaml.safe_dump({"groups": [{"name": "grafana-dashboard", "rules": rules}]}, f, sort_keys=False)
    print(f"{out}: {len(rules)} dashboard expressions as recording rules")


def adapter(rules_path, values_path, out):
    with open(rules_path) as f:
        rules = yaml.safe_load(f)["rules"]
    with open(values_path) as f:
        values = yaml.safe_load(f)["rules"]["custom"]
    if rules != values:
        fail(f"{values_path} rules.custom differs from {rules_path} rules")
    out_rules = []
    for r in rules:
        name = r["name"]["as"]
        series = r["seriesQuery"]
        metric = re.match(r"\w+", series).group(0)
        if not re.search(r["name"]["matches"], metric):
            fail(f"adapter rule {name}: name.matches does not match {metric}")
        q = (r["metricsQuery"].replace("<<.Series>>", metric)
             .replace("<<.LabelMatchers>>", 'namespace="rtb",pod=~"exchange-.*"')
             .replace("<<.GroupBy>>", "namespace, pod"))
        out_rules.append({"record": f"adapter:{name}:series", "expr": series})
        out_rules.append({"record": f"adapter:{name}", "expr": q})
    with open(out, "w") as f:
        yaml.safe_dump({"groups": [{"name": "prometheus-adapter", "rules": out_rules}]}, f, sort_keys=False)
    print(f"{out}: {len(rules)} adapter rules ({', '.join(r['name']['as'] for r in rules)})")


def metric_names(expr):
    """Identifiers that PromQL would read as metric names (a rough lexer: strips strings,
    label matchers, by/without lists, durations and function calls)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"(?<![\w:])\d[\w.]*", "0", e)  # numbers: 1e6, 0.99, 1e-9
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word, rest = m.group(0), e[m.end():]
        if rest.lstrip().startswith("("):
            continue  # function or aggregation
        if word in {"by", "without", "on", "ignoring", "and", "or", "unless", "bool",
                    "offset", "group_left", "group_right", "e", "grafana_var", "inf", "nan"}:
            continue
        if re.fullmatch(r"\d.*", word):
            continue
        names.add(word)
    return names


def consistency(dev, prod, adapter_rules, dash_path):
    problems = []
    docs = {"dev": load_all(dev), "prod": load_all(prod)}
    with open(adapter_rules) as f:
        adapter_names = {r["name"]["as"] for r in yaml.safe_load(f)["rules"]}
    for overlay, ds in docs.items():
        by_kind = {}
        for d in ds:
            by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
        secrets = set(by_kind.get("Secret", {}))
        # 1. drain: grace period > preStop sleep + server.drain_timeout_ms
        cm = next(d for n, d in by_kind["ConfigMap"].items() if n.startswith("exchange-config"))
        m = re.search(r"^drain_timeout_ms\s*=\s*(\d+)", cm["data"]["exchange.toml"], re.M)
        drain_s = int(m.group(1)) / 1000 if m else 5.0
        pod = by_kind["Deployment"]["exchange"]["spec"]["template"]["spec"]
        c = pod["containers"][0]
        pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if not pre:
            problems.append(f"{overlay}: exchange has no preStop sleep")
        if not grace > pre + drain_s:
            problems.append(f"{overlay}: terminationGracePeriodSeconds {grace} <= preStop {pre} + drain {drain_s}")
        if c["readinessProbe"]["httpGet"]["path"] != "/readyz" or c["livenessProbe"]["httpGet"]["path"] != "/healthz":
            problems.append(f"{overlay}: exchange probes must be /readyz (readiness) and /healthz (liveness)")
        print(f"{overlay}: drain ok (grace {grace}s > preStop {pre}s + drain {drain_s:g}s)")
        # 2. every secretKeyRef / secret volume names a Secret that the overlay renders
        #    (dev) or that the README tells to create (prod: none rendered at all)
        refs = set()
        for kind in ("Deployment", "StatefulSet"):
            for d in by_kind.get(kind, {}).values():
                for ctr in d["spec"]["template"]["spec"]["containers"]:
                    for e in ctr.get("env", []):
                        ref = e.get("valueFrom", {}).get("secretKeyRef")
                        if ref:
                            refs.add(ref["name"])
        if overlay == "prod":
            if secrets:
                problems.append(f"prod renders Secrets {sorted(secrets)}: prod must only reference them")
            if refs != {"rtb-postgres", "rtb-exchange-admin"}:
                problems.append(f"prod references unexpected Secrets {sorted(refs)} (update k8s/README.md)")
        else:
            missing = refs - secrets
            if missing:
                problems.append(f"{overlay}: Secrets referenced but not generated: {sorted(missing)}")
            for s in by_kind.get("Secret", {}).values():
                for k, v in s.get("data", {}).items():
                    import base64
                    val = base64.b64decode(v).decode()
                    if k != "username" and "not-a-secret" not in val:
                        problems.append(f"{overlay}: Secret {s['metadata']['name']}.{k} is not an obvious placeholder")
        print(f"{overlay}: secrets referenced {sorted(refs)}; rendered {sorted(secrets) or 'none'}")
        # 3. HPA custom metrics are served by the adapter rules
        for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
            for met in hpa["spec"]["metrics"]:
                if met["type"] == "Pods":
                    n = met["pods"]["metric"]["name"]
                    if n not in adapter_names:
                        problems.append(f"{overlay}: HPA metric {n} has no prometheus-adapter rule")
            print(f"{overlay}: HPA {hpa['spec']['minReplicas']}..{hpa['spec']['maxReplicas']} on "
                  + ", ".join(m.get("resource", {}).get("name") or m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]))
        if overlay == "prod":
            if "HorizontalPodAutoscaler" not in by_kind:
                problems.append("prod has no HPA")
            if "replicas" in by_kind["Deployment"]["exchange"]["spec"]:
                problems.append("prod: exchange Deployment sets replicas while the HPA owns them")
            if "PodDisruptionBudget" not in by_kind:
                problems.append("prod has no PodDisruptionBudget")
        # 4. PodMonitor scrapes a port that the exchange and ledger pods name; the
        #    ledger's is its metrics listener ([ledger] metrics_addr, default :9091)
        ledger_ctr = by_kind["Deployment"]["ledger"]["spec"]["template"]["spec"]["containers"][0]
        for pm in by_kind.get("PodMonitor", {}).values():
            for who, ctr in (("exchange", c), ("ledger", ledger_ctr)):
                ports = {p["name"] for p in ctr.get("ports", [])}
                for ep in pm["spec"]["podMetricsEndpoints"]:
                    if ep["port"] not in ports:
                        problems.append(f"{overlay}: PodMonitor port {ep['port']} not on the {who} container")
        m = re.search(r'^metrics_addr\s*=\s*"[^"]*:(\d+)"', cm["data"]["exchange.toml"], re.M)
        ledger_port = int(m.group(1)) if m else 9091
        named = {p["name"]: p["containerPort"] for p in ledger_ctr.get("ports", [])}
        if named.get("metrics") != ledger_port:
            problems.append(f"{overlay}: ledger port metrics is {named.get('metrics')}, its metrics listener {ledger_port}")
        # The exchange's metrics port is its metrics_listen.
        m = re.search(r'^metrics_listen\s*=\s*"[^"]*:(\d+)"', cm["data"]["exchange.toml"], re.M)
        ex_named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        if not m or ex_named.get("metrics") != int(m.group(1)):
            problems.append(f"{overlay}: exchange port metrics is {ex_named.get('metrics')}, its metrics_listen {m and m.group(1)}")
        if ledger_ctr.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            problems.append(f"{overlay}: ledger liveness probe must be GET /healthz")
        # 5. Kafka topics the design needs, on the cluster the manifests define
        topics = by_kind.get("KafkaTopic", {})
        for t in ("auction-results", "auction-results-dlq"):
            if t not in topics:
                problems.append(f"{overlay}: KafkaTopic {t} missing")
        kafkas = set(by_kind.get("Kafka", {}))
        for t in topics.values():
            if t["metadata"]["labels"].get("strimzi.io/cluster") not in kafkas:
                problems.append(f"{overlay}: KafkaTopic {t['metadata']['name']} names no rendered Kafka")
        # 6. metric names in rules are known
        for pr in by_kind.get("PrometheusRule", {}).values():
            recorded = {r["record"] for g in pr["spec"]["groups"] for r in g["rules"] if "record" in r}
            for g in pr["spec"]["groups"]:
                for r in g["rules"]:
                    unknown = metric_names(r["expr"]) - EXCHANGE_METRICS - EXCHANGE_METRICS_PER_BUDGET - LEDGER_METRICS - PLANNED_METRICS - OTHER_METRICS - recorded
                    if unknown:
                        problems.append(f"{overlay}: rule {r.get('alert') or r.get('record')} uses unknown metrics {sorted(unknown)}")
    with open(dash_path) as f:
        dash = json.load(f)
    used = set()
    for path, expr in grafana_exprs(dash):
        names = metric_names(subst(expr))
        used |= names
        unknown = names - EXCHANGE_METRICS - EXCHANGE_METRICS_PER_BUDGET - LEDGER_METRICS - PLANNED_METRICS - OTHER_METRICS
        if unknown:
            problems.append(f"dashboard {path} uses unknown metrics {sorted(unknown)}")
    for want in ("rtb_budget_spent_micros_total", "rtb_budget_remaining_micros", "rtb_ledger_consumer_lag",
                 "rtb_ledger_commit_lag_seconds_bucket", "rtb_ledger_messages_total",
                 "rtb_shed_requests_total", "rtb_bidder_timeouts_total", "rtb_stage_duration_seconds_bucket",
                 "rtb_bidder_duration_seconds_bucket", "rtb_auction_requests_total"):
        if want not in used:
            problems.append(f"dashboard has no panel on {want}")
    print(f"dashboard: {len(used)} metric names, all known (planned: {sorted(used & PLANNED_METRICS)})")
    if problems:
        for p in problems:
            print(f"FAIL {p}", file=sys.stderr)
        sys.exit(1)


def tomls(rendered, outdir):
    os.makedirs(outdir, exist_ok=True)
    for d in load_all(rendered):
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("exchange-config"):
            p = f"{outdir}/exchange.toml"
            with open(p, "w") as f:
                f.write(d["data"]["exchange.toml"])
            print(p)


def livemetrics(binary, config):
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    import os
    import re
    import tempfile

    def free_port():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    port, ops_port = free_port(), free_port()
    # The cluster's config names services that do not exist here (the admin
    # port on every interface, Strimzi's brokers): run a copy without them, so
    # the exchange uses its embedded Kafka and ledger, in a scratch directory.
    work = tempfile.mkdtemp(prefix="livemetrics-")
    text_cfg = open(config).read()
    text_cfg = re.sub(r'(?m)^admin_listen\s*=.*$', '', text_cfg)
    text_cfg = re.sub(r'(?m)^metrics_listen\s*=.*$', f'metrics_listen = "127.0.0.1:{ops_port}"', text_cfg)
    text_cfg = re.sub(r'(?m)^brokers\s*=.*$', '', text_cfg)
    text_cfg = re.sub(r'(?m)^spool_path\s*=.*$', '', text_cfg)
    text_cfg = re.sub(r'(?m)^embedded\s*=.*$', '', text_cfg)
    local_cfg = os.path.join(work, "exchange.toml")
    with open(local_cfg, "w") as f:
        f.write(text_cfg)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LEDGER_DATABASE_URL")}
    proc = subprocess.Popen([os.path.abspath(binary), "serve", "--config", local_cfg, "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=work, env=env)
    text = None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    try:
        deadline = time.time() + 15
        while time.time() < deadline and proc.poll() is None:
            try:
                ready = opener.open(f"http://127.0.0.1:{port}/readyz", timeout=2).status
                text = opener.open(f"http://127.0.0.1:{ops_port}/metrics", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.2)
        if text is None:
            fail(f"{binary} serve did not answer /metrics: {proc.stderr.read().decode()[-500:] if proc.poll() is not None else 'timeout'}")
        exported = {line.split("{")[0].split()[0] for line in text.splitlines() if line and not line.startswith("#")}
        missing = EXCHANGE_METRICS - exported
        if missing:
            fail(f"/metrics lacks {sorted(missing)}, which the dashboard/rules use (update them and check.py)")
        print(f"/readyz {ready}; /metrics exports all {len(EXCHANGE_METRICS)} series names the dashboard and rules use")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail("exchange did not exit within 10 s of SIGTERM")
    if rc != 0:
        fail(f"exchange exited {rc} after SIGTERM (expected 0)")
    print("SIGTERM: drained and exited 0")


def docker(root, dev):
    problems = []
    dockerfile = open(f"{root}/Dockerfile").read()
    bins = set()
    for cargo in ("exchange", "bidder", "perf"):
        bins |= set(re.findall(r'\[\[bin\]\]\s*name\s*=\s*"([^"]+)"', open(f"{root}/{cargo}/Cargo.toml").read()))
    for b in sorted(bins):
        if f"--bin {b}" not in dockerfile or f"target/release/{b}" not in dockerfile:
            problems.append(f"Dockerfile does not build and copy binary {b}")
    m = re.search(r"^USER (\d+):(\d+)", dockerfile, re.M)
    uids = set()
    for d in load_all(dev):
        if d["kind"] in ("Deployment",) and d["metadata"]["name"] != "postgres":
            uids.add(d["spec"]["template"]["spec"]["securityContext"]["runAsUser"])
    if not m or {int(m.group(1))} != uids:
        problems.append(f"Dockerfile USER {m and m.group(0)} differs from the manifests' runAsUser {sorted(uids)}")
    ignore = open(f"{root}/.dockerignore").read().split()
    for needed in ("Cargo.toml", "Cargo.lock", "proto", "exchange", "bidder", "perf"):
        if needed in ignore or needed + "/" in ignore:
            problems.append(f".dockerignore excludes {needed}, which the build needs")
    with open(f"{root}/docker-compose.yml") as f:
        compose = yaml.safe_load(f)
    services = compose["services"]
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith(".") and not os.path.exists(os.path.join(root, src)):
                problems.append(f"compose {name} mounts missing {src}")
            if src.startswith("./"):
                toml = open(os.path.join(root, src)).read()
                for host in re.findall(r'"https?://([\w.-]+):\d+"', toml):
                    if host not in services:
                        problems.append(f"{src}: bidder host {host} is no compose service")
        cmd = svc.get("command") or []
        if svc.get("image", "").startswith("rtb-exchange") and cmd and cmd[0] not in bins:
            problems.append(f"compose {name} runs {cmd[0]}, not a binary of the image")
    for want in ("exchange", "postgres", "kafka"):
        if want not in services:
            problems.append(f"compose has no {want} service")
    if sum(1 for s in services if s.startswith("bidder-")) < 3:
        problems.append("compose needs three simulated bidders")
    if problems:
        for p in problems:
            print(f"FAIL {p}", file=sys.stderr)
        sys.exit(1)
    print(f"Dockerfile builds {sorted(bins)} as uid {m.group(1)}; compose services {sorted(services)}: "
          "mounts present, bidder hosts resolve to services")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"split": lambda: split(*args), "promrules": lambda: promrules(args), "dashboard": lambda: dashboard(*args),
     "adapter": lambda: adapter(*args), "consistency": lambda: consistency(*args),
     "tomls": lambda: tomls(*args), "docker": lambda: docker(*args),
     "livemetrics": lambda: livemetrics(*args)}[cmd]()
