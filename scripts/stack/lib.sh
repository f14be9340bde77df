# shellcheck shell=bash
# The local stack's machinery, sourced by scripts/stack.sh (which sets ROOT and cds there).
# One section per component: start_X / stop_X / pid_X / health_X, then the commands.

COMPONENTS=(postgres rabbitmq mongo redis auth gateway converter balancer nginx prometheus)
# The services that run as replicas (STACK_REPLICAS); replica r > 1 of auth is "auth-r".
SERVICES=(auth gateway converter)

log() { echo "stack: $*" >&2; }
die() {
  echo "stack: error: $*" >&2
  exit 1
}
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
component_known() {
  local c
  for c in "${COMPONENTS[@]}"; do [ "$c" = "$1" ] && return 0; done
  # One replica of a service: auth-2, gateway-3, ...
  [[ $1 =~ ^(auth|gateway|converter)-[2-9]$ ]]
}

# ---------------------------------------------------------------------------------------------
# Settings: environment first, then what the last `up` recorded in stack.env, then defaults.

# name=default; the order is the order of stack.env.
SETTING_DEFAULTS=(
  STACK_PROFILE=release
  STACK_BIND=127.0.0.1
  STACK_FRONTEND_PORT=30001
  STACK_GATEWAY_PORT=30002
  STACK_GATEWAY_ADMIN_PORT=30102
  STACK_AUTH_PORT=30500
  STACK_CONVERTER_PORT=30590
  STACK_POSTGRES_PORT=30432
  STACK_RABBITMQ_PORT=30672
  STACK_RABBITMQ_DIST_PORT=30673
  STACK_RABBITMQ_MGMT_PORT=30674
  STACK_RABBITMQ_MANAGEMENT=1
  STACK_EPMD_PORT=30369
  STACK_MONGO_PORT=30017
  STACK_REDIS=1
  STACK_REDIS_PORT=30379
  STACK_REPLICAS=1
  STACK_PROMETHEUS=0
  STACK_PROMETHEUS_PORT=30909
  STACK_RABBITMQ_PROMETHEUS_PORT=30692
  STACK_MONGO_CACHE_SIZE=256M
  STACK_MONGO_OPLOG_SECONDS=600
  STACK_MONGO_OPLOG_ENTRIES=2000
  STACK_MAX_UPLOAD_BYTES=1073741824
  STACK_DATABASE_NAME=authdb
  STACK_DATABASE_USER=vidconv
  STACK_RABBITMQ_USER=vidconv
  STACK_DEMO_EMAIL=demo@example.com
  RUST_LOG=info
)
SECRET_NAMES=(JWT_SECRET DATABASE_PASSWORD RABBITMQ_PASSWORD DEMO_PASSWORD REDIS_PASSWORD)

# Reads KEY=VALUE lines of a file into variables that are not set in the environment.
fill_from_file() {
  local file=$1 line key value
  [ -f "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in '' | '#'*) continue ;; esac
    key=${line%%=*}
    value=${line#*=}
    [[ $key =~ ^[A-Z_][A-Z0-9_]*$ ]] || continue
    if [ -z "${!key:-}" ]; then printf -v "$key" '%s' "$value"; fi
    # shellcheck disable=SC2163 # exporting the variable named by $key
    export "$key"
  done <"$file"
}

load_settings() {
  STACK_DIR=${STACK_DIR:-$ROOT/.stack}
  case "$STACK_DIR" in /*) ;; *) STACK_DIR=$ROOT/$STACK_DIR ;; esac
  export STACK_DIR
  fill_from_file "$STACK_DIR/stack.env"
  local pair key
  for pair in "${SETTING_DEFAULTS[@]}"; do
    key=${pair%%=*}
    if [ -z "${!key:-}" ]; then printf -v "$key" '%s' "${pair#*=}"; fi
    # shellcheck disable=SC2163
    export "$key"
  done
  case "$STACK_PROFILE" in release | debug) ;; *) die "STACK_PROFILE must be release or debug, not '$STACK_PROFILE'" ;; esac
  case "$STACK_REDIS" in 0 | 1) ;; *) die "STACK_REDIS must be 1 (start Redis) or 0 (no Redis), not '$STACK_REDIS'" ;; esac
  # Replica r listens on the base port + 10 * r: four keep clear of every other default port.
  [[ $STACK_REPLICAS =~ ^[1-4]$ ]] || die "STACK_REPLICAS must be a number from 1 to 4, not '$STACK_REPLICAS'"
  # Where cargo builds: CARGO_TARGET_DIR when set (the Makefile sets it), else what `up` used.
  STACK_TARGET_DIR=${CARGO_TARGET_DIR:-${STACK_TARGET_DIR:-/var/tmp/vidconv-target}}
  STACK_BIN_DIR=$STACK_TARGET_DIR/$STACK_PROFILE
  SECANTUS_VENV=${STACK_SECANTUS_VENV:-$ROOT/.stack/secantus}
  LOGS=$STACK_DIR/logs
  RUN=$STACK_DIR/run
  PG_BIN=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
  PGDIR=${STACK_POSTGRES_DIR:-$STACK_DIR/postgres}
  # A Unix socket path has at most 107 bytes: a deep clone gets its socket directory in /tmp.
  PG_SOCK=$PGDIR/run
  if [ ${#PG_SOCK} -gt 80 ]; then
    PG_SOCK=/tmp/vidconv-pg-$(printf '%s' "$PGDIR" | md5sum | cut -c1-12)
  fi
  RMQ=$STACK_DIR/rabbitmq
  RABBIT_NODE=vidconv-$STACK_RABBITMQ_PORT@localhost
  NGX=$STACK_DIR/nginx
  FRONTEND=$ROOT/frontend
  fill_from_file "$STACK_DIR/secrets.env"
}

record_settings() {
  mkdir -p "$STACK_DIR" "$LOGS" "$RUN"
  local pair key
  {
    echo "# Written by scripts/stack.sh up; the environment overrides these. Delete to reset."
    for pair in "${SETTING_DEFAULTS[@]}"; do
      key=${pair%%=*}
      echo "$key=${!key}"
    done
    echo "STACK_TARGET_DIR=$STACK_TARGET_DIR"
    echo "STACK_POSTGRES_DIR=$PGDIR"
  } >"$STACK_DIR/stack.env"
}

random_secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

# Generates the secrets not given, and keeps the ones in use in secrets.env (mode 600), so a
# restart of one component later uses the same values as the others.
ensure_secrets() {
  local name
  for name in "${SECRET_NAMES[@]}"; do
    if [ -z "${!name:-}" ]; then printf -v "$name" '%s' "$(random_secret)"; fi
    # shellcheck disable=SC2163
    export "$name"
  done
  (
    umask 077
    {
      echo "# Secrets of this stack, generated by scripts/stack.sh up. The environment overrides them."
      for name in "${SECRET_NAMES[@]}"; do echo "$name=${!name}"; done
    } >"$STACK_DIR/secrets.env"
  )
}

# ---------------------------------------------------------------------------------------------
# Processes

# Whether $1 is a live process whose command line contains $2 (guards against reused pids).
pid_matches() {
  local pid=$1 pattern=$2
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern"
}

pid_from_file() {
  local file=$1 pattern=$2 pid
  [ -f "$file" ] || return 0
  pid=$(head -1 "$file" 2>/dev/null | tr -dc '0-9')
  if pid_matches "$pid" "$pattern"; then echo "$pid"; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits until "$@" succeeds; $1 is the number of seconds.
wait_for() {
  local seconds=$1 i
  shift
  for ((i = 0; i < seconds * 2; i++)); do
    "$@" && return 0
    sleep 0.5
  done
  return 1
}

# Sends SIGTERM, waits, then SIGKILL.
stop_pid() {
  local pid=$1 what=$2 seconds=${3:-20}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  if ! wait_for "$seconds" pid_gone "$pid"; then
    log "$what (pid $pid) did not stop within ${seconds}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait_for 5 pid_gone "$pid" || true
  fi
}
pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# Starts a long-running program in its own session (a closed terminal does not stop it).
spawn() {
  local logfile=$1 pidfile=$2
  shift 2
  setsid "$@" >>"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

http_ok() { curl -fsS -o /dev/null -m 3 "$1" 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# Installing what is missing

apt_updated=""
need_pkgs() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    if [ -z "$apt_updated" ]; then
      as_root apt-get update -qq
      apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

install_missing() {
  command -v dpkg >/dev/null || die "this script installs with apt: run it on Debian or Ubuntu"
  need_pkgs postgresql rabbitmq-server ffmpeg clang libclang-dev pkg-config \
    libavcodec-dev libavformat-dev libavutil-dev libswresample-dev libavfilter-dev \
    libavdevice-dev libswscale-dev python3-venv curl gettext-base
  command -v nginx >/dev/null || need_pkgs nginx-light
  if [ "$STACK_REDIS" = 1 ]; then need_pkgs redis-server; fi
  if [ -f "$FRONTEND/package.json" ] && ! command -v npm >/dev/null; then need_pkgs nodejs npm; fi
  command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) and run again"
  PG_BIN=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d | sort -V | tail -1)

  # SecantusDB (GPL, beta), the MongoDB stand-in: its own process, never linked into our binaries.
  if [ ! -x "$SECANTUS_VENV/bin/secantusd-py" ]; then
    log "installing SecantusDB into ${SECANTUS_VENV#"$ROOT"/}"
    python3 -m venv "$SECANTUS_VENV"
    "$SECANTUS_VENV/bin/pip" install -q 'SecantusDB==0.7.0b3'
  fi
}

build_frontend() {
  [ -f "$FRONTEND/package.json" ] || return 0
  if [ ! -f "$FRONTEND/node_modules/.package-lock.json" ] ||
    [ "$FRONTEND/package-lock.json" -nt "$FRONTEND/node_modules/.package-lock.json" ]; then
    log "npm ci (frontend)"
    (cd "$FRONTEND" && npm ci --no-audit --no-fund --loglevel=error) >&2
  fi
  local newer=""
  if [ -f "$FRONTEND/dist/index.html" ]; then
    newer=$(find "$FRONTEND" -path "$FRONTEND/node_modules" -prune -o -path "$FRONTEND/dist" -prune \
      -o -path "$FRONTEND/test-results" -prune -o -type f -newer "$FRONTEND/dist/index.html" -print | head -1)
  fi
  if [ ! -f "$FRONTEND/dist/index.html" ] || [ -n "$newer" ]; then
    log "npm run build (frontend)"
    (cd "$FRONTEND" && npm run build --silent) >&2
  fi
}

build_services() {
  if [ "${STACK_SKIP_BUILD:-0}" = 1 ]; then
    log "STACK_SKIP_BUILD=1: using the binaries in $STACK_BIN_DIR"
    return 0
  fi
  local args=(build --locked --bin auth --bin gateway --bin converter)
  [ "$STACK_PROFILE" = release ] && args+=(--release)
  log "cargo ${args[*]} (profile $STACK_PROFILE)"
  (cd "$ROOT" && CARGO_TARGET_DIR=$STACK_TARGET_DIR cargo "${args[@]}") >&2
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL: our own cluster (initdb + pg_ctl), as the postgres OS user when we are root.

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_log() { echo "$LOGS/postgres.log"; }

pid_postgres() { pid_from_file "$PGDIR/data/postmaster.pid" postgres; }
health_postgres() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$STACK_POSTGRES_PORT" -t 2; }

start_postgres() {
  [ -n "$PG_BIN" ] || die "PostgreSQL is not installed (run: scripts/stack.sh up)"
  if [ -n "$(pid_postgres)" ]; then
    wait_for 30 health_postgres || die "postgres (pid $(pid_postgres)) runs but does not answer"
    log "postgres already running on 127.0.0.1:$STACK_POSTGRES_PORT"
    return 0
  fi
  port_open "$STACK_POSTGRES_PORT" && die "port $STACK_POSTGRES_PORT is taken by something else: set STACK_POSTGRES_PORT"
  mkdir -p "$PGDIR" "$PG_SOCK" "$LOGS"
  touch "$(pg_log)"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$PGDIR" "$PG_SOCK" "$(pg_log)"
    runuser -u postgres -- test -w "$PGDIR" ||
      die "the postgres OS user cannot reach $PGDIR (a parent directory is private, e.g. /root): set STACK_POSTGRES_DIR to a directory it can reach, e.g. /var/tmp/vidconv-postgres"
  fi
  chmod 700 "$PG_SOCK"
  if [ ! -f "$PGDIR/data/PG_VERSION" ]; then
    log "initdb in ${PGDIR#"$ROOT"/}/data"
    as_pg "$PG_BIN/initdb" -D "$PGDIR/data" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=scram-sha-256 >>"$(pg_log)" 2>&1 ||
      die "initdb failed; see $(pg_log)"
  fi
  log "starting postgres on 127.0.0.1:$STACK_POSTGRES_PORT"
  as_pg "$PG_BIN/pg_ctl" -D "$PGDIR/data" -l "$(pg_log)" -w -t 60 -s \
    -o "-c listen_addresses=127.0.0.1 -c port=$STACK_POSTGRES_PORT -c unix_socket_directories=$PG_SOCK" \
    start || die "postgres did not start; see $(pg_log)"
  # The role's password follows secrets.env (or DATABASE_PASSWORD), so it can be changed.
  as_pg "$PG_BIN/psql" -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$STACK_POSTGRES_PORT" -U postgres -d postgres \
    -v user="$STACK_DATABASE_USER" -v password="$DATABASE_PASSWORD" -v db="$STACK_DATABASE_NAME" >/dev/null <<'SQL' ||
SELECT format('CREATE ROLE %I LOGIN', :'user')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
    die "could not create the database role; see $(pg_log)"
}

stop_postgres() {
  [ -n "$(pid_postgres)" ] || return 0
  log "stopping postgres"
  as_pg "$PG_BIN/pg_ctl" -D "$PGDIR/data" -m fast -w -t 60 -s stop || true
}

database_url() {
  echo "postgres://$STACK_DATABASE_USER:$DATABASE_PASSWORD@127.0.0.1:$STACK_POSTGRES_PORT/$STACK_DATABASE_NAME"
}

# ---------------------------------------------------------------------------------------------
# RabbitMQ: our own node with its own cookie (HOME), epmd port, data, logs and config.

rabbit() {
  env HOME="$RMQ/home" \
    RABBITMQ_CONF_ENV_FILE="$RMQ/rabbitmq-env.conf" \
    RABBITMQ_NODENAME="$RABBIT_NODE" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$STACK_RABBITMQ_PORT" \
    RABBITMQ_DIST_PORT="$STACK_RABBITMQ_DIST_PORT" \
    ERL_EPMD_PORT="$STACK_EPMD_PORT" \
    ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_MNESIA_BASE="$RMQ/mnesia" \
    RABBITMQ_LOG_BASE="$LOGS/rabbitmq" \
    RABBITMQ_PID_FILE="$RUN/rabbitmq.pid" \
    RABBITMQ_CONFIG_FILE="$RMQ/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ/enabled_plugins" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    "$@"
}
rabbitmqctl_() { rabbit /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" "$@"; }

pid_rabbitmq() { pid_from_file "$RUN/rabbitmq.pid" beam; }
health_rabbitmq() { [ -n "$(pid_rabbitmq)" ] && port_open "$STACK_RABBITMQ_PORT"; }

write_rabbit_config() {
  mkdir -p "$RMQ/home" "$RMQ/mnesia" "$LOGS/rabbitmq"
  if [ ! -f "$RMQ/home/.erlang.cookie" ]; then
    (umask 077 && random_secret | tr 'a-f' 'A-F' >"$RMQ/home/.erlang.cookie")
    chmod 400 "$RMQ/home/.erlang.cookie"
  fi
  # Ours, so the machine's /etc/rabbitmq/rabbitmq-env.conf (node name, flags) is not read.
  echo "# scripts/stack.sh: intentionally empty" >"$RMQ/rabbitmq-env.conf"
  [ -f "$RMQ/advanced.config" ] || echo "[]." >"$RMQ/advanced.config"
  (
    umask 077
    {
      echo "# Written by scripts/stack.sh on every start."
      echo "default_user = $STACK_RABBITMQ_USER"
      echo "default_pass = $RABBITMQ_PASSWORD"
      echo "default_user_tags.administrator = true"
      echo "log.console = false"
      echo "log.file.level = info"
      if [ "$STACK_RABBITMQ_MANAGEMENT" = 1 ]; then
        echo "management.tcp.ip = 127.0.0.1"
        echo "management.tcp.port = $STACK_RABBITMQ_MGMT_PORT"
      fi
      if [ "$STACK_PROMETHEUS" = 1 ]; then
        echo "prometheus.tcp.ip = 127.0.0.1"
        echo "prometheus.tcp.port = $STACK_RABBITMQ_PROMETHEUS_PORT"
      fi
    } >"$RMQ/rabbitmq.conf"
  )
  local plugins=()
  [ "$STACK_RABBITMQ_MANAGEMENT" = 1 ] && plugins+=(rabbitmq_management)
  # Per-queue metrics (/metrics/per-object) for the alerting rules, as the chart enables them.
  [ "$STACK_PROMETHEUS" = 1 ] && plugins+=(rabbitmq_prometheus)
  local IFS=,
  echo "[${plugins[*]}]." >"$RMQ/enabled_plugins"
}

start_rabbitmq() {
  if [ -n "$(pid_rabbitmq)" ]; then
    wait_for 60 health_rabbitmq || die "rabbitmq (pid $(pid_rabbitmq)) runs but does not answer"
    log "rabbitmq already running on 127.0.0.1:$STACK_RABBITMQ_PORT"
    return 0
  fi
  local port
  for port in "$STACK_RABBITMQ_PORT" "$STACK_RABBITMQ_DIST_PORT"; do
    port_open "$port" && die "port $port is taken by something else: set STACK_RABBITMQ_PORT / STACK_RABBITMQ_DIST_PORT"
  done
  write_rabbit_config
  log "starting rabbitmq node $RABBIT_NODE on 127.0.0.1:$STACK_RABBITMQ_PORT"
  rm -f "$RUN/rabbitmq.pid"
  rabbit setsid /usr/lib/rabbitmq/bin/rabbitmq-server >>"$LOGS/rabbitmq-console.log" 2>&1 </dev/null &
  if ! rabbitmqctl_ -q wait "$RUN/rabbitmq.pid" --timeout 120 >>"$LOGS/rabbitmq-console.log" 2>&1; then
    stop_pid "$(pid_rabbitmq)" rabbitmq 10
    die "rabbitmq did not start; see $LOGS/rabbitmq-console.log and $LOGS/rabbitmq/"
  fi
  # The user's password follows secrets.env (or RABBITMQ_PASSWORD), so it can be changed.
  printf '%s' "$RABBITMQ_PASSWORD" | rabbitmqctl_ -q change_password "$STACK_RABBITMQ_USER" >/dev/null 2>&1 ||
    log "warning: could not set the password of RabbitMQ user $STACK_RABBITMQ_USER"
  wait_for 30 health_rabbitmq || die "rabbitmq does not accept connections on $STACK_RABBITMQ_PORT"
}

stop_rabbitmq() {
  local pid
  pid=$(pid_rabbitmq)
  if [ -n "$pid" ]; then
    log "stopping rabbitmq node $RABBIT_NODE"
    rabbitmqctl_ -q stop "$RUN/rabbitmq.pid" >>"$LOGS/rabbitmq-console.log" 2>&1 || stop_pid "$pid" rabbitmq 30
  fi
  # Our node started its own epmd on STACK_EPMD_PORT; stop it once no node is registered.
  if port_open "$STACK_EPMD_PORT" && ! ERL_EPMD_PORT=$STACK_EPMD_PORT epmd -names 2>/dev/null | grep -q '^name '; then
    ERL_EPMD_PORT=$STACK_EPMD_PORT epmd -kill >/dev/null 2>&1 || true
  fi
}

rabbitmq_url() {
  echo "amqp://$STACK_RABBITMQ_USER:$RABBITMQ_PASSWORD@127.0.0.1:$STACK_RABBITMQ_PORT/%2f"
}

# ---------------------------------------------------------------------------------------------
# SecantusDB, the MongoDB stand-in (see /work/shared/DESIGN.md): persistent, bounded oplog.

pid_mongo() { pid_from_file "$RUN/mongo.pid" secantusd-py; }
health_mongo() { [ -n "$(pid_mongo)" ] && port_open "$STACK_MONGO_PORT"; }

start_mongo() {
  if [ -n "$(pid_mongo)" ]; then
    wait_for 30 health_mongo || die "mongo (pid $(pid_mongo)) runs but does not answer"
    log "mongo (SecantusDB) already running on 127.0.0.1:$STACK_MONGO_PORT"
    return 0
  fi
  port_open "$STACK_MONGO_PORT" && die "port $STACK_MONGO_PORT is taken by something else: set STACK_MONGO_PORT"
  [ -x "$SECANTUS_VENV/bin/secantusd-py" ] || die "SecantusDB is not installed (run: scripts/stack.sh up)"
  mkdir -p "$STACK_DIR/mongo"
  log "starting mongo (SecantusDB) on 127.0.0.1:$STACK_MONGO_PORT"
  # WiredTiger checkpoints every 60 s and then drops old journal files; the oplog (every
  # GridFS chunk passes through it) is pruned by age and by count.
  spawn "$LOGS/mongo.log" "$RUN/mongo.pid" "$SECANTUS_VENV/bin/secantusd-py" \
    --host 127.0.0.1 --port "$STACK_MONGO_PORT" --storage-path "$STACK_DIR/mongo/data" \
    --cache-size "$STACK_MONGO_CACHE_SIZE" --log-level WARNING \
    --oplog-retention-seconds "$STACK_MONGO_OPLOG_SECONDS" --oplog-max-entries "$STACK_MONGO_OPLOG_ENTRIES"
  wait_for 60 health_mongo || die "mongo did not start; see $LOGS/mongo.log"
}

stop_mongo() {
  local pid
  pid=$(pid_mongo)
  [ -n "$pid" ] || return 0
  log "stopping mongo (SecantusDB)"
  stop_pid "$pid" mongo 30
  rm -f "$RUN/mongo.pid"
}

mongodb_uri() { echo "mongodb://127.0.0.1:$STACK_MONGO_PORT/?directConnection=true"; }

# ---------------------------------------------------------------------------------------------
# Redis (Debian's redis-server), unless STACK_REDIS=0: shared state of the replicas (login
# limits, job progress). Nothing persisted: no RDB snapshots, no append-only file.

pid_redis() { pid_from_file "$RUN/redis.pid" redis-server; }
redis_cli() { REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -h 127.0.0.1 -p "$STACK_REDIS_PORT" "$@"; }
health_redis() { [ -n "$(pid_redis)" ] && [ "$(redis_cli ping 2>/dev/null)" = PONG ]; }

start_redis() {
  [ "$STACK_REDIS" = 1 ] || return 0
  if [ -n "$(pid_redis)" ]; then
    wait_for 30 health_redis || die "redis (pid $(pid_redis)) runs but does not answer"
    log "redis already running on 127.0.0.1:$STACK_REDIS_PORT"
    return 0
  fi
  command -v redis-server >/dev/null || need_pkgs redis-server
  port_open "$STACK_REDIS_PORT" && die "port $STACK_REDIS_PORT is taken by something else: set STACK_REDIS_PORT"
  mkdir -p "$STACK_DIR/redis"
  # A file (mode 600), not the command line, so the password does not show in ps.
  (
    umask 077
    cat >"$STACK_DIR/redis/redis.conf" <<CONF
# Written by scripts/stack.sh on every start.
bind 127.0.0.1
port $STACK_REDIS_PORT
requirepass $REDIS_PASSWORD
dir $STACK_DIR/redis
save ""
appendonly no
daemonize no
logfile ""
CONF
  )
  log "starting redis on 127.0.0.1:$STACK_REDIS_PORT"
  spawn "$LOGS/redis.log" "$RUN/redis.pid" redis-server "$STACK_DIR/redis/redis.conf"
  wait_for 30 health_redis || die "redis did not start; see $LOGS/redis.log"
}

stop_redis() {
  local pid
  pid=$(pid_redis)
  [ -n "$pid" ] || return 0
  log "stopping redis"
  stop_pid "$pid" redis 20
  rm -f "$RUN/redis.pid"
}

redis_url() { echo "redis://:$REDIS_PASSWORD@127.0.0.1:$STACK_REDIS_PORT/0"; }

# ---------------------------------------------------------------------------------------------
# The three services, each as STACK_REPLICAS instances. An instance is named after its service
# ("converter") for replica 1 and "converter-2", "converter-3", ... beyond; its pid file and log
# carry that name. With one replica every port is the one of the settings. With several, the
# gateway's and auth's ports belong to the balancer (an nginx in front of the replicas) and
# replica r listens on that port + 10 * r; the loopback-only gateway admin and converter ports
# are the setting's port + 10 * (r - 1), so replica 1 keeps them.

instance_name() { if [ "$2" -eq 1 ]; then echo "$1"; else echo "$1-$2"; fi; }
instance_service() { echo "${1%%-*}"; }
instance_replica() { case "$1" in *-*) echo "${1##*-}" ;; *) echo 1 ;; esac; }
service_instances() {
  local r
  for ((r = 1; r <= STACK_REPLICAS; r++)); do instance_name "$1" "$r"; done
}
# The instances that have a pid file, whatever STACK_REPLICAS says now (to stop them all).
recorded_instances() {
  local f name
  for f in "$RUN/$1.pid" "$RUN/$1"-[0-9].pid; do
    [ -f "$f" ] || continue
    name=${f##*/}
    echo "${name%.pid}"
  done
}

service_port() {
  local svc r base
  svc=$(instance_service "$1")
  r=$(instance_replica "$1")
  case "$svc" in
    auth) base=$STACK_AUTH_PORT ;;
    gateway) base=$STACK_GATEWAY_PORT ;;
    converter) base=$STACK_CONVERTER_PORT ;;
  esac
  if [ "$STACK_REPLICAS" -gt 1 ] && [ "$svc" != converter ]; then
    echo $((base + 10 * r))
  else
    echo $((base + 10 * (r - 1)))
  fi
}
gateway_admin_port() { echo $((STACK_GATEWAY_ADMIN_PORT + 10 * ($(instance_replica "$1") - 1))); }

# Host an instance binds: a lone gateway may be exposed (STACK_BIND); replicas stay on loopback
# behind the balancer, which binds STACK_BIND instead; the others always stay on loopback.
service_bind() {
  if [ "$(instance_service "$1")" = gateway ] && [ "$STACK_REPLICAS" -eq 1 ]; then
    echo "$STACK_BIND"
  else
    echo 127.0.0.1
  fi
}

# The variables the stack sets for each instance; any other variable the service reads (what its
# binary answers to --print-config-keys) passes through from the environment.
service_env() {
  local inst=$1 addr
  addr=$(service_bind "$inst"):$(service_port "$inst")
  case "$(instance_service "$inst")" in
    auth)
      echo "AUTH_ADDR=$addr"
      echo "DATABASE_URL=$(database_url)"
      echo "JWT_SECRET=$JWT_SECRET"
      # Only the gateway talks to auth; it sets X-Forwarded-For to the client it sees (the
      # balancer in front of auth replicas passes the header on untouched).
      echo "TRUSTED_PROXY_HOPS=1"
      ;;
    gateway)
      echo "GATEWAY_ADDR=$addr"
      # /metrics and /readyz: loopback only, whatever STACK_BIND exposes.
      echo "GATEWAY_ADMIN_ADDR=127.0.0.1:$(gateway_admin_port "$inst")"
      # The one auth, or the balancer in front of the auth replicas.
      echo "AUTH_SVC_ADDRESS=127.0.0.1:$STACK_AUTH_PORT"
      echo "JWT_SECRET=$JWT_SECRET"
      echo "MONGODB_URI=$(mongodb_uri)"
      echo "RABBITMQ_URL=$(rabbitmq_url)"
      echo "MAX_UPLOAD_BYTES=$STACK_MAX_UPLOAD_BYTES"
      # nginx (the web page, and the balancer) runs on this machine and names the client in
      # X-Forwarded-For.
      echo "TRUSTED_PROXIES=127.0.0.1/32,::1/128"
      ;;
    converter)
      echo "CONVERTER_ADDR=$addr"
      # Shared by the replicas: each process works in its own converter-<pid>-<random> directory.
      echo "CONVERTER_TMP_DIR=$STACK_DIR/converter-tmp"
      echo "MONGODB_URI=$(mongodb_uri)"
      echo "RABBITMQ_URL=$(rabbitmq_url)"
      ;;
  esac
  # Every service gets it; one that does not read it (yet) ignores it.
  if [ "$STACK_REDIS" = 1 ]; then echo "REDIS_URL=$(redis_url)"; fi
}

# NAME=value for each variable the instance's service reads ($2: what its binary answers to
# --print-config-keys, one name per line) that the stack does not set and this environment does.
service_passthrough() {
  local inst=$1 keys=$2 managed name
  # REDIS_URL is the stack's to set (STACK_REDIS): never the machine's Redis from the environment.
  managed=" $(service_env "$inst" | cut -d= -f1 | tr '\n' ' ') REDIS_URL DATABASE_HOST DATABASE_PORT DATABASE_NAME DATABASE_USER DATABASE_PASSWORD MONGODB_VIDEOS_URI MONGODB_MP3S_URI "
  for name in $keys; do
    [[ $name =~ ^[A-Z][A-Z0-9_]*$ ]] || continue # never anything but a variable name
    case "$managed" in *" $name "*) continue ;; esac
    if [ -n "${!name:-}" ]; then echo "$name=${!name}"; fi
  done
}

# Any build profile: a stack started as debug is still found when STACK_PROFILE says release.
pid_service() { pid_from_file "$RUN/$1.pid" "/$(instance_service "$1")"; }
# The port of an instance's /readyz: the gateway's admin listener, the others' only port.
health_port() {
  if [ "$(instance_service "$1")" = gateway ]; then gateway_admin_port "$1"; else service_port "$1"; fi
}
health_service() { http_ok "http://127.0.0.1:$(health_port "$1")/readyz"; }

start_service() {
  local inst=$1 svc port pid bin
  svc=$(instance_service "$inst")
  [ "$(instance_replica "$inst")" -le "$STACK_REPLICAS" ] ||
    die "$inst: the stack runs $STACK_REPLICAS replica(s) of $svc (STACK_REPLICAS)"
  port=$(service_port "$inst")
  pid=$(pid_service "$inst")
  if [ -n "$pid" ]; then
    if wait_for 60 health_service "$inst"; then
      log "$inst already running (pid $pid) on port $port"
      return 0
    fi
    die "$inst (pid $pid) runs but its /readyz does not answer 200; see $LOGS/$inst.log"
  fi
  port_open "$port" && die "port $port is taken by something else: set STACK_${svc^^}_PORT"
  if [ "$svc" = gateway ] && port_open "$(gateway_admin_port "$inst")"; then
    die "port $(gateway_admin_port "$inst") is taken by something else: set STACK_GATEWAY_ADMIN_PORT"
  fi
  bin=$STACK_BIN_DIR/$svc
  [ -x "$bin" ] || die "$bin is not built (run: scripts/stack.sh up)"
  local envs=() keys
  if [ "$svc" = converter ]; then mkdir -p "$STACK_DIR/converter-tmp"; fi
  # The binary names what it reads, without reading its configuration or connecting anywhere
  # (the timeout: a binary older than the flag would start serving instead; generous, since a
  # freshly linked debug binary on a loaded machine once took more than 10 s to answer).
  keys=$(timeout 60 "$bin" --print-config-keys) ||
    die "$bin --print-config-keys failed; rebuild it (scripts/stack.sh up)"
  mapfile -t envs < <(service_env "$inst"; service_passthrough "$inst" "$keys")
  log "starting $inst on $(service_bind "$inst"):$port"
  echo "----- $(date -u +%FT%TZ) start $inst" >>"$LOGS/$inst.log"
  spawn "$LOGS/$inst.log" "$RUN/$inst.pid" env -i PATH="$PATH" HOME="${HOME:-/}" \
    RUST_LOG="$RUST_LOG" NO_COLOR=1 ${LOG_FORMAT:+LOG_FORMAT=$LOG_FORMAT} "${envs[@]}" "$bin"
  if ! wait_for 60 health_service "$inst"; then
    log "$inst did not become ready on port $port; last lines of $LOGS/$inst.log:"
    tail -n 20 "$LOGS/$inst.log" >&2
    return 1
  fi
}

stop_service() {
  local inst=$1 pid
  pid=$(pid_service "$inst")
  if [ -n "$pid" ]; then
    log "stopping $inst (pid $pid)"
    stop_pid "$pid" "$inst" 30
  fi
  rm -f "$RUN/$inst.pid"
}

# ---------------------------------------------------------------------------------------------
# The balancer (STACK_REPLICAS > 1): an nginx of its own on the gateway's port, spreading the
# API over the gateway replicas, and on auth's port, spreading the gateways' calls over the auth
# replicas. The web page's nginx balances /api over the gateways itself.

pid_balancer() { pid_from_file "$RUN/balancer.pid" nginx; }
health_balancer() { port_open "$STACK_GATEWAY_PORT" && port_open "$STACK_AUTH_PORT"; }

# "server host:port;" lines of an upstream over the instances of $1.
upstream_servers() {
  local inst
  for inst in $(service_instances "$1"); do
    echo "    server 127.0.0.1:$(service_port "$inst") max_fails=1 fail_timeout=5s;"
  done
}

write_balancer_config() {
  local dir=$STACK_DIR/balancer
  mkdir -p "$dir"/{client_body,proxy,fastcgi,uwsgi,scgi}_temp
  local user_line=""
  if [ "$(id -u)" -eq 0 ]; then
    user_line="user root;"
    if id www-data >/dev/null 2>&1; then
      user_line="user www-data;"
      chown -R www-data: "$dir"/*_temp
    fi
  fi
  cat >"$dir/nginx.conf" <<EOF
# Written by scripts/stack.sh (STACK_REPLICAS=$STACK_REPLICAS) on every start.
$user_line
worker_processes 1;
pid $RUN/balancer.pid;
error_log $LOGS/balancer-error.log warn;
events { worker_connections 1024; }
http {
  access_log $LOGS/balancer-access.log;
  client_body_temp_path $dir/client_body_temp;
  proxy_temp_path $dir/proxy_temp;
  fastcgi_temp_path $dir/fastcgi_temp;
  uwsgi_temp_path $dir/uwsgi_temp;
  scgi_temp_path $dir/scgi_temp;
  server_tokens off;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host \$host;
  # A refused connection (a replica down) goes to the next replica; a request already sent is
  # never repeated (nginx does not retry POSTs).
  proxy_next_upstream error timeout;
  proxy_connect_timeout 2s;

  upstream gateways {
$(upstream_servers gateway)
    keepalive 16;
    # Below the gateway's idle timeout, so a connection it is closing is never reused.
    keepalive_timeout 5s;
  }
  upstream auths {
$(upstream_servers auth)
    keepalive 16;
    keepalive_timeout 5s;
  }

  # The API, as the lone gateway served it: uploads and downloads stream through, event
  # streams stay open. This is the edge: X-Forwarded-For is the client's address, nothing else.
  server {
    listen $STACK_BIND:$STACK_GATEWAY_PORT;
    client_max_body_size $(max_upload_size);
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_max_temp_file_size 0;
    proxy_send_timeout 600s;
    proxy_read_timeout 1h;
    proxy_set_header X-Forwarded-For \$remote_addr;
    location / { proxy_pass http://gateways; }
    # No replica answers: the API's error shape, as the web page's nginx gives it.
    error_page 502 503 504 = @unavailable;
    location @unavailable {
      default_type application/json;
      add_header Retry-After "5" always;
      return 503 '{"error":"the service is unavailable right now, try again shortly"}';
    }
  }

  # Auth, for the gateways only. X-Forwarded-For passes untouched: auth counts the gateway as
  # its one proxy (TRUSTED_PROXY_HOPS=1), as without the balancer.
  server {
    listen 127.0.0.1:$STACK_AUTH_PORT;
    location / { proxy_pass http://auths; }
  }
}
EOF
}

balancer_() { nginx -p "$STACK_DIR/balancer" -c "$STACK_DIR/balancer/nginx.conf" -e "$LOGS/balancer-error.log" "$@"; }

start_balancer() {
  [ "$STACK_REPLICAS" -gt 1 ] || return 0
  if [ -n "$(pid_balancer)" ]; then
    log "balancer already running on ports $STACK_GATEWAY_PORT and $STACK_AUTH_PORT"
    return 0
  fi
  local port
  for port in "$STACK_GATEWAY_PORT" "$STACK_AUTH_PORT"; do
    port_open "$port" && die "port $port is taken by something else (a stack with STACK_REPLICAS=1 still running? make down first)"
  done
  write_balancer_config
  balancer_ -t -q 2>>"$LOGS/balancer-error.log" || die "nginx rejects $STACK_DIR/balancer/nginx.conf; see $LOGS/balancer-error.log"
  log "starting the balancer on $STACK_BIND:$STACK_GATEWAY_PORT (gateways) and 127.0.0.1:$STACK_AUTH_PORT (auths)"
  balancer_ || die "the balancer did not start; see $LOGS/balancer-error.log"
  wait_for 20 health_balancer || die "the balancer does not listen; see $LOGS/balancer-error.log"
}

stop_balancer() {
  local pid
  pid=$(pid_balancer)
  [ -n "$pid" ] || return 0
  log "stopping the balancer"
  kill -QUIT "$pid" 2>/dev/null || true
  wait_for 20 pid_gone "$pid" || stop_pid "$pid" balancer 5
}

# ---------------------------------------------------------------------------------------------
# nginx serving frontend/dist with the frontend's server block (frontend/nginx.conf).

pid_nginx() { pid_from_file "$RUN/nginx.pid" nginx; }
health_nginx() { http_ok "http://127.0.0.1:$STACK_FRONTEND_PORT/healthz"; }

# Size for nginx's client_max_body_size: the gateway's byte limit rounded up to MiB.
max_upload_size() { echo "$(((STACK_MAX_UPLOAD_BYTES + 1048575) / 1048576))m"; }

write_nginx_config() {
  mkdir -p "$NGX"/{client_body,proxy,fastcgi,uwsgi,scgi}_temp
  local user_line=""
  if [ "$(id -u)" -eq 0 ]; then
    # Workers drop to www-data when it can read the files; else (a clone under /root) root.
    if id www-data >/dev/null 2>&1 && runuser -u www-data -- test -r "$FRONTEND/dist/index.html"; then
      user_line="user www-data;"
      chown -R www-data: "$NGX"/*_temp
    else
      user_line="user root;"
    fi
  fi
  # The template's `listen ${LISTEN_PORT};` takes host:port, so nginx binds STACK_BIND like the
  # gateway; a template that also listens on [::] gets the bare port.
  local listen=$STACK_BIND:$STACK_FRONTEND_PORT
  # shellcheck disable=SC2016 # a literal of the template
  grep -qF '[::]:${LISTEN_PORT}' "$FRONTEND/nginx.conf" && listen=$STACK_FRONTEND_PORT
  local gateways=() inst
  for inst in $(service_instances gateway); do gateways+=("127.0.0.1:$(service_port "$inst")"); done
  # shellcheck disable=SC2016 # envsubst takes the variable names literally
  LISTEN_PORT="$listen" STATIC_ROOT="$FRONTEND/dist" \
    GATEWAY_UPSTREAM="${gateways[0]}" MAX_UPLOAD_SIZE="$(max_upload_size)" \
    envsubst '${LISTEN_PORT} ${STATIC_ROOT} ${GATEWAY_UPSTREAM} ${MAX_UPLOAD_SIZE}' \
    <"$FRONTEND/nginx.conf" >"$NGX/server.conf"
  # The template's upstream names one gateway; with replicas the others join it, so nginx
  # balances /api over them all (a replica refusing connections is skipped for 5 s).
  if [ ${#gateways[@]} -gt 1 ]; then
    local others
    others=$(printf '    server %s max_fails=1 fail_timeout=5s;\\n' "${gateways[@]:1}")
    awk -v first="server ${gateways[0]};" -v others="$others" '
      /^upstream vidconv_gateway/ { inside = 1 }
      { print }
      inside && index($0, first) { printf "%s", others; inside = 0 }
    ' "$NGX/server.conf" >"$NGX/server.conf.new"
    grep -qF "${gateways[1]}" "$NGX/server.conf.new" ||
      die "could not add the gateway replicas to the upstream of frontend/nginx.conf"
    mv "$NGX/server.conf.new" "$NGX/server.conf"
  fi
  cat >"$NGX/nginx.conf" <<EOF
# Written by scripts/stack.sh: a minimal main config around the frontend's server block.
$user_line
worker_processes 1;
pid $RUN/nginx.pid;
error_log $LOGS/nginx-error.log warn;
events { worker_connections 512; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log $LOGS/nginx-access.log;
  sendfile on;
  client_body_temp_path $NGX/client_body_temp;
  proxy_temp_path $NGX/proxy_temp;
  fastcgi_temp_path $NGX/fastcgi_temp;
  uwsgi_temp_path $NGX/uwsgi_temp;
  scgi_temp_path $NGX/scgi_temp;
  include $NGX/server.conf;
}
EOF
}

nginx_() { nginx -p "$NGX" -c "$NGX/nginx.conf" -e "$LOGS/nginx-error.log" "$@"; }

start_nginx() {
  if [ ! -f "$FRONTEND/nginx.conf" ] || [ ! -f "$FRONTEND/dist/index.html" ]; then
    log "notice: no frontend yet (frontend/nginx.conf and frontend/dist); nginx not started"
    return 0
  fi
  if [ -n "$(pid_nginx)" ]; then
    log "nginx already running on port $STACK_FRONTEND_PORT"
    return 0
  fi
  port_open "$STACK_FRONTEND_PORT" && die "port $STACK_FRONTEND_PORT is taken by something else: set STACK_FRONTEND_PORT"
  write_nginx_config
  nginx_ -t -q 2>>"$LOGS/nginx-error.log" || die "nginx rejects the configuration in $NGX; see $LOGS/nginx-error.log"
  log "starting nginx on $STACK_BIND:$STACK_FRONTEND_PORT"
  nginx_ || die "nginx did not start; see $LOGS/nginx-error.log"
  wait_for 20 health_nginx || die "nginx does not answer on $STACK_FRONTEND_PORT; see $LOGS/nginx-error.log"
}

stop_nginx() {
  local pid
  pid=$(pid_nginx)
  [ -n "$pid" ] || return 0
  log "stopping nginx"
  kill -QUIT "$pid" 2>/dev/null || true
  wait_for 20 pid_gone "$pid" || stop_pid "$pid" nginx 5
}

# ---------------------------------------------------------------------------------------------
# Prometheus (Debian's package), with STACK_PROMETHEUS=1: scrapes the services and RabbitMQ's
# per-queue metrics and evaluates Helm_charts/Monitoring/files/rules.yml, as in the cluster.

pid_prometheus() { pid_from_file "$RUN/prometheus.pid" prometheus; }
health_prometheus() { http_ok "http://127.0.0.1:$STACK_PROMETHEUS_PORT/-/ready"; }

write_prometheus_config() {
  local dir=$STACK_DIR/prometheus
  mkdir -p "$dir/data"
  cp "$ROOT/Helm_charts/Monitoring/files/rules.yml" "$dir/rules.yml"
  # job = the service's name, as the ServiceMonitors and the kubernetes-pods job give it; one
  # target per replica.
  local gateways="" auths="" converters="" inst
  for inst in $(service_instances gateway); do gateways+="${gateways:+, }\"127.0.0.1:$(gateway_admin_port "$inst")\""; done
  for inst in $(service_instances auth); do auths+="${auths:+, }\"127.0.0.1:$(service_port "$inst")\""; done
  for inst in $(service_instances converter); do converters+="${converters:+, }\"127.0.0.1:$(service_port "$inst")\""; done
  cat >"$dir/prometheus.yml" <<EOF
# Written by scripts/stack.sh (STACK_PROMETHEUS=1) on every start.
global:
  scrape_interval: 15s
  evaluation_interval: 15s
rule_files:
  - $dir/rules.yml
scrape_configs:
  - job_name: gateway
    static_configs: [{targets: [$gateways]}]
  - job_name: auth
    static_configs: [{targets: [$auths]}]
  - job_name: converter
    static_configs: [{targets: [$converters]}]
  - job_name: rabbitmq
    metrics_path: /metrics/per-object
    static_configs: [{targets: ["127.0.0.1:$STACK_RABBITMQ_PROMETHEUS_PORT"]}]
EOF
}

start_prometheus() {
  [ "$STACK_PROMETHEUS" = 1 ] || return 0
  if [ -n "$(pid_prometheus)" ]; then
    log "prometheus already running on 127.0.0.1:$STACK_PROMETHEUS_PORT"
    return 0
  fi
  command -v prometheus >/dev/null || need_pkgs prometheus
  port_open "$STACK_PROMETHEUS_PORT" && die "port $STACK_PROMETHEUS_PORT is taken by something else: set STACK_PROMETHEUS_PORT"
  write_prometheus_config
  local dir=$STACK_DIR/prometheus
  promtool check config "$dir/prometheus.yml" >>"$LOGS/prometheus.log" 2>&1 \
    || die "promtool rejects $dir/prometheus.yml; see $LOGS/prometheus.log"
  log "starting prometheus on 127.0.0.1:$STACK_PROMETHEUS_PORT"
  spawn "$LOGS/prometheus.log" "$RUN/prometheus.pid" prometheus --config.file="$dir/prometheus.yml" \
    --storage.tsdb.path="$dir/data" --storage.tsdb.retention.time=7d \
    --web.listen-address="127.0.0.1:$STACK_PROMETHEUS_PORT"
  wait_for 30 health_prometheus || die "prometheus does not answer on $STACK_PROMETHEUS_PORT; see $LOGS/prometheus.log"
}

stop_prometheus() {
  local pid
  pid=$(pid_prometheus)
  [ -n "$pid" ] || return 0
  log "stopping prometheus"
  stop_pid "$pid" prometheus 20
}

# ---------------------------------------------------------------------------------------------
# Dispatch by component

# A component is a service (all its replicas), one instance of a service ("converter-2"), or
# one of the others.
start_component() {
  mkdir -p "$LOGS" "$RUN"
  [ -f "$STACK_DIR/secrets.env" ] || ensure_secrets
  local inst
  case "$1" in
    auth | gateway | converter)
      for inst in $(service_instances "$1"); do start_service "$inst" || return 1; done
      ;;
    auth-* | gateway-* | converter-*) start_service "$1" ;;
    *) "start_$1" ;;
  esac
}
stop_component() {
  local inst
  case "$1" in
    auth | gateway | converter)
      for inst in $(recorded_instances "$1"); do stop_service "$inst"; done
      ;;
    auth-* | gateway-* | converter-*) stop_service "$1" ;;
    *) "stop_$1" ;;
  esac
}
component_pid() {
  case "$1" in
    auth* | gateway* | converter*) pid_service "$1" ;;
    *) "pid_$1" ;;
  esac
}
component_health() {
  case "$1" in
    auth* | gateway* | converter*) health_service "$1" ;;
    *) "health_$1" ;;
  esac
}
component_address() {
  case "$1" in
    postgres) echo "127.0.0.1:$STACK_POSTGRES_PORT" ;;
    rabbitmq) echo "127.0.0.1:$STACK_RABBITMQ_PORT" ;;
    mongo) echo "127.0.0.1:$STACK_MONGO_PORT" ;;
    redis) echo "127.0.0.1:$STACK_REDIS_PORT" ;;
    balancer) echo "$STACK_BIND:$STACK_GATEWAY_PORT,:$STACK_AUTH_PORT" ;;
    nginx) echo "$STACK_BIND:$STACK_FRONTEND_PORT" ;;
    prometheus) echo "127.0.0.1:$STACK_PROMETHEUS_PORT" ;;
    *) echo "$(service_bind "$1"):$(service_port "$1")" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# Commands

seed_demo_user() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -m 30 -X POST -u "$STACK_DEMO_EMAIL:$DEMO_PASSWORD" \
    "http://127.0.0.1:$STACK_GATEWAY_PORT/register" || true)
  case "$code" in
    200 | 201 | 409) return 0 ;;
    *)
      log "warning: registering the demo user answered HTTP $code"
      return 1
      ;;
  esac
}

stack_up() {
  load_settings
  install_missing
  mkdir -p "$STACK_DIR" "$LOGS" "$RUN"
  record_settings
  ensure_secrets
  build_services
  build_frontend
  local c
  # The balancer before the gateways: it is their way to auth when auth has replicas.
  for c in postgres rabbitmq mongo redis auth balancer gateway converter nginx prometheus; do
    start_component "$c" || die "$c failed to start (scripts/stack.sh logs $c)"
  done
  seed_demo_user || true
  local host=localhost
  [ "$STACK_BIND" = 127.0.0.1 ] || host=$(hostname -f 2>/dev/null || hostname)
  {
    echo
    echo "The stack is up (profile $STACK_PROFILE, in ${STACK_DIR#"$ROOT"/})."
    if [ -n "$(pid_nginx)" ]; then
      echo "  frontend     http://$host:$STACK_FRONTEND_PORT"
    else
      echo "  frontend     (not started: no frontend build yet)"
    fi
    echo "  gateway API  http://$host:$STACK_GATEWAY_PORT    gateway health/metrics http://127.0.0.1:$STACK_GATEWAY_ADMIN_PORT/readyz"
    echo "  auth         http://127.0.0.1:$STACK_AUTH_PORT    converter health http://127.0.0.1:$STACK_CONVERTER_PORT/readyz"
    if [ "$STACK_REPLICAS" -gt 1 ]; then
      local inst line svc
      echo "  replicas     $STACK_REPLICAS of each service; the gateway and auth ports above are the balancer's:"
      for svc in "${SERVICES[@]}"; do
        line=""
        for inst in $(service_instances "$svc"); do line+=" $inst :$(health_port "$inst")"; done
        echo "               $svc health/metrics:$line"
      done
    fi
    echo "  postgres     $(database_url)"
    echo "  rabbitmq     $(rabbitmq_url)"
    if [ "$STACK_RABBITMQ_MANAGEMENT" = 1 ]; then
      echo "  rabbitmq UI  http://127.0.0.1:$STACK_RABBITMQ_MGMT_PORT  (user $STACK_RABBITMQ_USER, password in secrets.env)"
    fi
    echo "  mongo        $(mongodb_uri)"
    if [ "$STACK_REDIS" = 1 ]; then
      echo "  redis        $(redis_url)"
    else
      echo "  redis        (off: STACK_REDIS=0; the services keep their state per process)"
    fi
    if [ "$STACK_PROMETHEUS" = 1 ]; then
      echo "  prometheus   http://127.0.0.1:$STACK_PROMETHEUS_PORT  (alerts: /alerts; rules of Helm_charts/Monitoring)"
    fi
    echo "Demo account:  $STACK_DEMO_EMAIL / $DEMO_PASSWORD"
    echo "  TOKEN=\$(curl -s -X POST -u '$STACK_DEMO_EMAIL:$DEMO_PASSWORD' http://$host:$STACK_GATEWAY_PORT/login)"
    if [ "$STACK_DIR" = "$ROOT/.stack" ]; then
      echo "Logs:          $LOGS/  (make logs), secrets in $STACK_DIR/secrets.env"
      echo "Stop:          make down    status: make status    wipe: make clean"
    else
      echo "Logs:          $LOGS/, secrets in $STACK_DIR/secrets.env"
      echo "Stop:          STACK_DIR=$STACK_DIR scripts/stack.sh down   (or status, logs, clean)"
    fi
  }
}

stack_down() {
  load_settings
  local c
  for c in prometheus nginx gateway converter balancer auth redis mongo rabbitmq postgres; do stop_component "$c"; done
  log "stopped"
}

stack_status() {
  load_settings
  local c pid health bad=0
  local rows=() svc
  for c in "${COMPONENTS[@]}"; do
    case "$c" in
      auth | gateway | converter) mapfile -t -O "${#rows[@]}" rows < <(service_instances "$c") ;;
      *) rows+=("$c") ;;
    esac
  done
  printf '%-12s %-8s %-24s %s\n' component pid address health
  for c in "${rows[@]}"; do
    pid=$(component_pid "$c")
    if [ -z "$pid" ]; then
      health=stopped
      if [ "$c" = nginx ] && [ ! -f "$FRONTEND/nginx.conf" ]; then
        health="(no frontend yet)"
      elif [ "$c" = prometheus ] && [ "$STACK_PROMETHEUS" != 1 ]; then
        health="(off; STACK_PROMETHEUS=1 make up)"
      elif [ "$c" = redis ] && [ "$STACK_REDIS" != 1 ]; then
        health="(off; STACK_REDIS=0)"
      elif [ "$c" = balancer ] && [ "$STACK_REPLICAS" -eq 1 ]; then
        health="(off; one replica of each service)"
      else
        bad=1
      fi
    elif component_health "$c"; then
      health=ok
    else
      health=unhealthy
      bad=1
    fi
    printf '%-12s %-8s %-24s %s\n' "$c" "${pid:--}" "$(component_address "$c")" "$health"
  done
  return $bad
}

stack_logs() {
  load_settings
  local files=() c f
  if [ $# -eq 0 ]; then
    set -- "${COMPONENTS[@]}"
  fi
  for c in "$@"; do
    case "$c" in
      rabbitmq) files+=("$LOGS/rabbitmq/$RABBIT_NODE.log") ;;
      nginx) files+=("$LOGS/nginx-error.log" "$LOGS/nginx-access.log") ;;
      prometheus) files+=("$LOGS/prometheus.log") ;;
      balancer) files+=("$LOGS/balancer-error.log" "$LOGS/balancer-access.log") ;;
      auth | gateway | converter)
        # Every replica's log, also of replicas a larger STACK_REPLICAS left behind.
        files+=("$LOGS/$c.log")
        for f in "$LOGS/$c"-[0-9].log; do files+=("$f"); done
        ;;
      *) component_known "$c" || die "unknown component '$c'" && files+=("$LOGS/$c.log") ;;
    esac
  done
  local existing=()
  for f in "${files[@]}"; do [ -f "$f" ] && existing+=("$f"); done
  [ ${#existing[@]} -gt 0 ] || die "no logs yet in $LOGS"
  if [ -n "${STACK_LOGS_NO_FOLLOW:-}" ]; then
    tail -n "${STACK_LOGS_LINES:-40}" "${existing[@]}"
  else
    tail -n "${STACK_LOGS_LINES:-20}" -F "${existing[@]}"
  fi
}

stack_clean() {
  load_settings
  stack_down
  # Only what this script made: other tools keep their own things under .stack/ too (the
  # SecantusDB program, test-deps.sh's state, the e2e stack in .stack/e2e).
  if [ -d "$STACK_DIR" ]; then
    log "wiping the stack's data, logs and secrets in $STACK_DIR"
    local entry
    for entry in postgres rabbitmq mongo redis balancer nginx prometheus logs run converter-tmp stack.env secrets.env; do
      rm -rf "${STACK_DIR:?}/$entry"
    done
  fi
  case "$PGDIR" in "$STACK_DIR"/*) ;; *) rm -rf "$PGDIR" ;; esac
  case "$PG_SOCK" in /tmp/vidconv-pg-*) rm -rf "$PG_SOCK" ;; esac
}
