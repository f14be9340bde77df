#!/usr/bin/env python3
"""Proves that check_deploy.py catches what it is meant to catch.

Each case copies the deployment files into a temporary folder, breaks one thing (a text
replacement that must apply), re-renders the charts when a chart changed, and runs the checks:
the named group must fail. A case whose mutation goes unnoticed fails this self-test.
    selftest.py --repo . --helm PATH
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_deploy as cd  # noqa: E402

COPIED = ["k8s", "Helm_charts", "scripts/deploy-checks/fixtures", "Dockerfiles", "Jenkinsfile", "docker-compose.yml", "frontend/nginx.conf",
          "crates/auth/src/config.rs", "crates/gateway/src/config.rs", "crates/converter/src/config.rs",
          "crates/common/src/mongo.rs", "crates/common/src/job_events.rs", "crates/common/src/telemetry.rs",
          "crates/auth/Cargo.toml", "crates/gateway/Cargo.toml", "crates/converter/Cargo.toml"]

# (group that must fail, file, text to replace, replacement)
CASES = [
    ("env", "k8s/auth/configmap.yaml", "  AUTH_TABLE: auth_user\n", "  AUTH_TABLE: auth_user\n  AUTH_TABEL: x\n"),
    ("env", "k8s/gateway/secret.yaml", "  JWT_SECRET: REPLACE-ME-generate-with-openssl-rand-hex-32\n", ""),
    ("env", "k8s/converter/secret.yaml", '  MONGODB_MP3S_URI: "mongodb://converter:change-me@mongodb:27017/mp3s?authSource=admin"\n', ""),
    ("env", "k8s/frontend/configmap.yaml", "  MAX_UPLOAD_SIZE: 210m\n", ""),
    ("env", "docker-compose.yml", "      CONVERTER_CONCURRENCY: \"2\"\n", "      CONVERTER_THREADS: \"2\"\n"),
    ("env", "Jenkinsfile", '--from-literal=JWT_SECRET="$JWT_SECRET" \\\n                          --from-literal=MONGODB', '--from-literal=MONGODB'),
    ("k8s", "k8s/gateway/deployment.yaml", "maxSurge: 0", "maxSurge: 1"),
    ("k8s", "k8s/converter/deployment.yaml", "path: /readyz", "path: /healthz"),
    ("k8s", "k8s/frontend/service.yaml", "nodePort: 30001", "nodePort: 30011"),
    ("k8s", "k8s/auth/deployment.yaml", "- name: ecr-secret", "- name: registry-secret"),
    ("k8s", "k8s/auth/deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"),
    ("k8s", "k8s/frontend/deployment.yaml", "enableServiceLinks: false", "enableServiceLinks: true"),
    ("k8s", "k8s/converter/deployment.yaml", "terminationGracePeriodSeconds: 150", "terminationGracePeriodSeconds: 30"),
    ("k8s", "k8s/gateway/deployment.yaml", "            limits:\n              cpu: \"1\"\n", "            limits:\n"),
    ("k8s", "k8s/auth/deployment.yaml", "image: 000000000000.dkr.ecr.us-east-1.amazonaws.com/auth:latest", "image: auth"),
    ("charts", "Helm_charts/Postgres/files/init.sql", "email VARCHAR(255) NOT NULL", "email TEXT NOT NULL"),
    ("charts", "Helm_charts/RabbitMQ/templates/_helpers.tpl",
     '$dlq := dict "name" $dlqName "vhost" $vhost "durable" true "auto_delete" false "arguments" $noArgs',
     '$dlq := dict "name" $dlqName "vhost" $vhost "durable" true "auto_delete" false "arguments" (dict "x-queue-type" "quorum")'),
    ("charts", "Helm_charts/MongoDB/values.yaml", 'tag: "8.0"', 'tag: "4.4"'),
    ("charts", "Helm_charts/Postgres/values.yaml", "  type: ClusterIP", "  type: LoadBalancer"),
    ("charts", "Helm_charts/MongoDB/templates/statefulset.yaml", "            claimName: {{ . }}", "            claimName: data-{{ . }}"),
    ("charts", "Helm_charts/RabbitMQ/templates/configmap.yaml", "    load_definitions = /etc/rabbitmq/definitions.json\n", ""),
    ("charts", "Helm_charts/Redis/values.yaml", "appendonly: true", "appendonly: false"),
    ("charts", "Helm_charts/Redis/values.yaml", "maxmemory: 192mb", "maxmemory: 384mb"),
    ("charts", "Helm_charts/Redis/templates/configmap.yaml", "    include /etc/redis/secret/auth.conf\n",
     "    requirepass {{ .Values.auth.password }}\n"),
    ("charts", "Helm_charts/Redis/templates/statefulset.yaml", "ping | grep -q PONG", "ping"),
    ("placeholders", "Helm_charts/Redis/values.yaml", "password: change-me", "password: 0123abcd"),
    ("wiring", "k8s/auth/configmap.yaml", "DATABASE_HOST: postgres", "DATABASE_HOST: postgresql"),
    ("wiring", "k8s/gateway/secret.yaml", "@rabbitmq:5672/%2f", "@rabbit:5672/%2f"),
    ("wiring", "k8s/converter/secret.yaml", "@mongodb:27017/videos?authSource=admin", "@mongodb:27017/video?authSource=admin"),
    ("wiring", "docker-compose.yml", "      DATABASE_NAME: authdb\n", "      DATABASE_NAME: users\n"),
    ("placeholders", "k8s/auth/secret.yaml", "JWT_SECRET: REPLACE-ME-generate-with-openssl-rand-hex-32", "JWT_SECRET: 9f8e7d6c5b4a39281706"),
    ("placeholders", "Helm_charts/MongoDB/values.yaml", "rootPassword: change-me", "rootPassword: s3cr3t"),
    ("placeholders", "docker-compose.yml", "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:-change-me}", "POSTGRES_PASSWORD: hunter2"),
    ("dockerfiles", "Dockerfiles/converter.Dockerfile", " libswscale6", ""),
    ("dockerfiles", "Dockerfiles/auth.Dockerfile", "USER 10001:10001\n", ""),
    ("dockerfiles", "Dockerfiles/gateway.Dockerfile", "EXPOSE 8080", "EXPOSE 8000"),
    ("dockerfiles", "k8s/converter/deployment.yaml", "runAsUser: 10001", "runAsUser: 1000"),
    ("autoscaling", "k8s/gateway/poddisruptionbudget.yaml", "minAvailable: 1", "minAvailable: 2"),
    ("autoscaling", "k8s/auth/deployment.yaml", "spec:\n  # No replicas", "spec:\n  replicas: 2\n  # No replicas"),
    ("autoscaling", "Helm_charts/Autoscaling/values.yaml", "    queue: video\n", "    queue: videos\n"),
    ("autoscaling", "Helm_charts/Autoscaling/values.yaml", "hostFromEnv: RABBITMQ_URL", "hostFromEnv: AMQP_URL"),
    ("autoscaling", "Helm_charts/Autoscaling/values.yaml", "  deployment: converter\n", "  deployment: converters\n"),
    ("autoscaling", "Helm_charts/Autoscaling/templates/converter.yaml", '{{- else if eq $mode "hpa" }}',
     '{{- end }}\n{{- if ne $mode "none" }}\n---'),
    ("autoscaling", "k8s/converter/deployment.yaml", "resource: limits.cpu", "resource: requests.cpu"),
    ("autoscaling", "k8s/converter/configmap.yaml", "  VIDEO_QUEUE: video\n", "  VIDEO_QUEUE: video\n  CONVERTER_CONCURRENCY: \"2\"\n"),
    ("monitoring", "k8s/auth/deployment.yaml", 'prometheus.io/port: "5000"', 'prometheus.io/port: "5001"'),
    ("monitoring", "k8s/converter/deployment.yaml", 'prometheus.io/scrape: "true"', 'prometheus.io/scrape: "false"'),
    ("monitoring", "Helm_charts/RabbitMQ/templates/statefulset.yaml", "prometheus.io/path: /metrics/per-object",
     "prometheus.io/path: /metrics"),
    ("monitoring", "Helm_charts/Monitoring/files/scrape-configs.yml", "target_label: job", "target_label: app"),
    ("monitoring", "Helm_charts/Monitoring/values.yaml", "    port: metrics\n", "    port: http\n"),
    ("monitoring", "Helm_charts/Monitoring/templates/prometheusrule.yaml", '.Files.Get "files/rules.yml" | fromYaml | toYaml',
     '.Files.Get "files/rules.yml" | fromYaml | toYaml | replace "600" "6000"'),
    ("autoscaling", "Helm_charts/Autoscaling/templates/networkpolicy.yaml", "port: 5672", "port: 15672"),
    ("monitoring", "Helm_charts/Monitoring/values.yaml", "ports: [9102, 5000, 9090, 15692]", "ports: [9102, 5000, 9090]"),
    # The gateway's metrics are on its admin port only: scraping or opening its API port misses them.
    ("monitoring", "Helm_charts/Monitoring/values.yaml", "ports: [9102, 5000, 9090, 15692]", "ports: [8080, 5000, 9090, 15692]"),
    ("monitoring", "Helm_charts/Monitoring/values.yaml", "  - app: gateway\n    port: admin\n", "  - app: gateway\n    port: http\n"),
    ("network", "Helm_charts/Monitoring/values.yaml", "ports: [9102, 5000, 9090, 15692]", "ports: [9102, 5000, 9090, 15692, 15672]"),
    ("jenkins", "Jenkinsfile", "sh 'make test'", "sh 'make lint'"),
    ("jenkins", "Jenkinsfile", "! -name 'secret.yaml' ! -name 'deployment.yaml' | sort\n                      find k8s -name 'deployment.yaml' | sort;",
     "! -name 'secret.yaml' | sort;"),
    ("jenkins", "Jenkinsfile", "image: ${ECR_REGISTRY}/\\\\1:${IMAGE_TAG}#", "image: ${ECR_REGISTRY}/\\\\1:latest#"),
    ("jenkins", "Jenkinsfile", "kubectl rollout status \"deployment/${svc}\" --timeout=10m\n", "kubectl rollout status \"deployment/${svc}\" --timeout=10m)\n"),
    ("jenkins", "Jenkinsfile", "helm upgrade --install postgres ./Helm_charts/Postgres", "helm upgrade --install pg ./Helm_charts/Postgres"),
    # The takeover of the original's releases: immutable fields, names, users.
    ("takeover", "Helm_charts/MongoDB/values-original.yaml", "  app: database\n", "  app: mongodb-db\n"),
    ("takeover", "Helm_charts/RabbitMQ/values-original.yaml", "governingServiceName: not-applicable", "governingServiceName: rabbitmq-headless"),
    ("takeover", "Helm_charts/RabbitMQ/values-original.yaml", "  standaloneClaim: true", "  standaloneClaim: false"),
    ("placeholders", "docker-compose.yml", "WEBHOOK_SECRET: ${WEBHOOK_SECRET:-}", "WEBHOOK_SECRET: ${WEBHOOK_SECRET:-0123456789abcdef0123456789abcdef}"),
    ("takeover", "Helm_charts/Postgres/values-original.yaml", "  name: db\n", "  name: postgres\n"),
    ("takeover", "Helm_charts/Postgres/values-original.yaml", "  username: mohamed", "  username: auth"),
    ("takeover", "Helm_charts/RabbitMQ/values-original.yaml", "guest:\n  enabled: true", "guest:\n  enabled: false"),
    ("takeover", "Helm_charts/MongoDB/templates/_helpers.tpl", "(merge $selector (deepCopy", "(merge (dict) (deepCopy"),
    # NetworkPolicies: exactly the needed flows.
    ("network", "k8s/network/networkpolicies.yaml", "  podSelector: {}\n  policyTypes:\n    - Ingress\n    - Egress\n---",
     "  podSelector:\n    matchLabels:\n      app: none\n  policyTypes:\n    - Ingress\n    - Egress\n---"),
    ("network", "k8s/network/networkpolicies.yaml",
     "  ingress:\n    - from:\n        - podSelector:\n            matchLabels:\n              app: gateway\n      ports:\n        - protocol: TCP\n          port: 5000",
     "  ingress:\n    - ports:\n        - protocol: TCP\n          port: 5000"),
    ("network", "k8s/network/networkpolicies.yaml", "              k8s-app: kube-dns", "              k8s-app: coredns"),
    # Webhooks: the gateway reaches public addresses on 443/80, never the metadata service or pods.
    ("network", "k8s/network/networkpolicies.yaml", "              - 169.254.0.0/16\n", ""),
    ("network", "k8s/network/networkpolicies.yaml", "            cidr: 2000::/3\n      ports:\n        - protocol: TCP\n          port: 443\n",
     "            cidr: 2000::/3\n      ports:\n        - protocol: TCP\n          port: 8443\n"),
    ("network", "k8s/network/networkpolicies.yaml", "                values: [gateway, converter]\n", "                values: [gateway]\n"),
    # The gateway's admin port (9102): from anywhere, from another namespace, or not even Prometheus.
    ("network", "k8s/network/networkpolicies.yaml",
     "    - ports:\n        - protocol: TCP\n          port: 8080\n    - from:",
     "    - ports:\n        - protocol: TCP\n          port: 8080\n        - protocol: TCP\n          port: 9102\n    - from:"),
    ("network", "k8s/network/networkpolicies.yaml",
     "              kubernetes.io/metadata.name: monitoring\n      ports:\n        - protocol: TCP\n          port: 9102",
     "              kubernetes.io/metadata.name: observability\n      ports:\n        - protocol: TCP\n          port: 9102"),
    ("k8s", "k8s/gateway/deployment.yaml", "              path: /readyz\n              port: admin", "              path: /readyz\n              port: http"),
    ("k8s", "k8s/gateway/service.yaml", "      nodePort: 30002\n      protocol: TCP\n",
     "      nodePort: 30002\n      protocol: TCP\n    - name: admin\n      port: 9102\n      targetPort: admin\n      nodePort: 30102\n"),
    ("env", "k8s/gateway/configmap.yaml", '  GATEWAY_ADMIN_ADDR: "0.0.0.0:9102"\n', '  GATEWAY_ADMIN_PORT: "9102"\n'),
    # The migration Job.
    ("migration", "k8s/migration/mongodb-migrate-job.yaml",
     "      paste -d '|' /work/source-counts.txt /work/target-counts.txt >&2 || true\n      exit 1\n",
     "      paste -d '|' /work/source-counts.txt /work/target-counts.txt >&2 || true\n"),
    ("migration", "k8s/migration/mongodb-migrate-job.yaml", "image: mongo:4.0.8", "image: mongo:8.0"),
    ("migration", "k8s/migration/mongodb-migrate-job.yaml", "    for db in videos mp3s; do\n", "    for db in videos; do\n"),
    # Secrets and least privilege.
    ("placeholders", "docker-compose.yml", "JWT_SECRET: ${JWT_SECRET:?set JWT_SECRET, e.g. openssl rand -hex 32}",
     "JWT_SECRET: ${JWT_SECRET:-0123456789abcdef0123456789abcdef}"),
    ("charts", "Helm_charts/RabbitMQ/templates/_helpers.tpl", '"write" "^amq\\\\.default$" "read" "^$")', '"write" "^amq\\\\.default$" "read" ".*")'),
    ("charts", "Helm_charts/MongoDB/values.yaml", "  databases:\n    - videos\n    - mp3s\n", "  databases:\n    - videos\n    - mp3s\n    - admin\n"),
    ("wiring", "k8s/gateway/secret.yaml", "mongodb://gateway:change-me@", "mongodb://root:change-me@"),
    ("wiring", "k8s/converter/secret.yaml", "amqp://converter:change-me@", "amqp://vidconv:change-me@"),
    ("jenkins", "Jenkinsfile", "if (!(registry ==~ env.ECR_PATTERN)) {", "if (registry.isEmpty()) {"),
    ("jenkins", "Jenkinsfile", "credentialsId: 'vidconv-jwt-secret'", "credentialsId: params.JWT_SECRET_CREDENTIAL"),
    ("jenkins", "Jenkinsfile", "! -path 'k8s/migration/*' ", ""),
    ("jenkins", "Jenkinsfile", "DATABASE_HOST:).*/\\\\1 db/", "DATABASE_HOST:).*/\\\\1 postgres/"),
    ("jenkins", "Jenkinsfile", "then set -- -f Helm_charts/RabbitMQ/values-original.yaml", "then set -- -f Helm_charts/RabbitMQ/values.yaml"),
]

CHART_RENDERS = [
    ("mongodb", "mongodb", "MongoDB", []),
    ("postgres", "postgres", "Postgres", []),
    ("rabbitmq", "rabbitmq", "RabbitMQ", []),
    ("mongodb-nodeport", "mongodb", "MongoDB", ["--set", "service.nodePort.enabled=true"]),
    ("postgres-nodeport", "postgres", "Postgres", ["--set", "service.nodePort.enabled=true"]),
    ("rabbitmq-nodeport", "rabbitmq", "RabbitMQ", ["--set", "service.nodePort.enabled=true"]),
    ("mongodb-existing", "mongodb", "MongoDB", ["--set", "persistence.existingClaim=old-mongo-data"]),
    ("postgres-existing", "postgres", "Postgres", ["--set", "persistence.existingClaim=old-postgres-data",
                                                   "--set", "pgdata=/var/lib/postgresql/data"]),
    ("rabbitmq-existing", "rabbitmq", "RabbitMQ", ["--set", "persistence.existingClaim=old-rabbitmq-data"]),
    ("mongodb-original", "mongodb", "MongoDB", ["-f", "VALUES_ORIGINAL"]),
    ("postgres-original", "postgres", "Postgres", ["-f", "VALUES_ORIGINAL"]),
    ("rabbitmq-original", "rabbitmq", "RabbitMQ", ["-f", "VALUES_ORIGINAL"]),
    ("autoscaling", "autoscaling", "Autoscaling", []),
    ("autoscaling-keda", "autoscaling", "Autoscaling", ["--api-versions", "keda.sh/v1alpha1/ScaledObject"]),
    ("autoscaling-none", "autoscaling", "Autoscaling", ["--set", "converter.autoscaler=none"]),
    ("monitoring", "monitoring", "Monitoring", []),
    ("monitoring-operator", "monitoring", "Monitoring", ["--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"]),
    ("redis", "redis", "Redis", []),
    ("redis-nodeport", "redis", "Redis", ["--set", "service.nodePort.enabled=true"]),
    ("redis-existing", "redis", "Redis", ["--set", "persistence.existingClaim=old-redis-data"]),
    ("postgres-seed", "postgres", "Postgres", ["--set-string", "initdb.seedUser.email=o'brien@example.com",
                                               "--set-string", "initdb.seedUser.password=change-me"]),
]


def render(helm: str, root: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for file, release, chart, extra in CHART_RENDERS:
        extra = [str(root / "Helm_charts" / chart / "values-original.yaml") if a == "VALUES_ORIGINAL" else a for a in extra]
        text = subprocess.run([helm, "template", release, str(root / "Helm_charts" / chart), *extra],
                              check=True, capture_output=True, text=True).stdout
        (out / f"{file}.yaml").write_text(text)


def compose_config(root: Path) -> dict:
    env = dict(os.environ, JWT_SECRET="0123456789abcdef0123456789abcdef")
    text = subprocess.run(["docker-compose", "-f", str(root / "docker-compose.yml"), "config"],
                          check=True, capture_output=True, text=True, cwd=root, env=env).stdout
    return yaml.safe_load(text)


def failing_groups(root: Path, rendered: Path, compose: dict, only: str | None = None) -> set[str]:
    k8s = cd.k8s_objects(root)
    groups = {
        "env": lambda: cd.check_env(root, k8s, compose),
        "k8s": lambda: cd.check_k8s(root, k8s),
        "charts": lambda: cd.check_charts(rendered),
        "wiring": lambda: cd.check_wiring(k8s, rendered, compose),
        "placeholders": lambda: cd.check_placeholders(root, k8s, rendered),
        "dockerfiles": lambda: cd.check_dockerfiles(root, k8s),
        "jenkins": lambda: cd.check_jenkins(root, k8s),
        "takeover": lambda: cd.check_takeover(root, k8s, rendered),
        "network": lambda: cd.check_network(root, k8s, rendered),
        "migration": lambda: cd.check_migration(root, k8s, rendered),
        "autoscaling": lambda: cd.check_autoscaling(k8s, rendered),
        "monitoring": lambda: cd.check_monitoring(root, k8s, rendered),
    }
    failed = set()
    for name, run in groups.items():
        if only is not None and name != only:
            continue
        try:
            if run().problems:
                failed.add(name)
        except Exception:  # noqa: BLE001 - a crash on a broken file counts as caught
            failed.add(name)
    return failed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--helm", required=True)
    args = parser.parse_args()
    repo = args.repo.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        for rel in COPIED:
            src, dst = repo / rel, base / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
        base_render = Path(tmp) / "render-base"
        render(args.helm, base, base_render)
        base_compose = compose_config(base)
        unexpected = failing_groups(base, base_render, base_compose)
        if unexpected:
            print(f"selftest: the unmodified files already fail {sorted(unexpected)}; fix those first")
            return 1
        missed = 0
        for i, (group, rel, old, new) in enumerate(CASES):
            work = Path(tmp) / f"case{i}"
            shutil.copytree(base, work)
            path = work / rel
            text = path.read_text()
            if old not in text:
                print(f"  STALE case {i} ({group}): {rel} no longer contains {old[:60]!r}")
                missed += 1
                continue
            path.write_text(text.replace(old, new, 1))
            rendered = base_render
            if rel.startswith("Helm_charts/"):
                rendered = work / "render"
                try:
                    render(args.helm, work, rendered)
                except subprocess.CalledProcessError:
                    continue  # the chart no longer renders: helm template catches it
            compose = compose_config(work) if rel == "docker-compose.yml" else base_compose
            # Only the group meant to catch it runs: the others' verdicts do not matter here.
            failed = failing_groups(work, rendered, compose, only=group)
            if group not in failed:
                print(f"  MISSED case {i}: {rel}: {old[:50]!r} -> {new[:50]!r} should fail {group}")
                missed += 1
            shutil.rmtree(work)
        print(f"selftest: {len(CASES) - missed} of {len(CASES)} injected faults caught")
        return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
