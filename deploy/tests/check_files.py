#!/usr/bin/env python3
"""Static checks of deploy/ that no off-the-shelf tool does (run by scripts/check-deploy).

Every file parses; every environment variable a deployment file sets is one the binary reads;
subcommands, ports, probes and paths agree between the binary, compose, Kubernetes, nginx,
Prometheus, Grafana, systemd and the Dockerfile; every metric a dashboard or rule queries is
one the binary exports. Prints each failure and exits 1 if there was any.

Usage: check_files.py <repo root>     (needs PyYAML)
"""

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
DEPLOY = ROOT / "deploy"
FAILURES = []


def fail(where, what):
    FAILURES.append(f"{where}: {what}")


def rel(path):
    return str(Path(path).relative_to(ROOT))


# Environment variables the binary reads: the README's configuration table, the `worker` and
# `control-plane` flags' variables, and the provider settings. Each must also occur as a
# string literal in the Rust sources (checked below), so this list cannot outlive a rename.
ACCEPTED_ENV = {
    # serve / common
    "PORT", "MANA_LLM_HOST", "MANA_LLM_ALIASES", "MANA_LLM_DB", "MANA_LLM_DRAIN_SECONDS",
    "LOG_LEVEL", "LOG_FORMAT",
    # control plane and admin CLI
    "MANA_LLM_ADMIN_TOKEN", "MANA_LLM_CONTROL_PLANE_URL", "MANA_LLM_CONTROL_PLANE_LISTEN",
    # fleet
    "REDIS_URL", "MANA_LLM_REDIS_PREFIX", "MANA_LLM_REDIS_TIMEOUT_MS", "MANA_LLM_LISTEN",
    "MANA_LLM_WORKER_ID", "MANA_LLM_SYNC_INTERVAL",
    "MANA_LLM_FLEET_KEY", "MANA_LLM_REDIS_CA_FILE",
    # cache
    "MANA_LLM_CACHE", "CACHE_TTL", "MANA_LLM_CACHE_MAX_ENTRY_KB", "MANA_LLM_CACHE_LOCAL_ENTRIES",
    "MANA_LLM_CACHE_LOCAL_TTL",
    # providers
    "OLLAMA_URL", "OLLAMA_TIMEOUT",
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENROUTER_API_KEY", "OPENROUTER_BASE_URL",
    "GROQ_API_KEY", "GROQ_BASE_URL", "TOGETHER_API_KEY", "TOGETHER_BASE_URL",
    "GOOGLE_API_KEY", "GOOGLE_BASE_URL",
    # timeouts, breakers, probe, limits
    "MANA_LLM_UPSTREAM_TIMEOUT", "MANA_LLM_CONNECT_TIMEOUT", "MANA_LLM_STREAM_IDLE_TIMEOUT",
    "MANA_LLM_FIRST_TOKEN_TIMEOUT", "MANA_LLM_REQUEST_TIMEOUT", "MANA_LLM_BREAKER_FAILURES",
    "MANA_LLM_BREAKER_OPEN_SECONDS", "MANA_LLM_RATE_LIMIT_OPEN_SECONDS", "MANA_LLM_PROBE",
    "MANA_LLM_PROBE_INTERVAL", "MANA_LLM_PROBE_TIMEOUT", "MANA_LLM_SSE_KEEPALIVE",
    "MANA_LLM_BODY_LIMIT_MB",
    # client auth, CORS, demo
    "GPU_API_KEY", "MANA_LLM_API_KEYS", "GPU_REQUIRE_AUTH", "CORS_ORIGINS",
    "MANA_LLM_ECHO_DELAY_MS",
}

# Metric names the binary exports (workers, then the control plane).
KNOWN_METRICS = {
    "mana_llm_requests_total", "mana_llm_request_latency_seconds",
    "mana_llm_llm_requests_total", "mana_llm_tokens_total", "mana_llm_llm_latency_seconds",
    "mana_llm_llm_errors_total", "mana_llm_alias_resolved_total", "mana_llm_fallback_total",
    "mana_llm_provider_healthy", "mana_llm_time_to_first_token_seconds",
    "mana_llm_gateway_overhead_seconds", "mana_llm_in_flight_requests",
    "mana_llm_registry_version", "mana_llm_registry_reloads_total", "mana_llm_redis_up",
    "mana_llm_redis_errors_total", "mana_llm_cache_requests_total", "mana_llm_breaker_state",
    "mana_llm_worker_info", "mana_llm_registry_rejected_total", "mana_llm_registry_repairs_total",
    "mana_llm_fleet_workers", "mana_llm_fleet_max_lag_seconds",
    "mana_llm_control_plane_registry_version", "mana_llm_control_plane_reloads_total",
    "mana_llm_control_plane_outbox_pending", "mana_llm_rollout_candidate_version",
}
HISTOGRAMS = {
    "mana_llm_request_latency_seconds", "mana_llm_llm_latency_seconds",
    "mana_llm_time_to_first_token_seconds", "mana_llm_gateway_overhead_seconds",
}
SUBCOMMANDS = {"serve", "worker", "control-plane"}
DRAIN_DEFAULT = 30


def rust_string_literals():
    text = []
    for sub in ("src", "shared/src", "data-plane/src", "control-plane/src"):
        for path in (ROOT / sub).rglob("*.rs"):
            text.append(path.read_text(encoding="utf-8"))
    return "\n".join(text)


def metric_names(expr):
    names = set()
    for name in re.findall(r"\bmana_llm_[a-z_]+", expr):
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and base in HISTOGRAMS:
                name = base
        names.add(name)
    return names


def load_yaml_docs(path):
    try:
        return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except yaml.YAMLError as e:
        fail(rel(path), f"does not parse as YAML: {e}")
        return []


def env_file_names(path):
    """Variable names of an env file, commented-out examples (`# NAME=`) included."""
    names = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        s = line.strip()
        m = re.match(r"^([A-Z][A-Z0-9_]*)=", s) or re.match(r"^# ?([A-Z][A-Z0-9_]*)=\S*$", s)
        if m:
            names.append((n, m.group(1)))
        elif s and not s.startswith("#"):
            fail(rel(path), f"line {n} is not NAME=value: {line!r}")
    return names


def check_env(where, name):
    if name not in ACCEPTED_ENV:
        fail(where, f"sets {name}, which mana-llm does not read")


def port_of(addr):
    m = re.search(r":(\d+)$", str(addr))
    return int(m.group(1)) if m else None


def seconds(value):
    m = re.fullmatch(r"(\d+)(s|m)?", str(value))
    if not m:
        return None
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


# ---------------------------------------------------------------- the lists themselves
def check_lists():
    source = rust_string_literals()
    for name in sorted(ACCEPTED_ENV):
        if f'"{name}"' not in source:
            fail("check_files.py ACCEPTED_ENV", f"{name} is not read anywhere in the Rust sources")
    for name in sorted(KNOWN_METRICS):
        if f'"{name}"' not in source:
            fail("check_files.py KNOWN_METRICS", f"{name} is not registered anywhere in the Rust sources")


# ---------------------------------------------------------------- every YAML file parses
def check_yaml_parses():
    for path in sorted(list(DEPLOY.rglob("*.yaml")) + list(DEPLOY.rglob("*.yml"))):
        before = len(FAILURES)
        if not load_yaml_docs(path) and len(FAILURES) == before:
            fail(rel(path), "has no YAML document")


# ---------------------------------------------------------------- Grafana
def check_grafana():
    path = DEPLOY / "grafana/dashboards/mana-llm.json"
    try:
        dash = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        fail(rel(path), f"does not parse as JSON: {e}")
        return
    used = set()
    ids = set()
    panels = []
    for p in dash.get("panels", []):
        panels.append(p)
        panels.extend(p.get("panels", []))
    if not panels:
        fail(rel(path), "has no panels")
    for p in panels:
        if p.get("id") in ids:
            fail(rel(path), f"panel id {p.get('id')} is used twice")
        ids.add(p.get("id"))
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            fail(rel(path), f"panel {p.get('title')!r} does not use the $datasource variable")
        targets = p.get("targets", [])
        if not targets:
            fail(rel(path), f"panel {p.get('title')!r} has no query")
        for t in targets:
            names = metric_names(t.get("expr", ""))
            if not names:
                fail(rel(path), f"panel {p.get('title')!r} queries no mana_llm metric: {t.get('expr')!r}")
            for name in names - KNOWN_METRICS:
                fail(rel(path), f"panel {p.get('title')!r} queries {name}, which mana-llm does not export")
            used |= names
    # The panels the deploy issue asks for, by the metric each one needs.
    for needed in ("mana_llm_alias_resolved_total", "mana_llm_fallback_total",
                   "mana_llm_breaker_state", "mana_llm_request_latency_seconds",
                   "mana_llm_time_to_first_token_seconds", "mana_llm_gateway_overhead_seconds",
                   "mana_llm_cache_requests_total", "mana_llm_registry_version"):
        if needed not in used:
            fail(rel(path), f"no panel shows {needed}")
    prov = DEPLOY / "grafana/provisioning/dashboards/mana-llm.yml"
    for doc in load_yaml_docs(prov):
        for provider in doc.get("providers", []):
            if provider.get("options", {}).get("path") != "/var/lib/grafana/dashboards":
                fail(rel(prov), "dashboards path differs from the compose mount /var/lib/grafana/dashboards")
    ds = DEPLOY / "grafana/provisioning/datasources/prometheus.yml"
    for doc in load_yaml_docs(ds):
        urls = [d.get("url") for d in doc.get("datasources", [])]
        if "http://prometheus:9090" not in urls:
            fail(rel(ds), "no datasource points at the compose prometheus service (http://prometheus:9090)")


# ---------------------------------------------------------------- Prometheus rules vs tests
def check_prometheus():
    rules_path = DEPLOY / "prometheus/mana-llm.rules.yml"
    tests_path = DEPLOY / "prometheus/tests/mana-llm.rules.test.yml"
    alerts = []
    for doc in load_yaml_docs(rules_path):
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                for name in metric_names(rule.get("expr", "")) - KNOWN_METRICS:
                    fail(rel(rules_path), f"{rule.get('alert') or rule.get('record')} queries {name}, which mana-llm does not export")
                if "alert" in rule:
                    alerts.append(rule["alert"])
    fired = set()
    for doc in load_yaml_docs(tests_path):
        for test in doc.get("tests", []):
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    fired.add(case.get("alertname"))
    for alert in alerts:
        if alert not in fired:
            fail(rel(tests_path), f"no test expects {alert} to fire")
    prom = DEPLOY / "prometheus/prometheus.yml"
    for doc in load_yaml_docs(prom):
        jobs = {j.get("job_name"): j for j in doc.get("scrape_configs", [])}
        worker = jobs.get("mana-llm-worker", {})
        sd = (worker.get("dns_sd_configs") or [{}])[0]
        if sd.get("names") != ["worker"] or sd.get("port") != 3025:
            fail(rel(prom), "the worker job must discover the compose `worker` service on port 3025")
        cp = jobs.get("mana-llm-control-plane", {})
        targets = [t for sc in cp.get("static_configs", []) for t in sc.get("targets", [])]
        if targets != ["control-plane:3026"]:
            fail(rel(prom), "the control-plane job must scrape control-plane:3026")
        for j in (worker, cp):
            if j.get("metrics_path", "/metrics") != "/metrics":
                fail(rel(prom), f"job {j.get('job_name')} scrapes {j.get('metrics_path')}, not /metrics")


# ---------------------------------------------------------------- compose
def check_compose():
    path = DEPLOY / "compose.yaml"
    docs = load_yaml_docs(path)
    if not docs:
        return
    compose = docs[0]
    services = compose.get("services", {})
    where = rel(path)
    for name in ("redis", "control-plane", "worker", "nginx", "prometheus", "grafana", "mock"):
        if name not in services:
            fail(where, f"no `{name}` service")
    if "mock" in services and "mock" not in services["mock"].get("profiles", []):
        fail(where, "the mock service is not in the `mock` profile")
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", (DEPLOY / "Dockerfile").read_text(), re.M | re.I))
    env_of = {}
    for sname, svc in services.items():
        build = svc.get("build")
        if isinstance(build, dict):
            if (path.parent / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).resolve() != (DEPLOY / "Dockerfile").resolve():
                fail(where, f"{sname} builds from an unexpected Dockerfile")
            if build.get("target") not in stages:
                fail(where, f"{sname} builds target {build.get('target')!r}, not a stage of deploy/Dockerfile")
        if sname in ("control-plane", "worker"):
            cmd = svc.get("command", [])
            if not cmd or cmd[0] not in SUBCOMMANDS:
                fail(where, f"{sname} runs {cmd!r}, not a mana-llm subcommand")
            env = svc.get("environment", {})
            if isinstance(env, list):
                env = dict(e.split("=", 1) for e in env)
            for key in env:
                check_env(f"{where} {sname}", key)
            env_of[sname] = {k: str(v) for k, v in env.items()}
            for ef in svc.get("env_file", []):
                p = ef["path"] if isinstance(ef, dict) else ef
                # ${VAR:-default}: check the default and every env file next to it.
                m = re.fullmatch(r"\$\{[A-Z_]+:-(.+)\}", p)
                p = m.group(1) if m else p
                if not (path.parent / p).exists() and not (path.parent / (p + ".example")).exists():
                    fail(where, f"{sname} env_file {p} has no file or .example next to it")
        for vol in svc.get("volumes", []):
            src = str(vol).split(":")[0]
            if src.startswith("."):
                if not (path.parent / src).exists():
                    fail(where, f"{sname} mounts {src}, which does not exist")
    for envfile in ("mock.env", "providers.env.example"):
        for n, key in env_file_names(DEPLOY / envfile):
            check_env(f"deploy/{envfile}:{n}", key)
    cp, worker = env_of.get("control-plane", {}), env_of.get("worker", {})
    check_compose_redis(where, services, cp, worker)
    cp_listen = cp.get("MANA_LLM_CONTROL_PLANE_LISTEN", "127.0.0.1:3026")
    cp_port = port_of(cp_listen)
    if not cp_listen.startswith("127.") and "MANA_LLM_ADMIN_TOKEN" not in cp:
        fail(where, "the control plane listens beyond loopback without MANA_LLM_ADMIN_TOKEN (it would refuse to start)")
    hc = " ".join(services.get("control-plane", {}).get("healthcheck", {}).get("test", []))
    if f"127.0.0.1:{cp_port}/ready" not in hc and f"127.0.0.1:{cp_port}/health" not in hc:
        fail(where, f"the control plane healthcheck does not probe /ready or /health on port {cp_port}: {hc!r}")
    if not any(str(p).endswith(f":{cp_port}") for p in services.get("control-plane", {}).get("ports", [])):
        fail(where, f"the control plane's port {cp_port} is not published (for `mana-llm aliases`)")
    if worker.get("MANA_LLM_CONTROL_PLANE_URL") != f"http://control-plane:{cp_port}":
        fail(where, f"workers' MANA_LLM_CONTROL_PLANE_URL does not point at control-plane:{cp_port}")
    db_dir = str(Path(cp.get("MANA_LLM_DB", "/var/lib/mana-llm/registry.db")).parent)
    named = set((compose.get("volumes") or {}).keys())
    if not any(str(v).split(":")[0] in named and str(v).split(":")[1] == db_dir
               for v in services.get("control-plane", {}).get("volumes", [])):
        fail(where, f"the control plane's database directory {db_dir} is not on a named volume")
    w_port = port_of(worker.get("MANA_LLM_LISTEN", "0.0.0.0:3025"))
    if str(w_port) not in [str(p) for p in services.get("worker", {}).get("expose", [])]:
        fail(where, f"the worker listens on {w_port} but does not expose it")
    if services.get("worker", {}).get("ports"):
        fail(where, "workers publish host ports: `--scale worker=N` would collide")
    if "replicas" not in services.get("worker", {}).get("deploy", {}):
        fail(where, "the worker service sets no deploy.replicas")
    drain = int(worker.get("MANA_LLM_DRAIN_SECONDS", DRAIN_DEFAULT))
    grace = seconds(services.get("worker", {}).get("stop_grace_period", "10s"))
    if grace is None or grace <= drain:
        fail(where, f"worker stop_grace_period ({grace}s) must exceed the drain deadline ({drain}s)")
    nginx_conf = (DEPLOY / "nginx/nginx.conf").read_text()
    if not re.search(rf"server\s+worker:{w_port}\b", nginx_conf):
        fail("deploy/nginx/nginx.conf", f"the upstream does not point at worker:{w_port}")
    if not any(str(p).startswith("3025:") for p in services.get("nginx", {}).get("ports", [])):
        fail(where, "nginx does not publish port 3025")
    mock_port = 9000
    for n, key in env_file_names(DEPLOY / "mock.env"):
        line = (DEPLOY / "mock.env").read_text().splitlines()[n - 1]
        if key.endswith("_URL") and f"http://mock:{mock_port}" not in line:
            fail(f"deploy/mock.env:{n}", f"{key} does not point at the mock service (mock:{mock_port})")
    if str(mock_port) not in [str(p) for p in services.get("mock", {}).get("expose", [])]:
        fail(where, f"the mock service does not expose {mock_port}")


def check_compose_redis(where, services, cp, worker):
    """Redis requires a password that both planes send, and both hold the fleet key."""
    redis_cmd = " ".join(str(c) for c in services.get("redis", {}).get("command", []))
    if "requirepass" not in redis_cmd:
        fail(where, "redis runs without requirepass")
    if services.get("redis", {}).get("ports"):
        fail(where, "redis publishes a host port: only the control plane and workers may reach it")
    for sname, env in (("control-plane", cp), ("worker", worker)):
        if not re.fullmatch(r"rediss?://[^@/]*:\$\{REDIS_PASSWORD[^}]*\}@redis:\d+/?", env.get("REDIS_URL", "")):
            fail(where, f"{sname}'s REDIS_URL does not carry ${{REDIS_PASSWORD}} for the redis service")
        if not env.get("MANA_LLM_FLEET_KEY", "").startswith("${MANA_LLM_FLEET_KEY:?"):
            fail(where, f"{sname} does not require MANA_LLM_FLEET_KEY from the environment")


# ---------------------------------------------------------------- Kubernetes
def check_k8s():
    k8s = DEPLOY / "k8s"
    objects = {}  # (kind, name) -> object
    for path in sorted(k8s.rglob("*.yaml")):
        for doc in load_yaml_docs(path):
            objects[(doc.get("kind"), doc.get("metadata", {}).get("name"))] = (doc, path)
    kust_path = k8s / "kustomization.yaml"
    kust = load_yaml_docs(kust_path)[0]
    listed = set(kust.get("resources", []))
    for r in listed:
        if not (k8s / r).exists():
            fail(rel(kust_path), f"resource {r} does not exist")
    for path in sorted(k8s.glob("*.yaml")):
        if path.name not in listed | {"kustomization.yaml", "secret.example.yaml"}:
            fail(rel(kust_path), f"{path.name} is not listed in resources")
    if "secret.example.yaml" in listed:
        fail(rel(kust_path), "the example Secret must not be applied")
    overlay = k8s / "with-prometheus-operator/kustomization.yaml"
    for doc in load_yaml_docs(overlay):
        for r in doc.get("resources", []):
            if not (overlay.parent / r).exists():
                fail(rel(overlay), f"resource {r} does not exist")

    def obj(kind, name):
        found = objects.get((kind, name))
        if not found:
            fail("deploy/k8s", f"no {kind} {name}")
            return None, None
        return found

    configmap, _ = obj("ConfigMap", "mana-llm-env")
    secret, secret_path = obj("Secret", "mana-llm-secrets")
    aliases_cm, aliases_path = obj("ConfigMap", "mana-llm-aliases")
    if configmap:
        for key in configmap.get("data", {}):
            check_env("deploy/k8s/config.yaml", key)
    if secret:
        for key in secret.get("stringData", {}):
            check_env(rel(secret_path), key)
        for key in ("REDIS_URL", "MANA_LLM_FLEET_KEY"):
            if key not in secret.get("stringData", {}):
                fail(rel(secret_path), f"no {key}: it is a secret of both planes")
    if configmap and "REDIS_URL" in configmap.get("data", {}):
        fail("deploy/k8s/config.yaml", "REDIS_URL carries Redis's password: it belongs in the Secret")
    if aliases_cm:
        if aliases_cm.get("data", {}).get("aliases.yaml") != (ROOT / "aliases.yaml").read_text(encoding="utf-8"):
            fail(rel(aliases_path), "aliases.yaml differs from the repository's aliases.yaml")

    def container_env(c):
        env = {}
        for e in c.get("env", []):
            check_env(f"deploy/k8s container {c.get('name')}", e["name"])
            env[e["name"]] = e.get("value")
        for ef in c.get("envFrom", []):
            if "configMapRef" in ef and ef["configMapRef"]["name"] != "mana-llm-env":
                fail("deploy/k8s", f"container {c.get('name')} reads unknown ConfigMap {ef['configMapRef']['name']}")
            if "secretRef" in ef and ef["secretRef"]["name"] != "mana-llm-secrets":
                fail("deploy/k8s", f"container {c.get('name')} reads unknown Secret {ef['secretRef']['name']}")
        return env

    def check_probes(where, c, port):
        named = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        if port not in named.values():
            fail(where, f"container port is not the listen port {port}")
        for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
            get = c.get(probe, {}).get("httpGet", {})
            if get.get("path") != path:
                fail(where, f"{probe} must GET {path}, not {get.get('path')}")
            p = get.get("port")
            if named.get(p, p) != port:
                fail(where, f"{probe} probes port {p}, not {port}")
        return named

    def check_annotations(where, tmpl, port):
        ann = tmpl.get("metadata", {}).get("annotations", {})
        if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != str(port) \
                or ann.get("prometheus.io/path") != "/metrics":
            fail(where, f"scrape annotations must say scrape=true, port={port}, path=/metrics")

    def selects(selector, labels):
        return all(labels.get(k) == v for k, v in selector.items())

    pods = {}
    # Workers.
    dep, dep_path = obj("Deployment", "mana-llm-worker")
    if dep:
        where = rel(dep_path)
        spec = dep["spec"]
        tmpl = spec["template"]
        pods["worker"] = tmpl
        if "replicas" in spec:
            fail(where, "sets replicas although the HPA owns them")
        c = tmpl["spec"]["containers"][0]
        if c.get("args", [None])[0] != "worker":
            fail(where, f"runs {c.get('args')}, not `worker`")
        env = container_env(c)
        port = port_of(env.get("MANA_LLM_LISTEN", "0.0.0.0:3025"))
        check_probes(where, c, port)
        check_annotations(where, tmpl, port)
        drain = int(env.get("MANA_LLM_DRAIN_SECONDS") or DRAIN_DEFAULT)
        pre = c.get("lifecycle", {}).get("preStop", {})
        pre_s = pre.get("sleep", {}).get("seconds", 0)
        grace = tmpl["spec"].get("terminationGracePeriodSeconds", 30)
        if not pre:
            fail(where, "no preStop hook (endpoints must be gone before SIGTERM)")
        if grace <= pre_s + drain:
            fail(where, f"terminationGracePeriodSeconds {grace} must exceed preStop {pre_s}s + drain {drain}s")
        res = c.get("resources", {})
        if res.get("requests", {}).get("memory") != "64Mi" or res.get("limits", {}).get("memory") != "256Mi":
            fail(where, "memory must be requests 64Mi / limits 256Mi (measured RSS)")
        if "cpu" not in res.get("requests", {}):
            fail(where, "no CPU request: the HPA's utilization target needs one")
        cp_url = env.get("MANA_LLM_CONTROL_PLANE_URL", "")
        if cp_url != "http://mana-llm-control-plane:3026":
            fail(where, f"MANA_LLM_CONTROL_PLANE_URL {cp_url!r} is not the control plane Service")
        if not selects(spec["selector"]["matchLabels"], tmpl["metadata"]["labels"]):
            fail(where, "selector does not match the pod labels")
    # Control plane.
    sts, sts_path = obj("StatefulSet", "mana-llm-control-plane")
    if sts:
        where = rel(sts_path)
        spec = sts["spec"]
        tmpl = spec["template"]
        pods["control-plane"] = tmpl
        if spec.get("replicas") != 1:
            fail(where, "the control plane must have exactly one replica (one SQLite writer)")
        c = tmpl["spec"]["containers"][0]
        if c.get("args", [None])[0] != "control-plane":
            fail(where, f"runs {c.get('args')}, not `control-plane`")
        env = container_env(c)
        listen = env.get("MANA_LLM_CONTROL_PLANE_LISTEN", "127.0.0.1:3026")
        port = port_of(listen)
        if port != 3026:
            fail(where, f"listens on {port}; workers and ServiceMonitor expect 3026")
        check_probes(where, c, port)
        check_annotations(where, tmpl, port)
        if not listen.startswith("127.") and "MANA_LLM_ADMIN_TOKEN" not in env:
            fail(where, "listens beyond loopback without MANA_LLM_ADMIN_TOKEN (it would refuse to start)")
        refs = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef", {}) for e in c.get("env", [])}
        for key in ("REDIS_URL", "MANA_LLM_FLEET_KEY"):
            if refs.get(key, {}).get("name") != "mana-llm-secrets":
                fail(where, f"{key} does not come from the Secret mana-llm-secrets")
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
        db_dir = str(Path(env.get("MANA_LLM_DB", "")).parent)
        if mounts.get(db_dir) not in claims:
            fail(where, f"MANA_LLM_DB's directory {db_dir} is not on the PersistentVolumeClaim")
        alias_file = Path(env.get("MANA_LLM_ALIASES", ""))
        vols = {v["name"]: v for v in tmpl["spec"].get("volumes", [])}
        vol = vols.get(mounts.get(str(alias_file.parent)), {})
        cm = vol.get("configMap", {}).get("name")
        if cm != "mana-llm-aliases" or (aliases_cm and alias_file.name not in aliases_cm.get("data", {})):
            fail(where, f"MANA_LLM_ALIASES {alias_file} is not the mana-llm-aliases ConfigMap's file")
        if tmpl["spec"].get("securityContext", {}).get("fsGroup") is None:
            fail(where, "no fsGroup: the non-root user could not write the volume")
        if spec.get("serviceName") != "mana-llm-control-plane":
            fail(where, "serviceName is not the mana-llm-control-plane Service")
    # Redis: a password from a Secret, and reachable only from the workers and the control plane.
    redis_dep, redis_path = obj("Deployment", "redis")
    policy, policy_path = obj("NetworkPolicy", "redis")
    if redis_dep:
        rc = redis_dep["spec"]["template"]["spec"]["containers"][0]
        if "requirepass" not in " ".join(rc.get("command", []) + rc.get("args", [])):
            fail(rel(redis_path), "redis runs without requirepass")
        if not any(e.get("valueFrom", {}).get("secretKeyRef") for e in rc.get("env", [])):
            fail(rel(redis_path), "redis's password does not come from a Secret")
    if policy and redis_dep:
        where = rel(policy_path)
        spec = policy["spec"]
        redis_labels = redis_dep["spec"]["template"]["metadata"]["labels"]
        if not selects(spec["podSelector"].get("matchLabels", {}), redis_labels):
            fail(where, "does not select the Redis pods")
        if "Ingress" not in spec.get("policyTypes", []):
            fail(where, "does not restrict ingress")

        def admits(labels):
            for rule in spec.get("ingress", []):
                for peer in rule.get("from", []):
                    sel = peer.get("podSelector")
                    if sel is None or "namespaceSelector" in peer or "ipBlock" in peer:
                        continue
                    ok = selects(sel.get("matchLabels", {}), labels) and all(
                        (labels.get(e["key"]) in e.get("values", [])) == (e["operator"] == "In")
                        for e in sel.get("matchExpressions", []))
                    if ok:
                        return True
            return False

        for rule in spec.get("ingress", []):
            if not rule.get("from"):
                fail(where, "an ingress rule without `from` admits every pod")
        for pod in ("worker", "control-plane"):
            if pod in pods and not admits(pods[pod]["metadata"]["labels"]):
                fail(where, f"does not admit the {pod} pods")
        for labels in ({"app.kubernetes.io/name": "mana-llm", "app.kubernetes.io/component": "other"},
                       {"app.kubernetes.io/name": "other"}):
            if admits(labels):
                fail(where, f"admits pods labelled {labels}")
    # Services, HPA, PDB, ServiceMonitors.
    service_ports = {}
    for svc_name, pod in (("mana-llm-worker", "worker"), ("mana-llm-control-plane", "control-plane")):
        svc, svc_path = obj("Service", svc_name)
        if not svc or pod not in pods:
            continue
        tmpl = pods[pod]
        if not selects(svc["spec"]["selector"], tmpl["metadata"]["labels"]):
            fail(rel(svc_path), "selector matches no pod of its workload")
        cports = {p.get("name"): p["containerPort"] for p in tmpl["spec"]["containers"][0].get("ports", [])}
        for p in svc["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            if tp not in cports and tp not in cports.values():
                fail(rel(svc_path), f"targetPort {tp} is not a container port")
        service_ports[svc_name] = (svc["metadata"]["labels"], {p.get("name") for p in svc["spec"]["ports"]})
    hpa, hpa_path = obj("HorizontalPodAutoscaler", "mana-llm-worker")
    if hpa:
        ref = hpa["spec"]["scaleTargetRef"]
        if (ref.get("kind"), ref.get("name")) != ("Deployment", "mana-llm-worker"):
            fail(rel(hpa_path), "does not scale the worker Deployment")
    pdb, pdb_path = obj("PodDisruptionBudget", "mana-llm-worker")
    if pdb and "worker" in pods and not selects(pdb["spec"]["selector"]["matchLabels"], pods["worker"]["metadata"]["labels"]):
        fail(rel(pdb_path), "selector matches no worker pod")
    monitors = [(d, p) for (k, _), (d, p) in objects.items() if k == "ServiceMonitor"]
    if len(monitors) < 2:
        fail("deploy/k8s", "expected ServiceMonitors for the workers and the control plane")
    for mon, mon_path in monitors:
        sel = mon["spec"]["selector"]["matchLabels"]
        hits = [(labels, ports) for labels, ports in service_ports.values() if selects(sel, labels)]
        if len(hits) != 1:
            fail(rel(mon_path), f"{mon['metadata']['name']} selects {len(hits)} Services, expected 1")
            continue
        for ep in mon["spec"]["endpoints"]:
            if ep.get("port") not in hits[0][1] or ep.get("path", "/metrics") != "/metrics":
                fail(rel(mon_path), f"{mon['metadata']['name']} scrapes port {ep.get('port')} {ep.get('path')}")


# ---------------------------------------------------------------- Dockerfile
def check_dockerfile():
    path = DEPLOY / "Dockerfile"
    where = rel(path)
    text = path.read_text(encoding="utf-8")
    # Join continuation lines.
    lines = re.sub(r"\\\n", " ", text).splitlines()
    ignored = set()
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ignored.add(line)
    stages = []
    users = []
    for line in lines:
        s = line.strip()
        if s.upper().startswith("FROM "):
            stages.append(s)
        if s.upper().startswith("USER "):
            users.append(s.split()[1])
        if s.upper().startswith("COPY ") and "--from=" not in s:
            parts = [p for p in s.split()[1:] if not p.startswith("--")]
            for src in parts[:-1]:
                if not (ROOT / src).exists():
                    fail(where, f"COPY source {src} does not exist in the repository")
                top = src.strip("./").split("/")[0]
                if top in ignored:
                    fail(where, f"COPY source {src} is excluded by .dockerignore")
        if s.upper().startswith("ENV "):
            for name in re.findall(r"([A-Z][A-Z0-9_]*)=", s):
                check_env(where, name)
    build = " ".join(l for l in lines if "cargo build" in l)
    for pkg in re.findall(r"-p\s+([a-z0-9-]+)", build):
        manifests = [ROOT / "Cargo.toml"] + list(ROOT.glob("*/Cargo.toml")) + list(ROOT.glob("tests/*/Cargo.toml"))
        names = {m.group(1) for f in manifests for m in [re.search(r'^name\s*=\s*"([^"]+)"', f.read_text(), re.M)] if m}
        if pkg not in names:
            fail(where, f"builds package {pkg}, which is not in the workspace")
    if not stages or not stages[-1].lower().endswith(" as mana-llm"):
        fail(where, "the last stage (the default target) must be the mana-llm runtime")
    if not users or users[-1] in ("root", "0", "0:0"):
        fail(where, "the runtime user is root")
    hc = next((m for l in lines for m in [re.match(r"^HEALTHCHECK\s.*\bCMD\s+(\[.*\])\s*$", l.strip())] if m), None)
    if not hc or "/health" not in hc.group(1):
        fail(where, "no exec-form HEALTHCHECK on /health")
    if not re.search(r'^ENTRYPOINT \["/usr/local/bin/mana-llm"\]', text, re.M):
        fail(where, "the entrypoint is not the mana-llm binary (exec form)")
    toolchain = re.search(r'channel\s*=\s*"([^"]+)"', (ROOT / "rust-toolchain.toml").read_text())
    if toolchain and f"RUST_VERSION={toolchain.group(1)}" not in text:
        fail(where, f"RUST_VERSION does not match rust-toolchain.toml ({toolchain.group(1)})")


# ---------------------------------------------------------------- nginx
def check_nginx():
    proxy = DEPLOY / "nginx/proxy.conf"
    template = DEPLOY / "nginx/e2e.conf.template"
    directives = [l.strip() for l in proxy.read_text().splitlines() if l.strip() and not l.strip().startswith("#")]
    tpl = template.read_text()
    m = re.search(r"# --- begin proxy.conf \(verbatim\) ---\n(.*?)\n\s*# --- end proxy.conf ---", tpl, re.S)
    copied = [l.strip() for l in m.group(1).splitlines() if l.strip()] if m else []
    if copied != directives:
        fail(rel(template), "the proxy block differs from nginx/proxy.conf (copy it again, verbatim)")
    for d in ("proxy_buffering off;", "proxy_http_version 1.1;", 'proxy_set_header Connection "";'):
        if d not in directives:
            fail(rel(proxy), f"missing `{d}` (SSE and upstream keepalive need it)")
    nxt = [d for d in directives if d.startswith("proxy_next_upstream ")]
    if nxt != ["proxy_next_upstream error timeout;"]:
        fail(rel(proxy), f"proxy_next_upstream must be exactly `error timeout` (no non_idempotent, no http_*): {nxt}")
    read = [d for d in directives if d.startswith("proxy_read_timeout ")]
    if not read or (seconds(read[0].split()[1].rstrip(";")) or 0) < 300:
        fail(rel(proxy), "proxy_read_timeout must cover MANA_LLM_REQUEST_TIMEOUT (300 s)")
    for path in (DEPLOY / "nginx/nginx.conf", template):
        text = path.read_text()
        if not re.search(r"upstream mana_llm_workers \{[^}]*\bkeepalive \d+;", text):
            fail(rel(path), "the upstream has no keepalive pool")
    for ph in ("__LISTEN__", "__WORKER1__", "__WORKER2__", "__WORKER3__", "__TMPDIR__"):
        if ph not in tpl:
            fail(rel(template), f"placeholder {ph} is missing")


# ---------------------------------------------------------------- systemd
def check_systemd():
    sd = DEPLOY / "systemd"
    for unit, sub in (("mana-llm-control-plane.service", "control-plane"), ("mana-llm-worker@.service", "worker")):
        text = (sd / unit).read_text()
        m = re.search(r"^ExecStart=/usr/local/bin/mana-llm (\S+)", text, re.M)
        if not m or m.group(1) != sub:
            fail(f"deploy/systemd/{unit}", f"ExecStart does not run `mana-llm {sub}`")
        for name in re.findall(r"^Environment=([A-Z_]+)=", text, re.M):
            check_env(f"deploy/systemd/{unit}", name)
    worker = (sd / "mana-llm-worker@.service").read_text()
    stop = re.search(r"^TimeoutStopSec=(\d+)", worker, re.M)
    if not stop or int(stop.group(1)) <= DRAIN_DEFAULT:
        fail("deploy/systemd/mana-llm-worker@.service", "TimeoutStopSec must exceed the 30 s drain")
    for envfile in ("control-plane.env.example", "worker.env.example"):
        for n, key in env_file_names(sd / envfile):
            check_env(f"deploy/systemd/{envfile}:{n}", key)


def main():
    checks = [check_lists, check_yaml_parses, check_grafana, check_prometheus, check_compose,
              check_k8s, check_dockerfile, check_nginx, check_systemd]
    for check in checks:
        before = len(FAILURES)
        try:
            check()
        except Exception as e:  # a malformed file must fail the check, not crash it silently
            fail(check.__name__, f"crashed: {type(e).__name__}: {e}")
        status = "ok" if len(FAILURES) == before else f"{len(FAILURES) - before} failure(s)"
        print(f"  {check.__name__}: {status}")
    for f in FAILURES:
        print(f"FAIL {f}", file=sys.stderr)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
