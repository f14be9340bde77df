#!/usr/bin/env python3
"""Consistency checks of the deployment files that no schema can make.

Run by scripts/test-deploy.sh after the charts are rendered:
    check_deploy.py --repo . --rendered DIR [--compose-config FILE]

Each check group prints "ok" or the problems it found; the exit code is the number of failed
groups (0 when everything holds). Groups:
  env         every variable the k8s manifests and docker-compose.yml give a service is one that
              service reads (the env_vars! lists of crates/<svc>/src/config.rs and of the shared
              readers it calls, common's mongo.rs and job_events.rs, plus telemetry.rs), and
              every variable it requires is given; the nginx template's variables likewise;
              Jenkins' generated Secrets carry the same keys as k8s/*/secret.yaml
  k8s         Deployments and Services as the deployment contract wants them (rolling update
              0/1, ecr-secret, probes on the health endpoints, resources, non-root, read-only
              root, ports, selectors, NodePorts 30001/30002, grace periods)
  charts      rendered charts: ClusterIP by default, opt-in NodePorts, PVCs, init SQL, RabbitMQ
              definitions (durable video and video.dlq without arguments), supported MongoDB
  wiring      host names, ports, users and databases in the services' settings match the charts
  placeholders no real credential in the repository: every secret value is a change-me or replace-me
              placeholder, JWT_SECRET the one the services refuse, compose requires JWT_SECRET
  dockerfiles non-root numeric USER, HEALTHCHECK, EXPOSE = containerPort, crate exists, FFmpeg libs
  jenkins     the seed's stages in order, make test before the image build, paths that exist,
              the registry checked against the ECR pattern, fixed credential ids
  takeover    the charts rendered with values-original.yaml keep every immutable field of the
              original deployment's objects (fixtures/original-immutable.yaml), its names and users
  network     the NetworkPolicies, evaluated over every pod's labels, allow exactly the flows the
              system needs (EXPECTED_FLOWS) and DNS
  migration   the MongoDB 4.0 -> chart copy Job: images, scripts that parse, both databases, the
              comparison that fails it
  autoscaling Helm_charts/Autoscaling: one autoscaler per Deployment (KEDA or HPA for the
              converter, HPAs for gateway and auth), targets that exist without spec.replicas,
              CPU requests for CPU targets, the watched queue and AMQP variable exist, minimums
              above the PodDisruptionBudgets; the converter's CPU limit from the downward API
  monitoring  Helm_charts/Monitoring: the kubernetes-pods scrape job's relabeling, run on each
              scraped pod, gives job=<app>, a container port and the metrics path; the
              ServiceMonitors select Services with those ports; the PrometheusRule and the
              dashboard ConfigMap hold files/rules.yml and files/dashboard.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

RUST_SERVICES = ("auth", "gateway", "converter")
SERVICES = RUST_SERVICES + ("frontend",)
# Ports each service listens on (containerPort) and its Service's contract.
CONTAINER_PORTS = {"auth": 5000, "gateway": 8080, "converter": 9090, "frontend": 8080}
# The gateway's admin listener (GATEWAY_ADMIN_ADDR): /metrics and /readyz, never on the NodePort.
GATEWAY_ADMIN_PORT = 9102
SERVICE_CONTRACT = {
    "frontend": ("NodePort", 30001),
    "gateway": ("NodePort", 30002),
    "auth": ("ClusterIP", 5000),
    "converter": ("ClusterIP", 9090),
}
# Variables read outside config.rs by design: common::telemetry (RUST_LOG through
# tracing_subscriber's EnvFilter::try_from_default_env, LOG_FORMAT explicitly).
TELEMETRY_VARS = {"RUST_LOG", "LOG_FORMAT"}
MONGO_VARS = {"MONGODB_VIDEOS_URI", "MONGODB_MP3S_URI", "MONGODB_URI"}
FFMPEG_RUNTIME_LIBS = (
    "libavcodec59",
    "libavformat59",
    "libavutil57",
    "libswresample4",
    "libavfilter8",
    "libavdevice59",
    "libswscale6",
)
PLACEHOLDER = "change-me"
# The JWT_SECRET placeholder of the committed Secrets: the services refuse it (it contains replace-me).
JWT_PLACEHOLDER = "REPLACE-ME-generate-with-openssl-rand-hex-32"
# Folders of k8s/ that Jenkins does not apply (run by hand, see their comments).
MANUAL_K8S = ("migration", "ingress")
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "original-immutable.yaml"


# Secrets whose absence only switches a feature off: compose may default them to empty.
OPTIONAL_SECRETS = {"WEBHOOK_SECRET"}


def is_placeholder(value: str) -> bool:
    """A value the repository may hold: a change-me or replace-me placeholder."""
    low = value.lower()
    return "change-me" in low or "replace-me" in low


class Group:
    """A named check group collecting problems."""

    def __init__(self, name: str):
        self.name = name
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.checks = 0

    def check(self, condition: bool, message: str) -> bool:
        self.checks += 1
        if not condition:
            self.problems.append(message)
        return condition


def load_docs(path: Path) -> list[dict]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if isinstance(d, dict)]


def strip_rust_tests(source: str) -> str:
    """The part of a Rust file before its `#[cfg(test)]` module."""
    cut = source.find("#[cfg(test)]")
    return source if cut < 0 else source[:cut]


def declared_env_vars(path: Path) -> set[str]:
    """The variables a Rust file declares with `env_vars![...]` (what `--print-config-keys`
    prints is made of these lists)."""
    source = strip_rust_tests(path.read_text())
    blocks = re.findall(r"env_vars!\[([^\]]*)\]", source)
    return {name for block in blocks for name in re.findall(r"\b[A-Z][A-Z0-9_]*\b", block)}


def rust_env_vars(repo: Path, service: str) -> tuple[set[str], set[str], bool]:
    """(variables read, variables required, uses MongoLocations) of a service's config.rs."""
    common = repo / "crates/common/src"
    source = strip_rust_tests((repo / "crates" / service / "src" / "config.rs").read_text())
    names = declared_env_vars(repo / "crates" / service / "src" / "config.rs")
    required = set(re.findall(r'required\(\s*[a-z_&]+\s*,\s*var::([A-Z][A-Z0-9_]*)', source))
    uses_mongo = "MongoLocations" in source
    if uses_mongo:
        names |= declared_env_vars(common / "mongo.rs")
    if "JobEventsConfig" in source:
        names |= declared_env_vars(common / "job_events.rs")
    telemetry = (common / "telemetry.rs").read_text()
    names |= {v for v in TELEMETRY_VARS if v == "RUST_LOG" or f'"{v}"' in telemetry}
    return names, required, uses_mongo


def k8s_objects(repo: Path) -> dict[str, list[tuple[Path, dict]]]:
    """Every object under k8s/, by service folder."""
    out: dict[str, list[tuple[Path, dict]]] = {}
    for path in sorted((repo / "k8s").rglob("*.yaml")):
        service = path.relative_to(repo / "k8s").parts[0]
        for doc in load_docs(path):
            out.setdefault(service, []).append((path, doc))
    return out


def find(objs: list[tuple[Path, dict]], kind: str, name: str | None = None) -> dict | None:
    for _, doc in objs:
        if doc.get("kind") == kind and (name is None or doc["metadata"]["name"] == name):
            return doc
    return None


def all_of(objs: list[tuple[Path, dict]], kind: str) -> list[dict]:
    return [doc for _, doc in objs if doc.get("kind") == kind]


def secret_values(doc: dict) -> dict[str, str]:
    import base64

    values = dict(doc.get("stringData") or {})
    for key, value in (doc.get("data") or {}).items():
        values[key] = base64.b64decode(value).decode()
    return values


def deployment_env(objs: list[tuple[Path, dict]], deployment: dict) -> dict[str, str]:
    """Variables the first container of a Deployment gets, with their values where known."""
    env: dict[str, str] = {}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            cm = find(objs, "ConfigMap", source["configMapRef"]["name"])
            env.update({k: str(v) for k, v in ((cm or {}).get("data") or {}).items()})
        if "secretRef" in source:
            secret = find(objs, "Secret", source["secretRef"]["name"])
            env.update(secret_values(secret or {}))
    for item in container.get("env", []):
        env[item["name"]] = str(item.get("value", "<from reference>"))
    return env


def check_env_set(g: Group, where: str, service: str, given: set[str], repo: Path) -> None:
    reads, required, uses_mongo = rust_env_vars(repo, service)
    for name in sorted(given - reads):
        g.check(False, f"{where}: {name} is given to {service}, which never reads it")
    for name in sorted(required - given):
        # DATABASE_HOST/NAME/USER are required only when DATABASE_URL is not given.
        if name.startswith("DATABASE_") and "DATABASE_URL" in given:
            continue
        g.check(False, f"{where}: {service} requires {name}, which is not given")
    if uses_mongo:
        both = {"MONGODB_VIDEOS_URI", "MONGODB_MP3S_URI"} <= given
        g.check(both or "MONGODB_URI" in given,
                f"{where}: {service} needs MONGODB_VIDEOS_URI and MONGODB_MP3S_URI, or MONGODB_URI")
    g.checks += 1


def nginx_template_vars(repo: Path) -> set[str]:
    text = (repo / "frontend/nginx.conf").read_text()
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", text))


def jenkins_secrets(repo: Path) -> dict[str, set[str]]:
    """Secrets the Jenkinsfile creates with kubectl create secret generic, and their keys."""
    text = (repo / "Jenkinsfile").read_text().replace("\\\n", " ")
    out: dict[str, set[str]] = {}
    for m in re.finditer(r"kubectl create secret generic (\S+)(.*?)--dry-run", text, re.S):
        out[m.group(1)] = set(re.findall(r"--from-literal=([A-Z0-9_]+)=", m.group(2)))
    return out


def check_env(repo: Path, k8s: dict, compose: dict | None) -> Group:
    g = Group("env")
    for service in RUST_SERVICES:
        reads, required, _ = rust_env_vars(repo, service)
        g.notes.append(f"{service} reads {len(reads)} variables, requires {', '.join(sorted(required)) or 'none'}")
        objs = k8s.get(service, [])
        deployment = find(objs, "Deployment", service)
        if not g.check(deployment is not None, f"k8s/{service}: no Deployment named {service}"):
            continue
        check_env_set(g, f"k8s/{service}", service, set(deployment_env(objs, deployment)), repo)
        unset = reads - set(deployment_env(objs, deployment)) - {"DATABASE_URL", "MONGODB_URI"}
        if unset:
            g.notes.append(f"k8s/{service} leaves to their defaults: {', '.join(sorted(unset))}")
        if compose is not None:
            env = compose["services"].get(service, {}).get("environment") or {}
            check_env_set(g, f"docker-compose.yml {service}", service, set(env), repo)
    # The nginx template: exactly its variables are given.
    wanted = nginx_template_vars(repo)
    g.check(bool(wanted), "frontend/nginx.conf: no ${VARIABLE} found (template moved?)")
    objs = k8s.get("frontend", [])
    deployment = find(objs, "Deployment", "frontend")
    if g.check(deployment is not None, "k8s/frontend: no Deployment named frontend"):
        given = set(deployment_env(objs, deployment))
        g.check(given == wanted, f"k8s/frontend gives {sorted(given)}, nginx.conf uses {sorted(wanted)}")
    if compose is not None:
        given = set(compose["services"].get("frontend", {}).get("environment") or {})
        g.check(given == wanted, f"docker-compose.yml frontend gives {sorted(given)}, nginx.conf uses {sorted(wanted)}")
    dockerfile = (repo / "Dockerfiles/frontend.Dockerfile").read_text()
    for name in sorted(wanted):
        g.check(re.search(rf"\b{name}=", dockerfile) is not None,
                f"Dockerfiles/frontend.Dockerfile: no default for {name}")
    # Jenkins makes the real Secrets: same names and keys as the placeholders in k8s/.
    made = jenkins_secrets(repo)
    for service in RUST_SERVICES:
        for doc in all_of(k8s.get(service, []), "Secret"):
            name = doc["metadata"]["name"]
            keys = set(secret_values(doc))
            g.check(made.get(name) == keys,
                    f"Jenkinsfile creates {name} with {sorted(made.get(name, set()))}, k8s has {sorted(keys)}")
    return g


def probe_port_ok(container: dict, probe: dict) -> bool:
    port = (probe.get("httpGet") or probe.get("tcpSocket") or {}).get("port")
    names = {p.get("name") for p in container.get("ports", [])}
    numbers = {p.get("containerPort") for p in container.get("ports", [])}
    return port in names or port in numbers


def check_k8s(repo: Path, k8s: dict) -> Group:
    g = Group("k8s")
    jenkins_image = re.compile(r"^[^ ]+/(auth|gateway|converter|frontend):[^ ]+$")
    for service in SERVICES:
        objs = k8s.get(service, [])
        d = find(objs, "Deployment", service)
        where = f"k8s/{service}"
        if not g.check(d is not None, f"{where}: no Deployment named {service}"):
            continue
        spec = d["spec"]
        pod = spec["template"]["spec"]
        labels = spec["template"]["metadata"].get("labels", {})
        g.check(all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()),
                f"{where}: selector does not match the pod labels")
        strategy = spec.get("strategy", {})
        rolling = strategy.get("rollingUpdate", {})
        g.check(strategy.get("type") == "RollingUpdate" and rolling.get("maxSurge") == 0
                and rolling.get("maxUnavailable") == 1,
                f"{where}: strategy must be RollingUpdate with maxSurge 0, maxUnavailable 1")
        g.check({"name": "ecr-secret"} in pod.get("imagePullSecrets", []), f"{where}: no imagePullSecrets ecr-secret")
        g.check(pod.get("enableServiceLinks") is False, f"{where}: enableServiceLinks must be false (DNS names only)")
        containers = pod["containers"]
        g.check(len(containers) == 1 and containers[0]["name"] == service,
                f"{where}: one container named {service} (Jenkins runs kubectl set image {service}={service}=...)")
        c = containers[0]
        g.check(jenkins_image.match(c.get("image", "")) and c["image"].split("/")[-1].startswith(f"{service}:"),
                f"{where}: image {c.get('image')!r} is not <registry>/{service}:<tag> (Jenkins rewrites that form)")
        ports = {p.get("containerPort") for p in c.get("ports", [])}
        g.check(CONTAINER_PORTS[service] in ports, f"{where}: containerPort {CONTAINER_PORTS[service]} missing")
        live, ready = c.get("livenessProbe"), c.get("readinessProbe")
        if g.check(bool(live and ready), f"{where}: liveness and readiness probes are required"):
            g.check(probe_port_ok(c, live) and probe_port_ok(c, ready), f"{where}: a probe names an undeclared port")
            if service in RUST_SERVICES:
                g.check(live.get("httpGet", {}).get("path") == "/healthz", f"{where}: liveness must GET /healthz")
                g.check(ready.get("httpGet", {}).get("path") == "/readyz", f"{where}: readiness must GET /readyz")
            if service == "gateway":
                admin = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}.get("admin")
                g.check(admin == GATEWAY_ADMIN_PORT, f"{where}: container port admin must be {GATEWAY_ADMIN_PORT}")
                g.check(all(p.get("httpGet", {}).get("port") in ("admin", GATEWAY_ADMIN_PORT) for p in (live, ready)),
                        f"{where}: probes must use the admin port (/readyz is not on the public port)")
        res = c.get("resources", {})
        g.check(all(k in res.get(kind, {}) for kind in ("requests", "limits") for k in ("cpu", "memory")),
                f"{where}: cpu and memory requests and limits are required")
        pod_sc, c_sc = pod.get("securityContext", {}), c.get("securityContext", {})
        g.check(pod_sc.get("runAsNonRoot") is True or c_sc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot")
        g.check(c_sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
        g.check(c_sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation false")
        g.check("ALL" in c_sc.get("capabilities", {}).get("drop", []), f"{where}: drop ALL capabilities")
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for path, name in mounts.items():
            g.check(name in volumes, f"{where}: volumeMount {path} names no volume {name}")
        env = deployment_env(objs, d)
        if service == "converter":
            tmp = env.get("CONVERTER_TMP_DIR", "/tmp")
            vol = volumes.get(mounts.get(tmp, ""), {})
            g.check("sizeLimit" in vol.get("emptyDir", {}),
                    f"{where}: CONVERTER_TMP_DIR {tmp} must be a sized emptyDir (read-only root)")
            grace = int(env.get("CONVERTER_SHUTDOWN_GRACE_SECS", "25"))
            g.check(pod.get("terminationGracePeriodSeconds", 30) > grace,
                    f"{where}: terminationGracePeriodSeconds must exceed CONVERTER_SHUTDOWN_GRACE_SECS ({grace})")
            job = int(env.get("CONVERTER_JOB_TIMEOUT_SECS", "1500"))
            g.check(job < 1800, f"{where}: CONVERTER_JOB_TIMEOUT_SECS must stay below RabbitMQ's consumer_timeout")
        if service == "frontend":
            g.check("/tmp" in mounts and "/etc/nginx/conf.d" in mounts,
                    f"{where}: nginx needs writable /tmp and /etc/nginx/conf.d with a read-only root")
            g.check(env.get("LISTEN_PORT") == str(CONTAINER_PORTS["frontend"]),
                    f"{where}: LISTEN_PORT must equal the containerPort")
        pdb = find(objs, "PodDisruptionBudget", service)
        if pdb is not None:
            g.check(all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items()),
                    f"{where}: PodDisruptionBudget selects no pod of {service}")
            # Without spec.replicas the autoscaler's minimum counts (the autoscaling group).
            if "replicas" in spec:
                g.check(pdb["spec"].get("minAvailable", 0) < spec["replicas"],
                        f"{where}: PodDisruptionBudget minAvailable must stay below replicas, or no drain can evict")
        # The Service.
        svc = find(objs, "Service", service)
        if not g.check(svc is not None, f"{where}: no Service named {service}"):
            continue
        kind, port = SERVICE_CONTRACT[service]
        sspec = svc["spec"]
        g.check(sspec.get("type", "ClusterIP") == kind, f"{where}: Service type must be {kind}")
        g.check(all(labels.get(k) == v for k, v in sspec.get("selector", {}).items()),
                f"{where}: Service selector does not match the pods")
        sport = sspec["ports"][0]
        if kind == "NodePort":
            g.check(sport.get("nodePort") == port, f"{where}: nodePort must be {port}")
        else:
            g.check(sport.get("port") == port, f"{where}: Service port must be {port}")
        target = sport.get("targetPort", sport.get("port"))
        g.check(target in {p.get("name") for p in c.get("ports", [])} | ports,
                f"{where}: Service targetPort {target} is no container port")
        if service == "gateway":
            targets = {p.get("targetPort", p.get("port")) for p in sspec["ports"]}
            g.check(not targets & {"admin", GATEWAY_ADMIN_PORT},
                    f"{where}: the NodePort Service must not expose the admin port (/metrics, /readyz)")
    return g


def rendered(dir_: Path, name: str) -> list[dict]:
    return load_docs(dir_ / f"{name}.yaml")


def check_charts(rendered_dir: Path) -> Group:
    g = Group("charts")
    for chart, nodeport in (("postgres", 30003), ("mongodb", 30005), ("rabbitmq", 30004), ("redis", 30006)):
        docs = rendered(rendered_dir, chart)
        services = [d for d in docs if d["kind"] == "Service"]
        g.check(bool(services), f"{chart}: no Service rendered")
        for s in services:
            g.check(s["spec"].get("type", "ClusterIP") == "ClusterIP",
                    f"{chart}: Service {s['metadata']['name']} must be ClusterIP by default")
        sts = [d for d in docs if d["kind"] == "StatefulSet"]
        if g.check(len(sts) == 1, f"{chart}: one StatefulSet expected"):
            g.check(bool(sts[0]["spec"].get("volumeClaimTemplates")), f"{chart}: no volumeClaimTemplates")
            pod = sts[0]["spec"]["template"]["spec"]
            c = pod["containers"][0]
            g.check(bool(c.get("readinessProbe") and c.get("livenessProbe")), f"{chart}: probes missing")
            g.check(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{chart}: runAsNonRoot")
            refs = [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
            refs += [v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v]
            names = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
            for ref in refs:
                g.check(ref in names, f"{chart}: Secret {ref} is referenced but not rendered")
        existing = rendered(rendered_dir, f"{chart}-existing")
        sts_existing = [d for d in existing if d["kind"] == "StatefulSet"]
        if g.check(len(sts_existing) == 1, f"{chart}: persistence.existingClaim renders no StatefulSet"):
            spec = sts_existing[0]["spec"]
            claims = [v["persistentVolumeClaim"]["claimName"] for v in spec["template"]["spec"].get("volumes", [])
                      if v.get("name") == "data" and "persistentVolumeClaim" in v]
            g.check(not spec.get("volumeClaimTemplates") and claims == [f"old-{chart.replace('mongodb', 'mongo')}-data"],
                    f"{chart}: persistence.existingClaim must mount that claim as the data volume, without a template")
        opened = rendered(rendered_dir, f"{chart}-nodeport")
        ports = [p.get("nodePort") for d in opened if d["kind"] == "Service" for p in d["spec"]["ports"]]
        g.check(nodeport in ports, f"{chart}: service.nodePort.enabled=true must expose {nodeport}")
    # Postgres: init.sql mounted at /docker-entrypoint-initdb.d, the original's table.
    docs = rendered(rendered_dir, "postgres")
    cms = [d for d in docs if d["kind"] == "ConfigMap"]
    sql = "".join(v for d in cms for v in (d.get("data") or {}).values())
    g.check(re.search(r"CREATE TABLE IF NOT EXISTS auth_user \(\s*id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                      r"\s*email VARCHAR\(255\) NOT NULL,\s*password VARCHAR\(255\) NOT NULL\s*\);", sql) is not None,
            "postgres: init SQL does not create the original's auth_user table")
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    pgdata = {e["name"]: e.get("value") for e in container.get("env", [])}.get("PGDATA", "")
    g.check(pgdata.startswith("/var/lib/postgresql/data/"), f"postgres: PGDATA {pgdata} must be a subdirectory of the volume")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    g.check("/docker-entrypoint-initdb.d" in mounts, "postgres: init scripts not mounted at /docker-entrypoint-initdb.d")
    seeded = rendered(rendered_dir, "postgres-seed")
    seed = [d for d in seeded if d["kind"] == "Secret" and "02-seed-user.sql" in (d.get("stringData") or {})]
    if g.check(len(seed) == 1, "postgres: initdb.seedUser does not render a seed script Secret"):
        script = seed[0]["stringData"]["02-seed-user.sql"]
        g.check("INSERT INTO auth_user" in script and "o''brien@example.com" in script,
                "postgres: seed script must insert into auth_user with quotes escaped")
    g.check(not any(d["kind"] == "Secret" and "seed" in d["metadata"]["name"] for d in docs),
            "postgres: no seed user unless asked for")
    # RabbitMQ: definitions with the durable queues, no arguments; loaded at boot.
    docs = rendered(rendered_dir, "rabbitmq")
    defs_secret = [d for d in docs if d["kind"] == "Secret" and "definitions.json" in (d.get("stringData") or {})]
    if g.check(len(defs_secret) == 1, "rabbitmq: no definitions.json Secret"):
        defs = json.loads(defs_secret[0]["stringData"]["definitions.json"])
        queues = {q["name"]: q for q in defs.get("queues", [])}
        for name in ("video", "video.dlq"):
            q = queues.get(name)
            g.check(q is not None and q["durable"] is True and q.get("arguments") == {} and not q.get("auto_delete"),
                    f"rabbitmq: queue {name} must be durable with no arguments")
        users = {u["name"] for u in defs.get("users", [])}
        perms = {(p["user"], p["vhost"]) for p in defs.get("permissions", [])}
        g.check(bool(users) and all((u, "/") in perms for u in users), "rabbitmq: every user needs permissions on /")
        # Least privilege: the services' users are no administrators, may declare only their queues,
        # publish only through the default exchange, and only the converter consumes (video).
        by_user = {p["user"]: p for p in defs.get("permissions", [])}
        tags = {u["name"]: u.get("tags") or [] for u in defs.get("users", [])}
        want = {
            "gateway": {"configure": "^video$", "write": "^amq\\.default$", "read": "^$"},
            "converter": {"configure": "^(video|video\\.dlq)$", "write": "^amq\\.default$", "read": "^video$"},
        }
        for user, perm in want.items():
            got = by_user.get(user, {})
            g.check({k: got.get(k) for k in perm} == perm,
                    f"rabbitmq: {user}'s permissions are {({k: got.get(k) for k in perm})}, want {perm}")
            g.check(tags.get(user) == [], f"rabbitmq: {user} must have no tags (no management access)")
    conf = "".join(v for d in docs if d["kind"] == "ConfigMap" for v in (d.get("data") or {}).values())
    g.check("load_definitions = /etc/rabbitmq/definitions.json" in conf, "rabbitmq: definitions not loaded at boot")
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    image = sts["spec"]["template"]["spec"]["containers"][0]["image"]
    g.check("management" in image, "rabbitmq: image without the management plugin")
    mounts = {m["mountPath"] for m in sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    g.check("/etc/rabbitmq/definitions.json" in mounts, "rabbitmq: definitions.json not mounted")
    # Redis: password from the Secret (not in the ConfigMap), bounded memory below the limit,
    # an append-only file on the volume, a probe that needs the password.
    docs = rendered(rendered_dir, "redis")
    conf = "".join(v for d in docs if d["kind"] == "ConfigMap" for v in (d.get("data") or {}).values())
    g.check("requirepass" not in conf and "include /etc/redis/secret/auth.conf" in conf,
            "redis: the password must come from the Secret's auth.conf, included by redis.conf")
    g.check(re.search(r"^appendonly yes$", conf, re.M) is not None and re.search(r"^dir /data$", conf, re.M) is not None,
            "redis: appendonly yes with dir /data (the volume), so login limits survive a restart")
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    maxmem = re.search(r"^maxmemory (\d+)(kb|mb|gb)$", conf, re.M)
    limit = str(c.get("resources", {}).get("limits", {}).get("memory", ""))
    units = {"kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    lim = re.match(r"^(\d+)(Ki|Mi|Gi)$", limit)
    g.check(bool(maxmem and lim) and int(maxmem.group(1)) * units[maxmem.group(2)] * 3 // 2
            <= int(lim.group(1)) * units[lim.group(2)],
            f"redis: maxmemory must leave a third of the memory limit ({limit}) free for AOF rewrites")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    g.check(mounts.get("/data") == "data" and "/etc/redis/secret" in mounts, "redis: /data volume or secret mount missing")
    probe = " ".join(c.get("readinessProbe", {}).get("exec", {}).get("command", []))
    env = {e["name"] for e in c.get("env", [])}
    g.check("PONG" in probe and "REDISCLI_AUTH" in env, "redis: readiness must see PONG with the password (REDISCLI_AUTH)")
    # MongoDB: a supported release line.
    docs = rendered(rendered_dir, "mongodb")
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    # The services' users: a Secret and a post-install/post-upgrade Job of the same image.
    job = next((d for d in docs if d["kind"] == "Job"), None)
    if g.check(job is not None, "mongodb: no Job that creates the services' users"):
        hooks = job["metadata"].get("annotations", {}).get("helm.sh/hook", "")
        g.check(set(hooks.split(",")) == {"post-install", "post-upgrade"},
                f"mongodb: the users Job must be a post-install,post-upgrade hook, not {hooks!r}")
        jc = job["spec"]["template"]["spec"]["containers"][0]
        g.check(jc["image"] == sts["spec"]["template"]["spec"]["containers"][0]["image"],
                "mongodb: the users Job must run the server's image (its mongosh)")
        g.check(job["spec"]["template"]["metadata"]["labels"].get("app") == "mongodb-users",
                "mongodb: the users Job's pod needs app=mongodb-users (the NetworkPolicy lets it reach MongoDB)")
    users = next((secret_values(d) for d in docs if d["kind"] == "Secret" and "GATEWAY_USERNAME" in secret_values(d)), {})
    g.check(users.get("DATABASES") == "videos,mp3s", f"mongodb: service users must be limited to videos,mp3s, not {users.get('DATABASES')}")
    script = "".join(v for d in docs if d["kind"] == "ConfigMap" for v in (d.get("data") or {}).values())
    granted = set(re.findall(r"role:\s*'([^']+)'", script))
    g.check(granted == {"readWrite"}, f"mongodb: the users script must grant readWrite only, not {sorted(granted)}")
    tag = sts["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[-1]
    major = int(re.match(r"(\d+)", tag).group(1)) if re.match(r"\d+", tag) else 0
    g.check(major >= 7, f"mongodb: image tag {tag} is not a supported release (7.0 or later)")
    return g


def autoscalers(docs: list[dict]) -> dict[str, list[dict]]:
    """HorizontalPodAutoscalers and ScaledObjects by the Deployment they scale."""
    out: dict[str, list[dict]] = {}
    for d in docs:
        if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject"):
            ref = d["spec"]["scaleTargetRef"]
            g_kind = ref.get("kind", "Deployment")
            out.setdefault(ref["name"] if g_kind == "Deployment" else f"{g_kind}/{ref['name']}", []).append(d)
    return out


def check_autoscaling(k8s: dict, rendered_dir: Path) -> Group:
    """Helm_charts/Autoscaling against the Deployments it scales and the queue it watches."""
    g = Group("autoscaling")
    defs = chart_values(rendered_dir)["rabbitmq"][2]
    queues = {q["name"] for q in defs.get("queues", [])}
    for render, converter_kind in (("autoscaling", "HorizontalPodAutoscaler"),
                                   ("autoscaling-keda", "ScaledObject"), ("autoscaling-none", None)):
        by_target = autoscalers(rendered(rendered_dir, render))
        for target, objs in by_target.items():
            # KEDA refuses a ScaledObject whose Deployment has an HPA already; two HPAs fight.
            g.check(len(objs) == 1, f"{render}: {len(objs)} autoscalers target {target}")
        got = [o["kind"] for o in by_target.get("converter", [])]
        g.check(got == ([converter_kind] if converter_kind else []),
                f"{render}: the converter should get {converter_kind or 'no autoscaler'}, got {got}")
        for service in ("gateway", "auth"):
            g.check([o["kind"] for o in by_target.get(service, [])] == ["HorizontalPodAutoscaler"],
                    f"{render}: {service} needs one HorizontalPodAutoscaler")
        for target, objs in by_target.items():
            obj, where = objs[0], f"{render} {objs[0]['kind']} {objs[0]['metadata']['name']}"
            deployment = find(k8s.get(target, []), "Deployment", target)
            if not g.check(deployment is not None, f"{where}: targets {target}, which is no Deployment in k8s/"):
                continue
            spec = deployment["spec"]
            g.check("replicas" not in spec,
                    f"k8s/{target}: spec.replicas must be left to the autoscaler (kubectl apply would reset it)")
            container = spec["template"]["spec"]["containers"][0]
            s = obj["spec"]
            if obj["kind"] == "HorizontalPodAutoscaler":
                low, high = s.get("minReplicas", 1), s["maxReplicas"]
                for m in s.get("metrics", []):
                    if m.get("type") == "Resource":
                        name = m["resource"]["name"]
                        g.check(name in container.get("resources", {}).get("requests", {}),
                                f"{where}: utilisation of {name} needs a {name} request on k8s/{target}")
            else:
                low, high = s.get("minReplicaCount", 0), s.get("maxReplicaCount", 100)
                for trigger in s.get("triggers", []):
                    meta = trigger.get("metadata", {})
                    if not g.check(trigger.get("type") == "rabbitmq", f"{where}: trigger {trigger.get('type')} is not rabbitmq"):
                        continue
                    g.check(meta.get("queueName") in queues,
                            f"{where}: queueName {meta.get('queueName')} is no queue of the RabbitMQ chart {sorted(queues)}")
                    g.check(meta.get("mode") == "QueueLength" and int(meta.get("value", "0")) >= 1,
                            f"{where}: mode QueueLength with a value of at least 1 message per replica")
                    env = deployment_env(k8s[target], deployment)
                    host = meta.get("hostFromEnv")
                    g.check(host is not None and host in env and env[host].startswith("amqp://"),
                            f"{where}: hostFromEnv {host} must name the AMQP URL of the converter's container")
            g.check(0 <= low <= high, f"{where}: replicas {low}..{high}")
            pdb = find(k8s.get(target, []), "PodDisruptionBudget", target)
            if pdb is not None:
                g.check(pdb["spec"].get("minAvailable", 0) < low,
                        f"{where}: k8s/{target} PodDisruptionBudget minAvailable must stay below minReplicas {low}")
    # KEDA's operator reads the queue from its namespace: k8s/network's default deny must let it
    # reach RabbitMQ's AMQP port, and only that.
    rabbit = next(d for d in rendered(rendered_dir, "rabbitmq") if d["kind"] == "StatefulSet")
    rabbit_labels = rabbit["spec"]["template"]["metadata"]["labels"]
    policies = [d for d in rendered(rendered_dir, "autoscaling-keda") if d["kind"] == "NetworkPolicy"]
    amqp = [p for p in policies if selector_matches(p["spec"].get("podSelector"), rabbit_labels)
            and any(any("namespaceSelector" in peer for peer in rule.get("from", [])) and port_matches(rule.get("ports"), 5672)
                    for rule in p["spec"].get("ingress", []))]
    g.check(len(amqp) == 1 and all(port_matches(r.get("ports"), 5672) and not port_matches(r.get("ports"), 15672)
                                   for p in policies for r in p["spec"].get("ingress", [])),
            "autoscaling-keda: one NetworkPolicy must let KEDA's namespace reach RabbitMQ's pods on 5672, nothing more")
    g.check(not [d for d in rendered(rendered_dir, "autoscaling") if d["kind"] == "NetworkPolicy"],
            "autoscaling: without KEDA no NetworkPolicy for it")
    # The converter's concurrency follows its CPU limit through the downward API.
    objs = k8s.get("converter", [])
    deployment = find(objs, "Deployment", "converter")
    if g.check(deployment is not None, "k8s/converter: no Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        refs = {e["name"]: e.get("valueFrom", {}).get("resourceFieldRef") for e in container.get("env", [])}
        ref = refs.get("CONVERTER_CPU_LIMIT") or {}
        g.check(ref.get("resource") == "limits.cpu" and ref.get("containerName", "converter") == "converter"
                and str(ref.get("divisor", "1")) == "1",
                "k8s/converter: CONVERTER_CPU_LIMIT must come from resourceFieldRef limits.cpu (divisor 1)")
        g.check("CONVERTER_CONCURRENCY" not in deployment_env(objs, deployment) or "CONVERTER_CPU_LIMIT" not in refs,
                "k8s/converter: CONVERTER_CONCURRENCY overrides the CPU limit; set one of them")
    return g


def relabel(labels: dict[str, str], configs: list[dict]) -> dict[str, str] | None:
    """Prometheus' relabeling (replace and keep) of one target; None when it is dropped."""
    labels = dict(labels)
    for c in configs:
        value = c.get("separator", ";").join(labels.get(s, "") for s in c.get("source_labels", []))
        m = re.fullmatch(str(c.get("regex", "(.*)")), value)
        action = c.get("action", "replace")
        if action == "keep":
            if not m:
                return None
        elif action == "replace":
            if m:
                replacement = re.sub(r"\$(\d+)", lambda g: m.group(int(g.group(1))) or "", str(c.get("replacement", "$1")))
                if replacement:
                    labels[c["target_label"]] = replacement
                else:
                    labels.pop(c["target_label"], None)
        else:
            raise ValueError(f"relabel action {action} is not simulated here")
    return labels


def check_monitoring(repo: Path, k8s: dict, rendered_dir: Path) -> Group:
    """Helm_charts/Monitoring against the Services and pods it scrapes and its own files."""
    g = Group("monitoring")
    files = repo / "Helm_charts/Monitoring/files"
    rabbit = rendered(rendered_dir, "rabbitmq")
    pods = []  # (app, pod template, container) of every scraped workload
    for service in RUST_SERVICES:
        d = find(k8s.get(service, []), "Deployment", service)
        if d is not None:
            pods.append((service, d["spec"]["template"], d["spec"]["template"]["spec"]["containers"][0]))
    sts = next(d for d in rabbit if d["kind"] == "StatefulSet")
    pods.append(("rabbitmq", sts["spec"]["template"], sts["spec"]["template"]["spec"]["containers"][0]))
    # Without the operator: the kubernetes-pods job of files/scrape-configs.yml, run on each pod.
    scrape = yaml.safe_load((files / "scrape-configs.yml").read_text())["scrape_configs"][0]
    for app, template, container in pods:
        annotations = template["metadata"].get("annotations", {})
        meta = {"__address__": "10.0.0.7", "__meta_kubernetes_pod_label_app": template["metadata"]["labels"].get("app", ""),
                "__metrics_path__": "/metrics"}
        meta.update({"__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): str(v)
                     for k, v in annotations.items()})
        target = relabel(meta, scrape.get("relabel_configs", []))
        ports = {p["containerPort"] for p in container.get("ports", [])}
        want_path = "/metrics/per-object" if app == "rabbitmq" else "/metrics"
        if g.check(target is not None, f"{app}: the kubernetes-pods job drops its pods (prometheus.io/scrape?)"):
            port = int(target["__address__"].rsplit(":", 1)[-1]) if ":" in target["__address__"] else 0
            g.check(target.get("job") == app and port in ports and target.get("__metrics_path__") == want_path,
                    f"{app}: the kubernetes-pods job scrapes job={target.get('job')} {target['__address__']}"
                    f"{target.get('__metrics_path__')}, want job={app}, a container port of {sorted(ports)}, {want_path}")
    # With the operator: each ServiceMonitor selects a Service with that port name.
    docs = rendered(rendered_dir, "monitoring-operator")
    services = [d for objs in k8s.values() for _, d in objs if d.get("kind") == "Service"]
    services += [d for d in rabbit if d["kind"] == "Service"]
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    g.check({m["spec"]["selector"]["matchLabels"].get("app") for m in monitors} == {a for a, _, _ in pods},
            f"ServiceMonitors cover {sorted(m['spec']['selector']['matchLabels'].get('app', '') for m in monitors)}, "
            f"want {sorted(a for a, _, _ in pods)}")
    for m in monitors:
        sel = m["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if all(s["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
        pod = next(((t, c) for a, t, c in pods if a == sel.get("app")), None)
        for ep in m["spec"]["endpoints"]:
            targets = {p.get("targetPort", p["port"]) for s in matched for p in s["spec"]["ports"] if p.get("name") == ep.get("port")}
            if g.check(bool(targets), f"ServiceMonitor {m['metadata']['name']}: no selected Service has a port named {ep.get('port')}") \
                    and pod is not None:
                # The Service port must lead to the container port serving the metrics (the pod's annotation).
                template, container = pod
                want = int(template["metadata"].get("annotations", {}).get("prometheus.io/port", "0"))
                numbers = {p["containerPort"] for p in container.get("ports", []) for t in targets if t in (p.get("name"), p["containerPort"])}
                g.check(numbers == {want}, f"ServiceMonitor {m['metadata']['name']}: port {ep.get('port')} leads to container port "
                        f"{sorted(numbers)}, the metrics are on {want}")
        g.check(m["spec"].get("jobLabel") == "app", f"ServiceMonitor {m['metadata']['name']}: jobLabel must be app (rules use job=<app>)")
    # k8s/network's default deny: Prometheus' namespace may reach each scraped pod's metrics port.
    for render in ("monitoring", "monitoring-operator"):
        policies = [d for d in rendered(rendered_dir, render) if d["kind"] == "NetworkPolicy"]
        for app, template, container in pods:
            labels = template["metadata"]["labels"]
            port = int(template["metadata"].get("annotations", {}).get("prometheus.io/port", "0"))
            ok = any(selector_matches(p["spec"].get("podSelector"), labels) and any(
                any("namespaceSelector" in peer for peer in rule.get("from", [])) and port_matches(rule.get("ports"), port)
                for rule in p["spec"].get("ingress", [])) for p in policies)
            g.check(ok, f"{render}: no NetworkPolicy lets Prometheus' namespace reach {app} on {port}")
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    if g.check(len(rules) == 1, "monitoring-operator: one PrometheusRule expected"):
        g.check(rules[0]["spec"] == yaml.safe_load((files / "rules.yml").read_text()),
                "PrometheusRule: spec differs from files/rules.yml")
    for render in ("monitoring", "monitoring-operator"):
        cms = [d for d in rendered(rendered_dir, render) if d["kind"] == "ConfigMap"]
        g.check(len(cms) == 1 and json.loads(cms[0]["data"]["vidconv.json"]) == json.loads((files / "dashboard.json").read_text()),
                f"{render}: the dashboard ConfigMap must hold files/dashboard.json")
    g.check(not [d for d in rendered(rendered_dir, "monitoring") if d["kind"] in ("ServiceMonitor", "PrometheusRule")],
            "monitoring: without the operator's API no ServiceMonitor or PrometheusRule may be rendered")
    return g


def chart_values(rendered_dir: Path) -> dict:
    """Facts of the rendered charts the services depend on."""
    pg = rendered(rendered_dir, "postgres")
    mongo = rendered(rendered_dir, "mongodb")
    rabbit = rendered(rendered_dir, "rabbitmq")
    redis = rendered(rendered_dir, "redis")

    def svc(docs: list[dict]) -> dict:
        return next(d for d in docs if d["kind"] == "Service" and d["spec"].get("clusterIP") != "None")

    pg_secret = next(secret_values(d) for d in pg if d["kind"] == "Secret" and "POSTGRES_USER" in secret_values(d))
    mongo_secret = next(secret_values(d) for d in mongo
                        if d["kind"] == "Secret" and "MONGO_INITDB_ROOT_USERNAME" in secret_values(d))
    mongo_users = next((secret_values(d) for d in mongo
                        if d["kind"] == "Secret" and "GATEWAY_USERNAME" in secret_values(d)), {})
    defs = json.loads(next(d["stringData"]["definitions.json"] for d in rabbit
                           if d["kind"] == "Secret" and "definitions.json" in (d.get("stringData") or {})))
    redis_secret = next(secret_values(d) for d in redis if d["kind"] == "Secret" and "REDIS_PASSWORD" in secret_values(d))
    return {
        "postgres": (svc(pg)["metadata"]["name"], svc(pg)["spec"]["ports"][0]["port"], pg_secret),
        "redis": (svc(redis)["metadata"]["name"], svc(redis)["spec"]["ports"][0]["port"], redis_secret["REDIS_PASSWORD"]),
        "mongodb": (svc(mongo)["metadata"]["name"], svc(mongo)["spec"]["ports"][0]["port"], mongo_secret),
        "mongodb-users": mongo_users,
        "rabbitmq": (svc(rabbit)["metadata"]["name"],
                     next(p["port"] for p in svc(rabbit)["spec"]["ports"] if p["name"] == "amqp"), defs),
    }


def check_wiring(k8s: dict, rendered_dir: Path, compose: dict | None) -> Group:
    g = Group("wiring")
    facts = chart_values(rendered_dir)
    pg_host, pg_port, pg_secret = facts["postgres"]
    mongo_host, mongo_port, mongo_secret = facts["mongodb"]
    rabbit_host, rabbit_port, defs = facts["rabbitmq"]
    rabbit_users = {u["name"] for u in defs["users"]}
    rabbit_admins = {u["name"] for u in defs["users"] if "administrator" in (u.get("tags") or [])}
    mongo_users = facts["mongodb-users"]
    rabbit_vhost = defs["vhosts"][0]["name"]
    sources = []
    for service in SERVICES:
        objs = k8s.get(service, [])
        d = find(objs, "Deployment", service)
        if d is not None:
            sources.append((f"k8s/{service}", service, deployment_env(objs, d), True))
    if compose is not None:
        for service in SERVICES:
            env = compose["services"].get(service, {}).get("environment") or {}
            sources.append((f"docker-compose.yml {service}", service, {k: str(v) for k, v in env.items()}, False))
    redis_host, redis_port, redis_password = facts["redis"]
    for where, service, env, is_k8s in sources:
        if "REDIS_URL" in env and is_k8s:
            # The Redis chart's Service, port and password (both placeholders in the repository).
            url = urlsplit(env["REDIS_URL"])
            g.check(url.scheme == "redis" and url.hostname == redis_host and url.port == redis_port
                    and unquote(url.password or "") == redis_password and re.fullmatch(r"/\d*", url.path or "/"),
                    f"{where}: REDIS_URL must be redis://:<the chart's auth.password>@{redis_host}:{redis_port}/<db>")
        if service == "auth":
            if is_k8s:
                g.check(env.get("DATABASE_HOST") == pg_host, f"{where}: DATABASE_HOST must be {pg_host}")
            g.check(env.get("DATABASE_PORT", "5432") == str(pg_port), f"{where}: DATABASE_PORT must be {pg_port}")
            g.check(env.get("DATABASE_USER") == pg_secret["POSTGRES_USER"], f"{where}: DATABASE_USER != chart user")
            g.check(env.get("DATABASE_NAME") == pg_secret["POSTGRES_DB"], f"{where}: DATABASE_NAME != chart db")
            g.check(env.get("AUTH_TABLE", "auth_user") == "auth_user", f"{where}: AUTH_TABLE != init.sql's auth_user")
        if service == "gateway":
            addr = env.get("AUTH_SVC_ADDRESS", "auth:5000")
            g.check(addr.split("//")[-1].rstrip("/") == "auth:5000", f"{where}: AUTH_SVC_ADDRESS must be auth:5000")
        if service in ("gateway", "converter"):
            for var, db in (("MONGODB_VIDEOS_URI", "videos"), ("MONGODB_MP3S_URI", "mp3s")):
                uri = urlsplit(env.get(var, ""))
                ok = uri.scheme == "mongodb" and uri.path == f"/{db}" and uri.port == mongo_port
                if is_k8s:
                    # Each service logs in as its own user of the MongoDB chart (serviceUsers), never root.
                    user = mongo_users.get(f"{service.upper()}_USERNAME")
                    ok = ok and uri.hostname == mongo_host and user is not None \
                        and unquote(uri.username or "") == user and "authSource=admin" in uri.query
                g.check(ok, f"{where}: {var} must be mongodb://<{service}'s chart user>:<pw>@{mongo_host}:{mongo_port}/{db}?authSource=admin")
            amqp = urlsplit(env.get("RABBITMQ_URL", ""))
            ok = amqp.scheme == "amqp" and amqp.port == rabbit_port and unquote(amqp.path.lstrip("/")) == rabbit_vhost
            if is_k8s:
                # The service's own RabbitMQ user of the chart (serviceUsers), not the administrator.
                amqp_user = unquote(amqp.username or "")
                ok = ok and amqp.hostname == rabbit_host and amqp_user == service and amqp_user in rabbit_users \
                    and amqp_user not in rabbit_admins
            g.check(ok, f"{where}: RABBITMQ_URL must be amqp://{service}:<pw>@{rabbit_host}:{rabbit_port}/%2f (its own user)")
            g.check(env.get("VIDEO_QUEUE", "video") == "video", f"{where}: VIDEO_QUEUE must be the chart's video")
        if service == "frontend":
            g.check(env.get("GATEWAY_UPSTREAM") == "gateway:8080", f"{where}: GATEWAY_UPSTREAM must be gateway:8080")
    return g


def check_placeholders(repo: Path, k8s: dict, rendered_dir: Path) -> Group:
    g = Group("placeholders")
    for service, objs in k8s.items():
        for path, doc in objs:
            if doc.get("kind") != "Secret":
                continue
            for key, value in secret_values(doc).items():
                g.check(is_placeholder(value), f"{path.relative_to(repo)}: {key} is not a placeholder")
                if key == "JWT_SECRET":
                    g.check(value == JWT_PLACEHOLDER,
                            f"{path.relative_to(repo)}: JWT_SECRET must be {JWT_PLACEHOLDER} (the services refuse it)")
    for chart in ("postgres", "mongodb", "rabbitmq", "redis"):
        for doc in rendered(rendered_dir, chart):
            if doc["kind"] != "Secret":
                continue
            for key, value in secret_values(doc).items():
                if "PASSWORD" in key:
                    g.check(value == PLACEHOLDER, f"{chart} chart: default {key} must be the {PLACEHOLDER} placeholder")
                if key == "auth.conf":
                    g.check(value.split() == ["requirepass", PLACEHOLDER],
                            f"{chart} chart: default requirepass must be the {PLACEHOLDER} placeholder")
                if key == "definitions.json":
                    users = json.loads(value)["users"]
                    g.check(not any(u["name"] == "guest" for u in users), f"{chart} chart: guest must be off by default")
                    g.check(all(u.get("password") == PLACEHOLDER for u in users),
                            f"{chart} chart: default user password must be the {PLACEHOLDER} placeholder")
    compose = (repo / "docker-compose.yml").read_text()
    for m in re.finditer(r"\b[A-Z_]*(PASSWORD|PASS|SECRET):\s*(\S+)", compose):
        name = m.group(0).split(":")[0]
        # An optional secret may default to empty (its feature is then off, e.g. WEBHOOK_SECRET).
        g.check(PLACEHOLDER in m.group(2) or m.group(2).startswith("${" + name + ":?")
                or (name in OPTIONAL_SECRETS and m.group(2) == "${" + name + ":-}"),
                f"docker-compose.yml: {m.group(0)} is neither a placeholder default nor required")
    for m in re.finditer(r"\bJWT_SECRET:\s*(.+)", compose):
        g.check(m.group(1).startswith("${JWT_SECRET:?"),
                f"docker-compose.yml: JWT_SECRET must be required (${{JWT_SECRET:?...}}), not {m.group(1)!r}")
    for dockerfile in sorted((repo / "Dockerfiles").glob("*.Dockerfile")):
        text = dockerfile.read_text()
        g.check(re.search(r"^\s*(ENV|ARG)\s+\S*(PASSWORD|SECRET|TOKEN)", text, re.M | re.I) is None,
                f"{dockerfile.name}: a secret must not be baked into the image")
    return g


def dockerfile_stages(text: str) -> list[str]:
    return re.findall(r"^FROM\s+(\S+)", text, re.M)


def check_dockerfiles(repo: Path, k8s: dict) -> Group:
    g = Group("dockerfiles")
    for service in SERVICES:
        path = repo / "Dockerfiles" / f"{service}.Dockerfile"
        if not g.check(path.exists(), f"Dockerfiles/{service}.Dockerfile missing"):
            continue
        text = path.read_text()
        user = re.findall(r"^USER\s+(\S+)", text, re.M)
        g.check(bool(user) and re.match(r"^[1-9]\d*(:\d+)?$", user[-1]) is not None,
                f"{path.name}: the last USER must be a numeric non-root uid (runAsNonRoot checks it)")
        deployment = find(k8s.get(service, []), "Deployment", service)
        if user and deployment is not None:
            pod = deployment["spec"]["template"]["spec"]
            run_as = pod.get("securityContext", {}).get("runAsUser")
            g.check(run_as is None or str(run_as) == user[-1].split(":")[0],
                    f"{path.name}: USER {user[-1]} differs from k8s/{service} runAsUser {run_as}")
        g.check(re.search(r"^HEALTHCHECK\s", text, re.M) is not None, f"{path.name}: no HEALTHCHECK")
        expose = {int(p) for p in re.findall(r"^EXPOSE\s+(\d+)", text, re.M)}
        g.check(CONTAINER_PORTS[service] in expose, f"{path.name}: EXPOSE {CONTAINER_PORTS[service]} missing")
        stages = dockerfile_stages(text)
        g.check(len(stages) >= 2, f"{path.name}: multi-stage build expected")
        if service in RUST_SERVICES:
            g.check((repo / "crates" / service / "Cargo.toml").exists(), f"{path.name}: crates/{service} missing")
            g.check(f"--package {service} --bin {service}" in text, f"{path.name}: must build --package {service} --bin {service}")
            g.check("cargo chef cook --release" in text, f"{path.name}: dependency layer must use cargo chef cook")
            g.check(stages[0].startswith("rust:") and stages[0].endswith("-bookworm"), f"{path.name}: build on rust:*-bookworm")
            g.check(stages[-1] == "debian:bookworm-slim", f"{path.name}: run on debian:bookworm-slim (same Debian as the build)")
            g.check(f"/target/release/{service} " in text, f"{path.name}: copy the release binary")
        if service == "converter":
            runtime = text[text.rindex("FROM "):]
            for lib in FFMPEG_RUNTIME_LIBS:
                g.check(lib in runtime, f"{path.name}: runtime lacks {lib}")
            g.check(re.search(r"\b[a-z0-9.+]+-dev\b|\bclang\b", runtime) is None,
                    f"{path.name}: runtime stage must not install -dev packages or clang")
        if service == "frontend":
            g.check("frontend/nginx.conf /etc/nginx/templates/" in text and ".template" in text,
                    f"{path.name}: nginx.conf must be installed as an /etc/nginx/templates/*.template")
            g.check("npm ci" in text and "npm run build" in text, f"{path.name}: build with npm ci && npm run build")
    return g


def groovy_single_quoted(body: str) -> str:
    """The text of a Groovy '''...''' string: backslash-newline joins lines, \\ is one backslash."""
    out, i = [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "\n":
                i += 2
                continue
            if nxt in "\\'":
                out.append(nxt)
                i += 2
                continue
        out.append(body[i])
        i += 1
    return "".join(out)


def jenkins_shell_steps(text: str) -> dict[str, list[str]]:
    """The shell scripts of each stage (and of post), as the agent's sh step receives them."""
    steps: dict[str, list[str]] = {}
    marks = [(m.start(), m.group(1)) for m in re.finditer(r"stage\('([^']+)'\)", text)]
    post = text.find("    post {")
    if post >= 0:
        marks.append((post, "post"))
    marks.sort()
    for n, (start, name) in enumerate(marks):
        end = marks[n + 1][0] if n + 1 < len(marks) else len(text)
        chunk = text[start:end]
        scripts = [groovy_single_quoted(m.group(1)) for m in re.finditer(r"sh\s*\(?\s*'''(.*?)'''", chunk, re.S)]
        scripts += [m.group(1) for m in re.finditer(r"sh\s+'([^'\n]*)'", chunk)]
        steps[name] = scripts
    return steps


def run_apply_stage(repo: Path, script: str, extra_env: dict | None = None,
                    docs: list | None = None) -> list[tuple[str, str, str]]:
    """Runs the Apply manifests script with a stand-in kubectl; returns (kind, name, image) applied
    and, into docs when given, every applied document."""
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        fake = Path(tmp) / "kubectl"
        # One line per document of the applied stream (a file may hold several, "---"-separated).
        fake.write_text("#!/bin/sh\n" + "awk 'function out(){if(k){print k\"\\t\"n\"\\t\"i}; k=\"\";n=\"\";i=\"\"} "
                        "/^---/{out()} /^kind:/{k=$2} /^  name:/{if(!n){n=$2}} /image:/{i=$2} "
                        "END{out()}' >> " + str(Path(tmp) / "applied") + "\n")
        fake.write_text(fake.read_text().replace("awk ", "tee -a " + str(Path(tmp) / "stream") + " | awk ", 1))
        fake.chmod(0o755)
        env = dict(os.environ, PATH=f"{tmp}:{os.environ['PATH']}", ORIGINAL_RELEASES="false",
                   ECR_REGISTRY="123456789012.dkr.ecr.eu-west-1.amazonaws.com", IMAGE_TAG="0123456789ab")
        env.update(extra_env or {})
        subprocess.run(["bash", "-e", "-c", script], cwd=repo, env=env, check=True, capture_output=True, text=True)
        lines = (Path(tmp) / "applied").read_text().splitlines()
        if docs is not None:
            text = (Path(tmp) / "stream").read_text().replace("\napiVersion:", "\n---\napiVersion:")
            docs.extend(d for d in yaml.safe_load_all(text) if isinstance(d, dict))
    return [tuple((line.split("\t") + ["", "", ""])[:3]) for line in lines]


def check_jenkins(repo: Path, k8s: dict) -> Group:
    g = Group("jenkins")
    text = (repo / "Jenkinsfile").read_text()
    stages = re.findall(r"stage\('([^']+)'\)", text)
    wanted = [
        ("Test", r"^Test$"),
        ("kubeconfig", r"kubeconfig"),
        ("Helm MongoDB", r"Helm.*MongoDB"),
        ("Helm Postgres", r"Helm.*Postgres"),
        ("Helm RabbitMQ", r"Helm.*RabbitMQ"),
        ("ecr-secret", r"ecr-secret"),
        ("ECR login", r"ECR login"),
        ("build and push", r"[Bb]uild.*push"),
        ("apply manifests", r"[Aa]pply manifests"),
        ("set images", r"[Ss]et deployments"),
        ("rollout status", r"[Rr]ollout status"),
        ("cleanup", r"[Cc]leanup old ReplicaSets"),
    ]
    positions = []
    for label, pattern in wanted:
        index = next((i for i, s in enumerate(stages) if re.search(pattern, s)), None)
        g.check(index is not None, f"Jenkinsfile: no stage for {label}")
        positions.append(index if index is not None else -1)
    g.check(positions == sorted(positions), f"Jenkinsfile: stages out of order: {stages}")
    g.check("sh 'make test'" in text, "Jenkinsfile: the Test stage must run make test")
    for chart, folder in (("mongodb", "MongoDB"), ("postgres", "Postgres"), ("rabbitmq", "RabbitMQ")):
        g.check(f"helm upgrade --install {chart} ./Helm_charts/{folder}" in text,
                f"Jenkinsfile: helm upgrade --install {chart} ./Helm_charts/{folder} missing")
        g.check((repo / "Helm_charts" / folder / "Chart.yaml").exists(), f"Helm_charts/{folder} missing")
    services = re.search(r"SERVICES = '([^']+)'", text)
    if g.check(services is not None, "Jenkinsfile: SERVICES list missing"):
        listed = services.group(1).split()
        g.check(sorted(listed) == sorted(SERVICES), f"Jenkinsfile: SERVICES {listed} != {list(SERVICES)}")
        g.check('"Dockerfiles/${svc}.Dockerfile"' in text, "Jenkinsfile: images must be built from Dockerfiles/<svc>.Dockerfile")
    for name in ("AWS_DEFAULT_REGION", "AWS_ACCOUNT_ID", "CLUSTER_NAME", "ECR_REGISTRY"):
        g.check(f"name: '{name}'" in text, f"Jenkinsfile: {name} must be a parameter")
    g.check(re.search(r"\d{12}\.dkr\.ecr", text) is None, "Jenkinsfile: no hard-coded account id")
    # The registry receives the ECR login token: it must be checked against the ECR host pattern,
    # and the credentials are fixed ids (a parameter could point a stage at any credential).
    pattern = re.search(r"ECR_PATTERN = '([^']+)'", text)
    if g.check(pattern is not None, "Jenkinsfile: no ECR_PATTERN"):
        regex = pattern.group(1).replace("\\\\", "\\")
        g.check(regex == r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com$", f"Jenkinsfile: ECR_PATTERN is {regex}")
        g.check(re.search(r"registry ==~ env\.ECR_PATTERN", text) is not None and "error(\"ECR_REGISTRY" in text,
                "Jenkinsfile: the registry must be refused unless it matches ECR_PATTERN")
        g.check(re.fullmatch(regex, "123456789012.dkr.ecr.eu-west-1.amazonaws.com") is not None
                and re.fullmatch(regex, "evil.example.com") is None
                and re.fullmatch(regex, "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.com") is None,
                "Jenkinsfile: ECR_PATTERN accepts a foreign registry or refuses ECR")
    ids = re.findall(r"credentialsId:\s*([^,)]+)", text)
    g.check(bool(ids) and all(re.fullmatch(r"'vidconv-[a-z0-9-]+'", i.strip()) for i in ids),
            f"Jenkinsfile: credential ids must be fixed 'vidconv-...' literals: {sorted(set(ids))}")
    g.check("_CREDENTIAL" not in text, "Jenkinsfile: no parameter may name a credential")
    for manual in MANUAL_K8S:
        g.check(f"k8s/{manual}/" in text, f"Jenkinsfile: the apply stage must skip k8s/{manual}/ (run by hand)")
    g.check("kubectl create secret docker-registry ecr-secret" in text, "Jenkinsfile: ecr-secret not created")
    g.check("git rev-parse" in text and "IMAGE_TAG" in text, "Jenkinsfile: images must be tagged with the commit")
    # Every sh script parses as shell; the apply stage, run with a stand-in kubectl, applies each
    # ConfigMap and Service before any Deployment, skips the placeholder Secrets, and points
    # every Deployment at this build's image.
    import subprocess

    steps = jenkins_shell_steps(text)
    for stage, scripts in steps.items():
        for script in scripts:
            parsed = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
            g.check(parsed.returncode == 0, f"Jenkinsfile stage {stage}: shell syntax: {parsed.stderr.strip()}")
    apply = next((s for name, scripts in steps.items() if re.search(r"[Aa]pply manifests", name) for s in scripts), None)
    if g.check(apply is not None, "Jenkinsfile: no shell script in the apply stage"):
        applied = run_apply_stage(repo, apply)
        kinds = [kind for kind, _, _ in applied]
        g.check("Secret" not in kinds, "Jenkinsfile apply: the placeholder Secrets must not be applied")
        first_deploy = kinds.index("Deployment") if "Deployment" in kinds else len(kinds)
        g.check(all(k == "Deployment" for k in kinds[first_deploy:]),
                f"Jenkinsfile apply: ConfigMaps and Services must come before Deployments: {kinds}")
        expected = {(k, d["metadata"]["name"]) for folder, objs in k8s.items() for _, d in objs
                    if (k := d.get("kind")) != "Secret" and folder not in MANUAL_K8S}
        g.check({(k, n) for k, n, _ in applied} == expected, "Jenkinsfile apply: not every k8s object was applied")
        # A cluster taken over from the original (ORIGINAL_RELEASES=true): auth reaches the
        # original's Postgres Service and user; by default, the chart's.
        fixture = yaml.safe_load(FIXTURE.read_text())["charts"]["Postgres"]
        pg_service = next(o["name"] for o in fixture["objects"] if o["kind"] == "Service")
        for original, host, user in ((False, "postgres", "auth"), (True, pg_service, fixture["secret"]["POSTGRES_USER"])):
            docs: list[dict] = []
            run_apply_stage(repo, apply, {"ORIGINAL_RELEASES": str(original).lower()}, docs)
            cm = next((d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == "auth-configmap"), {})
            data = cm.get("data") or {}
            g.check((data.get("DATABASE_HOST"), data.get("DATABASE_USER")) == (host, user),
                    f"Jenkinsfile apply with ORIGINAL_RELEASES={str(original).lower()}: auth gets "
                    f"{data.get('DATABASE_HOST')}/{data.get('DATABASE_USER')}, want {host}/{user}")
        for chart, folder in (("mongodb", "MongoDB"), ("postgres", "Postgres"), ("rabbitmq", "RabbitMQ")):
            g.check(f'then set -- -f Helm_charts/{folder}/values-original.yaml; else set --; fi\n'
                    f'                        helm upgrade --install {chart} ./Helm_charts/{folder} "$@"' in text,
                    f"Jenkinsfile: helm upgrade {chart} must add values-original.yaml when ORIGINAL_RELEASES is true")
        g.check("--set guest.enabled=false" in text, "Jenkinsfile: the RabbitMQ stage must turn guest off")
        for kind, name, image in applied:
            if kind == "Deployment":
                g.check(image == f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{name}:0123456789ab",
                        f"Jenkinsfile apply: deployment {name} got image {image!r}, not this build's")
    return g


# --- takeover of the original deployment (issue 10) -----------------------------------------

IMMUTABLE_DEFAULTS = {"podManagementPolicy": "OrderedReady", "volumeClaimTemplates": []}


def immutable_fields(doc: dict) -> dict:
    """The fields Kubernetes refuses to change on an update, with their defaults filled in."""
    spec = doc.get("spec", {})
    if doc["kind"] == "StatefulSet":
        return {
            "selector": spec.get("selector"),
            "serviceName": spec.get("serviceName"),
            "podManagementPolicy": spec.get("podManagementPolicy", "OrderedReady"),
            # A claim template's name and spec are what the upgrade would have to change.
            "volumeClaimTemplates": [v["metadata"]["name"] for v in spec.get("volumeClaimTemplates") or []],
        }
    if doc["kind"] == "Deployment":
        return {"selector": spec.get("selector")}
    return {}


def check_takeover(repo: Path, k8s: dict, rendered_dir: Path) -> Group:
    """values-original.yaml renders keep every immutable field of the original's objects."""
    g = Group("takeover")
    fixture = yaml.safe_load((repo / "scripts/deploy-checks/fixtures/original-immutable.yaml").read_text())
    for chart, spec in fixture["charts"].items():
        where = f"Helm_charts/{chart} with values-original.yaml"
        docs = rendered(rendered_dir, f"{spec['release']}-original")
        by_key = {(d["kind"], d["metadata"]["name"]): d for d in docs}
        for want in spec["objects"]:
            have = by_key.get((want["kind"], want["name"]))
            if have is None:
                g.check(not want.get("required"), f"{where}: renders no {want['kind']} {want['name']} (the original's clients use it)")
                continue
            if want["kind"] == "Service":
                ports = {p["port"] for p in have["spec"]["ports"]}
                g.check(set(want["ports"]) <= ports, f"{where}: Service {want['name']} ports {sorted(ports)}, the original's {want['ports']}")
                continue
            expected = {k: want.get(k, IMMUTABLE_DEFAULTS.get(k)) for k in immutable_fields(have)}
            got = immutable_fields(have)
            for field in expected:
                g.check(got[field] == expected[field],
                        f"{where}: {want['kind']} {want['name']} {field} is {got[field]}, the original's is {expected[field]} (immutable)")
        for d in docs:
            if d["kind"] in ("StatefulSet", "Deployment"):
                labels = d["spec"]["template"]["metadata"].get("labels", {})
                sel = d["spec"]["selector"].get("matchLabels", {})
                g.check(all(labels.get(k) == v for k, v in sel.items()),
                        f"{where}: {d['kind']} {d['metadata']['name']}: pod labels {labels} do not match its selector {sel}")
        for key, value in (spec.get("secret") or {}).items():
            values = {}
            for d in docs:
                if d["kind"] == "Secret":
                    values.update(secret_values(d))
            g.check(values.get(key) == value, f"{where}: {key} is {values.get(key)!r}, the original's {value!r}")
        for user in spec.get("rabbitUsers") or []:
            defs = json.loads(next(d["stringData"]["definitions.json"] for d in docs
                                   if d["kind"] == "Secret" and "definitions.json" in (d.get("stringData") or {})))
            perm = next((p for p in defs["permissions"] if p["user"] == user), {})
            g.check(any(u["name"] == user for u in defs["users"]) and
                    all(perm.get(k) == ".*" for k in ("configure", "write", "read")),
                    f"{where}: user {user} with full rights on the vhost, as the original's services need")
            conf = "".join(v for d in docs if d["kind"] == "ConfigMap" for v in (d.get("data") or {}).values())
            g.check(f"loopback_users.{user} = false" in conf, f"{where}: {user} must be allowed from other pods")
    for want in fixture["k8s"]:
        objs = [d for objs in k8s.values() for _, d in objs]
        have = next((d for d in objs if d.get("kind") == want["kind"] and d["metadata"]["name"] == want["name"]), None)
        if g.check(have is not None, f"k8s: no {want['kind']} {want['name']} to replace the original's"):
            g.check(immutable_fields(have)["selector"] == want["selector"],
                    f"k8s: {want['kind']} {want['name']} selector {have['spec']['selector']}, the original's {want['selector']} (immutable)")
    return g


# --- NetworkPolicies (issue 11) ------------------------------------------------------------

ROLE_PORTS = {"frontend": [8080, 80], "gateway": [8080, GATEWAY_ADMIN_PORT], "auth": [5000], "converter": [9090], "postgres": [5432],
              "redis": [6379],
              "mongodb": [27017], "mongodb-next": [27017], "rabbitmq": [5672, 15672, 15692], "mongodb-users": [],
              "mongodb-migrate": []}
# Exactly these (source, destination, port) are allowed; "outside" is any address out of the
# namespace (NodePorts, the Ingress controller, the internet), "monitoring" a pod of the namespace
# named monitoring (Prometheus): k8s/network lets it reach the gateway's admin port, and
# Helm_charts/Monitoring's prometheus-scrape the other metrics ports too (MONITORING_CHART_FLOWS,
# checked with and without the chart).
MONITORING_NAMESPACE = "monitoring"
EXPECTED_FLOWS = {
    ("monitoring", "gateway", GATEWAY_ADMIN_PORT), ("monitoring", "auth", 5000),
    ("monitoring", "converter", 9090), ("monitoring", "rabbitmq", 15692),
    ("outside", "frontend", 8080), ("outside", "frontend", 80), ("outside", "gateway", 8080),
    ("frontend", "gateway", 8080), ("gateway", "auth", 5000), ("auth", "postgres", 5432),
    ("auth", "redis", 6379), ("gateway", "redis", 6379), ("converter", "redis", 6379),
    ("gateway", "mongodb", 27017), ("converter", "mongodb", 27017),
    ("gateway", "rabbitmq", 5672), ("converter", "rabbitmq", 5672),
    ("mongodb-users", "mongodb", 27017), ("mongodb-migrate", "mongodb", 27017),
    # The takeover's temporary server (docs/migrating-from-python.md): the migration Job and the
    # chart's users Job only.
    ("mongodb-users", "mongodb-next", 27017), ("mongodb-migrate", "mongodb-next", 27017),
}

MONITORING_CHART_FLOWS = {("monitoring", "auth", 5000), ("monitoring", "converter", 9090), ("monitoring", "rabbitmq", 15692)}


def selector_matches(selector: dict | None, labels: dict) -> bool:
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def peer_matches(peers: list | None, labels: dict | None, namespace: str | None = None) -> bool:
    """Whether a from/to list admits a pod of this namespace (labels), a pod of another namespace
    (namespace, any labels) or, for labels None, the outside."""
    if not peers:
        return True
    for peer in peers:
        if namespace is not None:
            ns = peer.get("namespaceSelector")
            pods = peer.get("podSelector")
            if ns is not None and selector_matches(ns, {"kubernetes.io/metadata.name": namespace}) \
                    and (pods is None or pods == {}):
                return True
        elif labels is None:
            if "ipBlock" in peer:
                return True
        elif "podSelector" in peer and "namespaceSelector" not in peer and selector_matches(peer["podSelector"], labels):
            return True
    return False


def port_matches(ports: list | None, port: int) -> bool:
    return not ports or any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports)


def direction_allows(policies: list[dict], kind: str, pod: dict, peer: dict | None, port: int,
                     peer_namespace: str | None = None) -> bool:
    selecting = [p for p in policies if kind in p["spec"].get("policyTypes", ["Ingress"])
                 and selector_matches(p["spec"]["podSelector"], pod)]
    if not selecting:
        return True
    key, side = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    return any(peer_matches(rule.get(side), peer, peer_namespace) and port_matches(rule.get("ports"), port)
               for p in selecting for rule in p["spec"].get(key) or [])


def pod_roles(repo: Path, k8s: dict, rendered_dir: Path) -> dict[str, list[dict]]:
    """Label sets of every pod the system runs, by role: ours, the charts' (default and
    values-original), the charts' Jobs, the migration Job, and the original deployment's."""
    roles: dict[str, list[dict]] = {r: [] for r in ROLE_PORTS}
    for service in SERVICES:
        d = find(k8s.get(service, []), "Deployment", service)
        if d is not None:
            roles[service].append(d["spec"]["template"]["metadata"]["labels"])
    for chart, variants in (("mongodb", ("mongodb", "mongodb-original")),
                            ("postgres", ("postgres", "postgres-original")),
                            ("rabbitmq", ("rabbitmq", "rabbitmq-original")), ("redis", ("redis",))):
        for variant in variants:
            for d in rendered(rendered_dir, variant):
                if d["kind"] == "StatefulSet":
                    roles[chart].append(d["spec"]["template"]["metadata"]["labels"])
                if d["kind"] == "Job":
                    roles[d["spec"]["template"]["metadata"]["labels"].get("app", "?")].append(
                        d["spec"]["template"]["metadata"]["labels"])
    # The temporary release of the migration: the chart's default labels under the name mongodb-next.
    roles["mongodb-next"].append({"app": "mongodb-next", "app.kubernetes.io/name": "mongodb-next"})
    for _, d in k8s.get("migration", []):
        if d.get("kind") == "Job":
            roles["mongodb-migrate"].append(d["spec"]["template"]["metadata"]["labels"])
    fixture = yaml.safe_load((repo / "scripts/deploy-checks/fixtures/original-immutable.yaml").read_text())
    for role, labels in fixture["pods"].items():
        roles[role].append(labels)
    return roles


def check_network(repo: Path, k8s: dict, rendered_dir: Path) -> Group:
    g = Group("network")
    policies = [d for objs in k8s.values() for _, d in objs if d.get("kind") == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"].get("podSelector") == {} and not p["spec"].get("ingress")
            and not p["spec"].get("egress") and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}]
    g.check(len(deny) == 1, "k8s: one default-deny NetworkPolicy (every pod, ingress and egress, no rule)")
    roles = pod_roles(repo, k8s, rendered_dir)
    for role, pods in roles.items():
        g.check(bool(pods), f"network: no pod found for {role} (labels moved?)")
    # k8s/network alone, and with Helm_charts/Monitoring's NetworkPolicy for Prometheus' scrapes.
    chart = [d for d in rendered(rendered_dir, "monitoring") if d["kind"] == "NetworkPolicy"]
    for where, active, expected in (("network", policies, EXPECTED_FLOWS - MONITORING_CHART_FLOWS),
                                    ("network with the monitoring chart", policies + chart, EXPECTED_FLOWS)):
        allowed = network_flows(g, where, active, roles, expected)
        check_internet_egress(g, where, active, roles)
        g.notes.append(f"{where}: {len(active)} NetworkPolicies; {len({a[:3] for a in allowed})} flows allowed, as wanted")
    return g


# Webhooks (docs/webhooks.md): the gateway, and only the gateway, reaches public addresses on these
# ports; no pod reaches the private, loopback, link-local (cloud metadata) or shared ranges by IP.
INTERNET_PORTS = (443, 80)
PUBLIC_SAMPLES = ("93.184.215.14", "2606:4700::1111")
PRIVATE_SAMPLES = ("10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "127.0.0.1", "100.64.0.1")


def egress_to_address(policies: list[dict], pod: dict, address: str, port: int) -> bool:
    """Whether a pod may open a connection to an address outside the cluster (ipBlock rules)."""
    import ipaddress

    ip = ipaddress.ip_address(address)
    selecting = [p for p in policies if "Egress" in p["spec"].get("policyTypes", ["Ingress"])
                 and selector_matches(p["spec"]["podSelector"], pod)]
    if not selecting:
        return True
    for p in selecting:
        for rule in p["spec"].get("egress") or []:
            if not port_matches(rule.get("ports"), port):
                continue
            peers = rule.get("to")
            if not peers:
                return True
            for peer in peers:
                block = peer.get("ipBlock")
                if not block:
                    continue
                net = ipaddress.ip_network(block["cidr"])
                if net.version != ip.version or ip not in net:
                    continue
                if not any(ip in ipaddress.ip_network(e) for e in block.get("except") or []
                           if ipaddress.ip_network(e).version == ip.version):
                    return True
    return False


def check_internet_egress(g: Group, where: str, policies: list[dict], roles: dict[str, list[dict]]) -> None:
    for role, pods in roles.items():
        for labels in pods:
            for port in INTERNET_PORTS:
                for address in PUBLIC_SAMPLES:
                    allowed = egress_to_address(policies, labels, address, port)
                    if role == "gateway":
                        g.check(allowed, f"{where}: the gateway {labels} cannot reach {address}:{port} (webhooks)")
                    else:
                        g.check(not allowed, f"{where}: {role} {labels} may reach the internet ({address}:{port}), which nothing needs")
                for address in PRIVATE_SAMPLES:
                    g.check(not egress_to_address(policies, labels, address, port),
                            f"{where}: {role} {labels} may reach {address}:{port} by address")


def network_flows(g: Group, where: str, policies: list[dict], roles: dict[str, list[dict]],
                  expected: set) -> set:
    """Checks that exactly the expected flows (and DNS) are allowed; returns the allowed ones."""
    dns = {"k8s-app": "kube-dns"}
    allowed = set()
    # (role, labels, namespace): labels None for the outside and for another namespace's pods.
    sources = [("outside", None, None), ("monitoring", None, MONITORING_NAMESPACE)]
    sources += [(r, labels, None) for r, pods in roles.items() for labels in pods]
    for src, src_labels, src_ns in sources:
        if src_labels is not None:
            # Every pod resolves names: egress to kube-dns in kube-system on 53.
            dns_ok = any(p["spec"].get("podSelector") == {} and any(
                any(peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "kube-system"
                    and selector_matches(peer.get("podSelector"), dns) for peer in rule.get("to") or [])
                and port_matches(rule.get("ports"), 53) for rule in p["spec"].get("egress") or []) for p in policies)
            g.check(dns_ok, f"{where}: {src} pods ({src_labels}) cannot reach DNS")
        for dst, dst_pods in roles.items():
            for dst_labels in dst_pods:
                for port in ROLE_PORTS[dst]:
                    out_ok = src_labels is None or direction_allows(policies, "Egress", src_labels, dst_labels, port)
                    in_ok = direction_allows(policies, "Ingress", dst_labels, src_labels, port, src_ns)
                    # The monitoring namespace is outside too: only what it reaches beyond that counts.
                    also_outside = src_ns is not None and direction_allows(policies, "Ingress", dst_labels, None, port)
                    if out_ok and in_ok and not also_outside:
                        allowed.add((src, dst, port, json.dumps(src_labels, sort_keys=True), json.dumps(dst_labels, sort_keys=True)))
                    elif (src, dst, port) in expected and (src_labels is None or src_labels in roles[src]):
                        g.check(False, f"{where}: {src} {src_labels or ''} cannot reach {dst} {dst_labels}:{port}")
    for src, dst, port, sl, dl in sorted(allowed):
        g.check((src, dst, port) in expected, f"{where}: {src} {sl} may reach {dst} {dl}:{port}, which nothing needs")
    return allowed


# --- the MongoDB 4.0 -> chart migration Job (issue 10) ---------------------------------------

def check_migration(repo: Path, k8s: dict, rendered_dir: Path) -> Group:
    import subprocess
    import tempfile

    g = Group("migration")
    objs = k8s.get("migration", [])
    job = find(objs, "Job", "mongodb-migrate")
    cm = find(objs, "ConfigMap", "mongodb-migrate-scripts")
    if not g.check(job is not None and cm is not None, "k8s/migration: Job mongodb-migrate and its ConfigMap required"):
        return g
    fixture = yaml.safe_load((repo / "scripts/deploy-checks/fixtures/original-immutable.yaml").read_text())
    pod = job["spec"]["template"]["spec"]
    chart_image = next(d for d in rendered(rendered_dir, "mongodb") if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["image"]
    dump = (pod.get("initContainers") or [{}])[0]
    restore = pod["containers"][0]
    g.check(dump.get("image") == fixture["mongoImage"], f"migration: dump with the original's own tools ({fixture['mongoImage']}), not {dump.get('image')}")
    g.check(restore.get("image") == chart_image, f"migration: restore with the chart's image {chart_image}, not {restore.get('image')}")
    g.check(job["spec"].get("backoffLimit") == 0, "migration: backoffLimit 0 (a failure is read, not retried)")
    scripts = cm["data"]
    g.check(set(scripts) >= {"dump.sh", "restore.sh", "counts.js", "gridfs-indexes.js"}, f"migration: scripts {sorted(scripts)}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in scripts.items():
            path = Path(tmp) / name
            path.write_text(text)
            cmd = ["sh", "-n", str(path)] if name.endswith(".sh") else ["node", "--check", str(path)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            g.check(res.returncode == 0, f"migration: {name} does not parse: {res.stderr.strip()}")
    for db in ("videos", "mp3s"):
        g.check(f"'{db}'" in scripts.get("counts.js", ""), f"migration: counts.js must count {db}")
        g.check(f"--nsInclude '{db}.*'" in scripts.get("restore.sh", ""), f"migration: restore.sh must restore {db}")
    g.check("fs.files.bytes" in scripts.get("counts.js", "") and "$length" in scripts.get("counts.js", ""),
            "migration: counts.js must sum fs.files.length")
    g.check(re.search(r"if ! cmp -s /work/source-counts.txt /work/target-counts.txt; then\n(.*\n)*?\s+exit 1", scripts.get("restore.sh", "")) is not None,
            "migration: restore.sh must fail when the counts differ")
    g.check("--db \"$db\"" in scripts.get("dump.sh", "") and "for db in videos mp3s" in scripts.get("dump.sh", ""),
            "migration: dump.sh must dump videos and mp3s")
    mounts = {m["mountPath"] for c in (dump, restore) for m in c.get("volumeMounts", [])}
    g.check({"/scripts", "/work"} <= mounts, "migration: both containers mount /scripts and /work")
    return g


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--rendered", type=Path, required=True, help="folder of <chart>.yaml renders")
    parser.add_argument("--compose-config", type=Path, help="output of docker-compose config")
    args = parser.parse_args()
    repo = args.repo.resolve()
    k8s = k8s_objects(repo)
    compose = yaml.safe_load(args.compose_config.read_text()) if args.compose_config else None
    groups = []
    for name, run in (
        ("env", lambda: check_env(repo, k8s, compose)),
        ("k8s", lambda: check_k8s(repo, k8s)),
        ("charts", lambda: check_charts(args.rendered)),
        ("wiring", lambda: check_wiring(k8s, args.rendered, compose)),
        ("placeholders", lambda: check_placeholders(repo, k8s, args.rendered)),
        ("dockerfiles", lambda: check_dockerfiles(repo, k8s)),
        ("jenkins", lambda: check_jenkins(repo, k8s)),
        ("takeover", lambda: check_takeover(repo, k8s, args.rendered)),
        ("network", lambda: check_network(repo, k8s, args.rendered)),
        ("migration", lambda: check_migration(repo, k8s, args.rendered)),
        ("autoscaling", lambda: check_autoscaling(k8s, args.rendered)),
        ("monitoring", lambda: check_monitoring(repo, k8s, args.rendered)),
    ):
        try:
            groups.append(run())
        except Exception as e:  # a file that is not shaped as expected is a failure, not a crash
            g = Group(name)
            g.problems.append(f"could not check: {type(e).__name__}: {e}")
            groups.append(g)
    failed = 0
    for g in groups:
        if g.problems:
            failed += 1
            print(f"  FAIL {g.name}: {len(g.problems)} problem(s) in {g.checks} checks")
            for p in g.problems:
                print(f"       - {p}")
        else:
            print(f"  ok   {g.name}: {g.checks} checks")
        for note in g.notes:
            print(f"       ({note})")
    return failed


if __name__ == "__main__":
    sys.exit(main())
