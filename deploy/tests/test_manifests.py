#!/usr/bin/env python3
"""Reads the Kubernetes manifests, the alert rules and the dashboard under deploy/ and checks
the properties a working deployment of the pair depends on, which schema validation cannot
see: a rollout that cannot deadlock on the standby, probes on the admin port, a disruption
budget, a locked-down security context, resources, secrets kept out of the ConfigMap, and
queries that name only metrics and labels the bridge really exports (read from src/).

    python3 deploy/tests/test_manifests.py [--kubernetes DIR] [--alerts FILE]
                                           [--dashboard FILE] [--src DIR]

Prints one line per check and `N passed, N failed`; exits 1 when any check fails. Each
option points a check at another copy, e.g. a deliberately broken one.
"""

import argparse
import base64
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

ADMIN_PORT = 9600
SOCKETIO_PORT = 3000
BRIDGE_IMAGE = "converja-bridge"
# The secrets of bridge.toml: each must come from its `_file` twin, a mounted Secret.
INLINE_SECRETS = {
    "xmpp": ["password"],
    "store": ["url"],
    "admin": ["token"],
    "auth": ["hmac_secret", "jwt_secret"],
}
REQUIRED_SECRET_FILES = [("xmpp", "password_file"), ("store", "url_file"), ("admin", "token_file")]
# Conditions the alert rules must cover (README, "Alerts and dashboard").
REQUIRED_ALERTS = {
    "ConverjaXmppLinkDown",
    "ConverjaActiveBridgeNotReady",
    "ConverjaBridgeDown",
    "ConverjaStoreWritesFailing",
    "ConverjaPendingRequestsNearFull",
    "ConverjaRequestTimeoutsRising",
    "ConverjaSocketsDropped",
    "ConverjaStandbyWithoutActive",
}
# What the dashboard must show.
REQUIRED_PANEL_METRICS = {
    "converja_sockets",
    "converja_sessions",
    "converja_pending_requests",
    "converja_request_duration_seconds",
    "converja_bridge_latency_seconds",
    "converja_sockets_refused_total",
    "converja_xmpp_link_up",
    "converja_role",
}
# Labels every scraped series has, besides those the bridge sets.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "service", "node"}
# Series Prometheus itself writes for every target.
PROMETHEUS_SERIES = {"up": set()}


class Failure(Exception):
    pass


def need(condition, message):
    if not condition:
        raise Failure(message)


# --- Kubernetes -------------------------------------------------------------------------


def load_manifests(directory):
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    listed = kustomization.get("resources") or []
    present = sorted(
        p.name
        for p in directory.iterdir()
        if p.suffix in (".yaml", ".yml") and p.name != "kustomization.yaml"
    )
    need(
        sorted(listed) == present,
        f"kustomization.yaml resources {sorted(listed)} differ from the files {present}: "
        "a manifest would be left out of `kubectl apply -k`",
    )
    docs = []
    for name in listed:
        for doc in yaml.safe_load_all((directory / name).read_text()):
            if doc:
                doc["__file"] = name
                docs.append(doc)
    return docs


def of_kind(docs, *kinds):
    return [d for d in docs if d.get("kind") in kinds]


def workloads(docs):
    return of_kind(docs, "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def pod_spec(workload):
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def pod_labels(workload):
    return workload["spec"]["template"]["metadata"].get("labels") or {}


def containers(workload):
    spec = pod_spec(workload)
    return (spec.get("initContainers") or []) + spec["containers"]


def image_name(image):
    return image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]


def the_bridge(docs):
    found = [
        w
        for w in workloads(docs)
        if any(image_name(c.get("image", "")) == BRIDGE_IMAGE for c in pod_spec(w)["containers"])
    ]
    need(len(found) == 1, f"expected one workload running the {BRIDGE_IMAGE} image, found {len(found)}")
    workload = found[0]
    container = next(c for c in pod_spec(workload)["containers"] if image_name(c["image"]) == BRIDGE_IMAGE)
    return workload, container


def selects(selector, labels):
    match = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
    need(not selector.get("matchExpressions"), "matchExpressions are not checked here; use matchLabels")
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def scaled(value, replicas, round_up):
    """An intOrString of a rolling update, as the Deployment controller resolves it."""
    if isinstance(value, int):
        return value
    need(isinstance(value, str) and value.endswith("%"), f"cannot read {value!r} as a number or a percentage")
    exact = int(value[:-1]) * replicas / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def check_rollout(docs):
    """The new pods start as standbys and are never Ready while an old pod holds the lease,
    so no rollout may wait for a new pod to be Ready before stopping the old active one."""
    workload, _ = the_bridge(docs)
    replicas = workload["spec"].get("replicas", 1)
    need(replicas == 2, f"{workload['kind']}/{workload['metadata']['name']}: replicas is {replicas}, the pair is 2")
    if workload["kind"] == "StatefulSet":
        strategy = (workload["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate")
        need(
            strategy == "OnDelete",
            f"StatefulSet rollout {strategy} waits for each new pod to be Ready: the standby never is (deadlock)",
        )
        return "StatefulSet, OnDelete"
    need(workload["kind"] == "Deployment", f"the bridge as a {workload['kind']} is not checked here")
    strategy = workload["spec"].get("strategy") or {}
    kind = strategy.get("type", "RollingUpdate")
    if kind == "Recreate":
        return "Recreate"
    rolling = strategy.get("rollingUpdate") or {}
    surge = scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    # The controller keeps replicas - maxUnavailable pods Ready; only the active one can be.
    need(
        unavailable >= replicas,
        f"RollingUpdate with maxSurge {surge}, maxUnavailable {unavailable} stops no more old "
        f"pods than leaves {replicas - unavailable} Ready, and a new pod stays standby (never "
        "Ready) while the old active one runs: the rollout deadlocks. "
        "Use strategy Recreate, or maxUnavailable of at least the replicas (100%)",
    )
    return f"RollingUpdate, maxUnavailable {unavailable} of {replicas}"


def port_number(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    raise Failure(f"container {container['name']}: no port named {port!r}")


def check_probes(docs):
    _, bridge = the_bridge(docs)
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        spec = bridge.get(probe)
        need(spec, f"bridge container has no {probe}")
        get = spec.get("httpGet")
        need(get, f"bridge {probe} is not an httpGet probe")
        need(get.get("path") == path, f"bridge {probe} asks {get.get('path')!r}, expected {path}")
        port = port_number(bridge, get.get("port"))
        need(port == ADMIN_PORT, f"bridge {probe} is on port {port}, the admin listener is {ADMIN_PORT}")
    env = {e["name"]: e.get("value") for e in bridge.get("env") or []}
    listen = env.get("CONVERJA_BRIDGE__ADMIN__LISTEN")
    need(
        listen in (f"0.0.0.0:{ADMIN_PORT}", f"[::]:{ADMIN_PORT}"),
        f"CONVERJA_BRIDGE__ADMIN__LISTEN is {listen!r}: the admin listener defaults to loopback, "
        f"which the kubelet's probes cannot reach; set 0.0.0.0:{ADMIN_PORT}",
    )
    ports = {p["containerPort"] for p in bridge.get("ports") or []}
    need({SOCKETIO_PORT, ADMIN_PORT} <= ports, f"bridge container ports {sorted(ports)} lack {SOCKETIO_PORT} or {ADMIN_PORT}")
    return "readiness /readyz and liveness /healthz on 9600"


def check_service(docs):
    workload, bridge = the_bridge(docs)
    labels = pod_labels(workload)
    services = [s for s in of_kind(docs, "Service") if selects(s["spec"].get("selector") or {}, labels)]
    need(services, "no Service selects the bridge pods")
    for service in services:
        need(
            not service["spec"].get("publishNotReadyAddresses"),
            f"Service {service['metadata']['name']} publishes pods that are not Ready: agents would reach the standby",
        )
    targets = {
        port_number(bridge, p.get("targetPort", p["port"]))
        for s in services
        for p in s["spec"]["ports"]
        if p["port"] == SOCKETIO_PORT
    }
    need(targets == {SOCKETIO_PORT}, f"no Service port {SOCKETIO_PORT} reaching the bridge's socket.io port ({targets})")
    return ", ".join(s["metadata"]["name"] for s in services)


def check_pdb(docs):
    workload, _ = the_bridge(docs)
    labels = pod_labels(workload)
    budgets = [p for p in of_kind(docs, "PodDisruptionBudget") if selects(p["spec"].get("selector") or {}, labels)]
    need(budgets, "no PodDisruptionBudget selects the bridge pods")
    for budget in budgets:
        spec = budget["spec"]
        need(
            ("minAvailable" in spec) != ("maxUnavailable" in spec),
            f"PodDisruptionBudget {budget['metadata']['name']} needs exactly one of minAvailable, maxUnavailable",
        )
    return ", ".join(b["metadata"]["name"] for b in budgets)


def check_security(docs):
    checked = []
    for workload in workloads(docs):
        spec = pod_spec(workload)
        pod = spec.get("securityContext") or {}
        for c in containers(workload):
            where = f"{workload['kind']}/{workload['metadata']['name']} container {c['name']}"
            own = c.get("securityContext") or {}

            def setting(key):
                return own[key] if key in own else pod.get(key)

            need(setting("runAsNonRoot") is True, f"{where}: runAsNonRoot is not true")
            need(setting("runAsUser") != 0, f"{where}: runs as user 0")
            need(own.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem is not true")
            need(own.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation is not false")
            need(not own.get("privileged"), f"{where}: privileged")
            drop = (own.get("capabilities") or {}).get("drop") or []
            need("ALL" in drop, f"{where}: capabilities do not drop ALL")
            need(not (own.get("capabilities") or {}).get("add"), f"{where}: adds capabilities")
            seccomp = (setting("seccompProfile") or {}).get("type")
            need(seccomp == "RuntimeDefault", f"{where}: seccompProfile is {seccomp!r}, not RuntimeDefault")
            checked.append(c["name"])
        need(not spec.get("hostNetwork") and not spec.get("hostPID"), f"{workload['metadata']['name']}: shares the host's namespaces")
    return ", ".join(checked)


def check_resources(docs):
    for workload in workloads(docs):
        for c in containers(workload):
            where = f"{workload['kind']}/{workload['metadata']['name']} container {c['name']}"
            resources = c.get("resources") or {}
            requests = resources.get("requests") or {}
            limits = resources.get("limits") or {}
            need({"cpu", "memory"} <= set(requests), f"{where}: resource requests lack cpu or memory ({requests})")
            need("memory" in limits, f"{where}: no memory limit")
            for key in requests.keys() & limits.keys():
                need(
                    quantity(requests[key]) <= quantity(limits[key]),
                    f"{where}: {key} request {requests[key]} above its limit {limits[key]}",
                )
    return "requests and memory limits on every container"


def quantity(text):
    units = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    need(match and match.group(2) in units, f"cannot read the quantity {text!r}")
    return float(match.group(1)) * units[match.group(2)]


def bridge_config(docs):
    workload, bridge = the_bridge(docs)
    args = bridge.get("args") or []
    need("--config" in args, "the bridge container is not given --config")
    path = args[args.index("--config") + 1]
    volumes = {v["name"]: v for v in pod_spec(workload).get("volumes") or []}
    for mount in bridge.get("volumeMounts") or []:
        if path.startswith(mount["mountPath"].rstrip("/") + "/"):
            volume = volumes[mount["name"]]
            need("configMap" in volume, f"{path} is not mounted from a ConfigMap")
            name = volume["configMap"]["name"]
            key = path[len(mount["mountPath"].rstrip("/")) + 1 :]
            for item in volume["configMap"].get("items") or []:
                if item["path"] == key:
                    key = item["key"]
            maps = [m for m in of_kind(docs, "ConfigMap") if m["metadata"]["name"] == name]
            need(maps, f"no ConfigMap {name}")
            need(key in (maps[0].get("data") or {}), f"ConfigMap {name} has no key {key}")
            return maps[0], maps[0]["data"][key], mount
    raise Failure(f"{path} (--config) is not on a mounted volume")


def secret_files(docs):
    """Each file the bridge container sees from a Secret volume, with its value."""
    workload, bridge = the_bridge(docs)
    volumes = {v["name"]: v for v in pod_spec(workload).get("volumes") or []}
    secrets = {s["metadata"]["name"]: s for s in of_kind(docs, "Secret")}
    files = {}
    for mount in bridge.get("volumeMounts") or []:
        volume = volumes.get(mount["name"]) or {}
        if "secret" not in volume:
            continue
        name = volume["secret"]["secretName"]
        need(name in secrets, f"Secret {name} is mounted but not shipped")
        values = dict(secrets[name].get("stringData") or {})
        for key, encoded in (secrets[name].get("data") or {}).items():
            values[key] = base64.b64decode(encoded).decode()
        items = volume["secret"].get("items")
        paths = {i["path"]: i["key"] for i in items} if items else {k: k for k in values}
        for path, key in paths.items():
            files[f"{mount['mountPath'].rstrip('/')}/{path}"] = values.get(key)
    return files


def check_secrets(docs):
    config_map, text, _ = bridge_config(docs)
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise Failure(f"bridge.toml in ConfigMap {config_map['metadata']['name']} is not TOML: {e}")
    for section, keys in INLINE_SECRETS.items():
        for key in keys:
            need(
                key not in (config.get(section) or {}),
                f"bridge.toml holds the secret {section}.{key} inline: use {section}.{key}_file and the Secret",
            )
    files = secret_files(docs)
    for section, key in REQUIRED_SECRET_FILES:
        path = (config.get(section) or {}).get(key)
        need(path, f"bridge.toml has no {section}.{key}")
        need(path in files, f"{section}.{key} = {path!r} is not a file of a mounted Secret ({sorted(files)})")
        need(files[path], f"the Secret's file {path} is empty")
    for section, values in config.items():
        for key, value in (values or {}).items() if isinstance(values, dict) else []:
            if key.endswith("_file") and any(s in key for s in ("password", "secret", "token", "url")):
                need(value in files, f"{section}.{key} = {value!r} is not a file of a mounted Secret")
    need(
        not re.search(r"://[^/\s:@]+:[^/\s@]+@", text),
        "bridge.toml holds a URL with a password: put it in the Secret (store.url_file)",
    )
    for workload in workloads(docs):
        for c in containers(workload):
            for e in c.get("env") or []:
                secretish = re.search(r"PASSWORD|TOKEN|SECRET|(^|_)URL$", e["name"]) and not e["name"].endswith("_FILE")
                need(
                    not (secretish and "value" in e),
                    f"{workload['metadata']['name']}/{c['name']}: {e['name']} is set inline; read it from a Secret",
                )
    return f"{len(files)} secret files; no secret inline"


def check_config_loads(docs):
    """The bridge itself reads the ConfigMap's bridge.toml."""
    binary = os.environ.get("CONVERJA_BRIDGE_BIN")
    if not binary:
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        built = [target / p / "converja-bridge" for p in ("debug", "release")]
        built = [b for b in built if b.exists()]
        binary = str(max(built, key=lambda b: b.stat().st_mtime)) if built else None
    need(
        binary,
        "no converja-bridge binary to read bridge.toml with: run `cargo build --bin converja-bridge` first, or set CONVERJA_BRIDGE_BIN",
    )
    _, text, _ = bridge_config(docs)
    files = secret_files(docs)
    with tempfile.TemporaryDirectory() as tmp:
        for n, (path, value) in enumerate(sorted(files.items())):
            local = Path(tmp) / f"secret-{n}"
            local.write_text(value or "")
            text = text.replace(f'"{path}"', f'"{local}"')
        config = Path(tmp) / "bridge.toml"
        config.write_text(text)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERJA_BRIDGE__")}
        env["CONVERJA_BRIDGE__ADMIN__LISTEN"] = f"0.0.0.0:{ADMIN_PORT}"
        run = subprocess.run([binary, "check-config", "--config", str(config)], capture_output=True, text=True, env=env)
        need(run.returncode == 0, f"{binary} check-config refused bridge.toml: {run.stderr.strip() or run.stdout.strip()}")
    return f"accepted by {binary} check-config"


# --- Metrics ----------------------------------------------------------------------------


def exported_metrics(src):
    """Metric name -> label names, from the metrics macros in src/; histograms marked."""
    consts = {}
    for path in src.rglob("*.rs"):
        for name, value in re.findall(r'const\s+([A-Z_]+)\s*:\s*&str\s*=\s*"(converja_[a-z0-9_]+)"', path.read_text()):
            consts[name] = value
    metrics = {}
    histograms = set()
    literals = set()
    for path in src.rglob("*.rs"):
        text = path.read_text()
        literals.update(re.findall(r'"([^"\\]*)"', text))
        for match in re.finditer(r"\b(counter|gauge|histogram)!\(", text):
            body = balanced(text, match.end())
            first = body.split(",", 1)[0].strip()
            name = first.strip('"') if first.startswith('"') else consts.get(first.split("::")[-1])
            if not name or not name.startswith("converja_"):
                continue
            metrics.setdefault(name, set()).update(re.findall(r'"([a-z_]+)"\s*=>', body))
            if match.group(1) == "histogram":
                histograms.add(name)
        for name in re.findall(r"describe_histogram!\(\s*([A-Z_]+)", text):
            if name in consts:
                histograms.add(consts[name])
    need(len(metrics) >= 20, f"read only {len(metrics)} metrics from {src}: is it the bridge's src/?")
    return metrics, histograms, literals


def balanced(text, start):
    depth = 1
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    return text[start:]


PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "count_values", "group", "inf", "nan", "le",
}


def check_query(expr, exported):
    """Every metric named in `expr` is exported, with the labels and label values matched."""
    metrics, histograms, literals = exported
    known = dict(PROMETHEUS_SERIES)
    for name, labels in metrics.items():
        known[name] = labels
        if name in histograms:
            for suffix in ("_bucket", "_sum", "_count"):
                known[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    # Strings and durations out of the way; label matchers read separately.
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    used = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", bare):
        word, after = match.group(1), match.group(2)
        if after == "(" or word in PROMQL_WORDS:
            continue
        need(word in known, f"{word!r} is not a metric the bridge exports (in: {expr.strip()})")
        used.add(word)
    need(used, f"the query names no metric: {expr.strip()}")
    for match in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", expr):
        name, matchers = match.group(1), match.group(2)
        if name not in known:
            continue
        for label, op, value in re.findall(r'([a-zA-Z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers):
            need(
                label in known[name] or label in TARGET_LABELS,
                f"{name} has no label {label!r} (it has {sorted(known[name])})",
            )
            if label in known[name] and op == "=" and "$" not in value:
                need(value in literals, f'{name}{{{label}="{value}"}}: the bridge never sets {label} to "{value}"')
    labels_in_query = set().union(*(known[m] for m in used)) | TARGET_LABELS
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        for label in filter(None, (g.strip() for g in group.split(","))):
            need(label in labels_in_query, f"groups by {label!r}, a label none of {sorted(used)} has")
    return used


def check_alerts(path, exported):
    rules_file = yaml.safe_load(path.read_text())
    need(isinstance(rules_file, dict) and rules_file.get("groups"), f"{path}: no rule groups")
    names = []
    for group in rules_file["groups"]:
        need(group.get("name") and group.get("rules"), f"{path}: a group without a name or rules")
        for rule in group["rules"]:
            need("alert" in rule, f"{path}: group {group['name']} has a recording rule; only alerts are checked")
            where = f"alert {rule['alert']}"
            need(rule.get("expr"), f"{where}: no expr")
            need((rule.get("labels") or {}).get("severity") in ("critical", "warning", "info"), f"{where}: no severity")
            need((rule.get("annotations") or {}).get("summary"), f"{where}: no summary")
            if "for" in rule:
                need(re.fullmatch(r"(\d+[smhd])+", str(rule["for"])), f"{where}: for is {rule['for']!r}")
            try:
                check_query(rule["expr"], exported)
            except Failure as e:
                raise Failure(f"{where}: {e}")
            names.append(rule["alert"])
    need(len(names) == len(set(names)), f"{path}: alert names repeat")
    missing = REQUIRED_ALERTS - set(names)
    need(not missing, f"{path}: no alert for {sorted(missing)}")
    return f"{len(names)} alerts"


def check_dashboard(path, exported):
    try:
        dashboard = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise Failure(f"{path} is not JSON: {e}")
    panels = []
    stack = list(dashboard.get("panels") or [])
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels") or [])
        if panel.get("type") != "row":
            panels.append(panel)
    need(panels, f"{path}: no panels")
    ids = [p.get("id") for p in dashboard.get("panels") or []]
    need(len(ids) == len(set(ids)), f"{path}: panel ids repeat")
    shown = set()
    for panel in panels:
        targets = panel.get("targets") or []
        need(targets, f"panel {panel.get('title')!r} has no query")
        for target in targets:
            try:
                shown |= check_query(target.get("expr", ""), exported)
            except Failure as e:
                raise Failure(f"panel {panel.get('title')!r}: {e}")
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        for metric in re.findall(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", query or ""):
            need(metric in exported[0], f"variable {variable['name']}: {metric!r} is not exported")
    shown_bases = {re.sub(r"_(bucket|sum|count)$", "", m) if m not in exported[0] else m for m in shown}
    missing = REQUIRED_PANEL_METRICS - shown_bases
    need(not missing, f"{path}: no panel shows {sorted(missing)}")
    return f"{len(panels)} panels"


# --- Runner -----------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubernetes", type=Path, default=ROOT / "deploy/kubernetes")
    parser.add_argument("--alerts", type=Path, default=ROOT / "deploy/prometheus/alerts.yml")
    parser.add_argument("--dashboard", type=Path, default=ROOT / "deploy/grafana/converja-bridge.json")
    parser.add_argument("--src", type=Path, default=ROOT / "src")
    args = parser.parse_args()

    passed, failed = 0, 0

    def check(name, function, *inputs):
        nonlocal passed, failed
        try:
            detail = function(*inputs)
            print(f"ok    {name}: {detail}")
            passed += 1
        except Failure as e:
            print(f"FAIL  {name}: {e}")
            failed += 1
        except Exception as e:  # a manifest shaped unlike any expected is a failure too
            print(f"FAIL  {name}: {type(e).__name__}: {e}")
            failed += 1

    try:
        docs = load_manifests(args.kubernetes)
    except (Failure, OSError, yaml.YAMLError) as e:
        print(f"FAIL  manifests: {e}")
        docs = None
        failed += 1
    if docs is not None:
        check("rollout cannot deadlock on the standby", check_rollout, docs)
        check("probes on the admin port", check_probes, docs)
        check("Service reaches Ready pods on 3000", check_service, docs)
        check("PodDisruptionBudget for the bridge", check_pdb, docs)
        check("non-root, read-only, no privileges", check_security, docs)
        check("resources", check_resources, docs)
        check("secrets only in the Secret", check_secrets, docs)
        check("bridge.toml loads", check_config_loads, docs)
    try:
        exported = exported_metrics(args.src)
    except (Failure, OSError) as e:
        print(f"FAIL  metrics of {args.src}: {e}")
        exported = None
        failed += 1
    if exported is not None:
        check("alert rules name exported metrics", check_alerts, args.alerts, exported)
        check("dashboard names exported metrics", check_dashboard, args.dashboard, exported)

    print(f"{passed} passed, {failed} failed")
    if failed:
        print("error: the deployment files under deploy/ break a property above", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
