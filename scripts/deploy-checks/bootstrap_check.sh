#!/usr/bin/env bash
# The charts' data bootstrap against real servers of this machine (Debian's PostgreSQL and
# RabbitMQ, which scripts/test-deps.sh provides):
#   Postgres: the rendered /docker-entrypoint-initdb.d scripts (init.sql and the optional seed
#     user) run in file order with ON_ERROR_STOP, as the postgres image runs them, in a fresh
#     database; the table has the original's columns and identity; a second run changes nothing.
#   RabbitMQ: a throwaway second broker node boots with the chart's rendered rabbitmq.conf
#     snippet and definitions.json (management plugin on), on free ports; the user logs in, the
#     queues video and video.dlq are durable with no arguments, consumer_timeout is applied, no
#     default guest user was made, and the Prometheus endpoint serves the per-queue series the
#     alerting rules use (Helm_charts/Monitoring/files/rules.yml).
#   Redis: a throwaway redis-server (Debian's) boots with the chart's rendered redis.conf and the
#     Secret's auth.conf on a free port; it refuses commands without the password, answers with
#     it, has the append-only file and maxmemory of the values, and knows no FLUSHALL.
# Usage: bootstrap_check.sh HELM; prints what it checked; exit 1 on the first failure.
set -euo pipefail
HELM=$1
cd "$(dirname "$0")/../.."
WORK=$(mktemp -d /tmp/vidconv-bootstrap.XXXXXX)
chmod 755 "$WORK"
NODE="vidconv-deploycheck-$$@localhost"
DB="deploycheck_$$_$RANDOM"
PY=${PYTHON:-.stack/deploy-tools/venv/bin/python}
PG_URL_BASE=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# The second run of CREATE TABLE IF NOT EXISTS notices that the table exists: expected, not shown.
export PGOPTIONS="--client-min-messages=warning"

cleanup() {
  if [[ -f $WORK/redis.pid ]]; then kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true; fi
  rabbitmqctl -q -n "$NODE" stop >/dev/null 2>&1 || true
  psql -q "$PG_URL_BASE" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  psql -q "$PG_URL_BASE" -c "DROP DATABASE IF EXISTS ${DB}_orig" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }

# --- Postgres -----------------------------------------------------------------------------
"$HELM" template postgres Helm_charts/Postgres --set-string "initdb.seedUser.email=o'brien@example.com" \
  --set-string initdb.seedUser.password=change-me > "$WORK/pg.yaml"
"$PY" - "$WORK" <<'EOF'
import sys, yaml
work = sys.argv[1]
for doc in yaml.safe_load_all(open(f"{work}/pg.yaml")):
    if doc and doc["kind"] in ("ConfigMap", "Secret"):
        for name, text in (doc.get("data") or {}).items() | (doc.get("stringData") or {}).items():
            if name.endswith(".sql"):
                open(f"{work}/initdb-{name}", "w").write(text)
EOF
ls "$WORK"/initdb-*.sql >/dev/null 2>&1 || fail "postgres chart rendered no init scripts"
psql -q -v ON_ERROR_STOP=1 "$PG_URL_BASE" -c "CREATE DATABASE $DB" >/dev/null
PG_URL="${PG_URL_BASE%/*}/$DB"
for run in 1 2; do
  for f in "$WORK"/initdb-*.sql; do  # glob order is file order, as in docker-entrypoint-initdb.d
    psql -q -v ON_ERROR_STOP=1 "$PG_URL" -f "$f" >/dev/null || fail "postgres: $(basename "$f") failed (run $run)"
  done
done
columns=$(psql -At "$PG_URL" -c "SELECT string_agg(column_name || ' ' || data_type || ' ' || coalesce(character_maximum_length::text, '-') || ' ' || is_nullable || ' ' || is_identity || ' ' || coalesce(identity_generation, '-'), ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'auth_user'")
want="id integer - NO YES ALWAYS, email character varying 255 NO NO -, password character varying 255 NO NO -"
[[ $columns == "$want" ]] || fail "postgres: auth_user is ($columns), want ($want)"
seeded=$(psql -At "$PG_URL" -c "SELECT count(*) FROM auth_user WHERE email = 'o''brien@example.com'")
[[ $seeded == 1 ]] || fail "postgres: seed user rows after two runs: $seeded, want 1"
scripts=("$WORK"/initdb-*.sql)
echo "postgres: init scripts ${scripts[*]##*/initdb-} ran twice: auth_user ($columns), one seed row"

# The takeover's copy of the original's users (docs/migrating-from-python.md, "Postgres"): rows of a
# table made the original's way (its ids have a gap) go out and in with \copy, ids kept, and the
# identity continues after the highest id.
OLD_DB="${DB}_orig"
psql -q -v ON_ERROR_STOP=1 "$PG_URL_BASE" -c "CREATE DATABASE $OLD_DB" >/dev/null
OLD_URL="${PG_URL_BASE%/*}/$OLD_DB"
psql -q -v ON_ERROR_STOP=1 "$OLD_URL" >/dev/null <<'SQL'
CREATE TABLE auth_user (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email VARCHAR (255) NOT NULL, password VARCHAR (255) NOT NULL);
INSERT INTO auth_user (email, password) VALUES ('first@example.com', '123456'), ('gone@example.com', 'x'), ('third@example.com', 'pw,with "quotes"');
DELETE FROM auth_user WHERE email = 'gone@example.com';
SQL
psql -q -v ON_ERROR_STOP=1 "$OLD_URL" -c "\copy auth_user TO STDOUT WITH (FORMAT csv)" > "$WORK/auth_user.csv"
psql -q -v ON_ERROR_STOP=1 "$PG_URL" -c "TRUNCATE auth_user" >/dev/null
psql -q -v ON_ERROR_STOP=1 "$PG_URL" -c "\copy auth_user (id, email, password) FROM STDIN WITH (FORMAT csv)" < "$WORK/auth_user.csv"
psql -q -v ON_ERROR_STOP=1 "$PG_URL" -c "SELECT setval(pg_get_serial_sequence('auth_user', 'id'), (SELECT max(id) FROM auth_user))" >/dev/null
copied=$(psql -At "$PG_URL" -c "SELECT string_agg(id || ' ' || email || ' ' || password, ';' ORDER BY id) FROM auth_user")
next_id=$(psql -At "$PG_URL" -c "INSERT INTO auth_user (email, password) VALUES ('new@example.com', 'x') RETURNING id" | sed -n 1p)
psql -q "$PG_URL_BASE" -c "DROP DATABASE IF EXISTS $OLD_DB" >/dev/null
[[ $copied == '1 first@example.com 123456;3 third@example.com pw,with "quotes"' ]] || fail "postgres: copied rows are ($copied)"
[[ $next_id == 4 ]] || fail "postgres: the next id after the copy is $next_id, want 4"
echo "postgres: the original's rows copied with their ids ($copied), next id $next_id"

# --- RabbitMQ -----------------------------------------------------------------------------
read -r AMQP MGMT DIST PROM < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
"$HELM" template rabbitmq Helm_charts/RabbitMQ --set service.amqpPort="$AMQP" \
  --set service.managementPort="$MGMT" --set service.prometheusPort="$PROM" > "$WORK/rabbit.yaml"
"$PY" - "$WORK" <<'EOF'
import sys, yaml
work = sys.argv[1]
for doc in yaml.safe_load_all(open(f"{work}/rabbit.yaml")):
    if doc and doc["kind"] == "ConfigMap":
        conf = doc["data"]["20-vidconv.conf"]
        # The path the StatefulSet mounts the Secret at, moved to this throwaway node's folder.
        assert "/etc/rabbitmq/definitions.json" in conf
        open(f"{work}/rabbitmq.conf", "w").write(conf.replace("/etc/rabbitmq/definitions.json", f"{work}/definitions.json"))
        open(f"{work}/enabled_plugins", "w").write(doc["data"]["enabled_plugins"])
    if doc and doc["kind"] == "Secret" and "definitions.json" in (doc.get("stringData") or {}):
        open(f"{work}/definitions.json", "w").write(doc["stringData"]["definitions.json"])
EOF
: > "$WORK/rabbitmq-env.conf"
mkdir -p "$WORK/mnesia" "$WORK/log"
id rabbitmq >/dev/null 2>&1 && chown -R rabbitmq:rabbitmq "$WORK"
export RABBITMQ_NODENAME=$NODE RABBITMQ_CONFIG_FILE=$WORK/rabbitmq.conf RABBITMQ_MNESIA_BASE=$WORK/mnesia \
  RABBITMQ_LOG_BASE=$WORK/log RABBITMQ_ENABLED_PLUGINS_FILE=$WORK/enabled_plugins RABBITMQ_DIST_PORT=$DIST \
  RABBITMQ_CONF_ENV_FILE=$WORK/rabbitmq-env.conf RABBITMQ_ADVANCED_CONFIG_FILE=$WORK/advanced.config \
  RABBITMQ_PID_FILE=$WORK/rabbit.pid
rabbitmq-server > "$WORK/server.out" 2>&1 &
booted=""
for _ in $(seq 1 60); do
  if rabbitmqctl -q -n "$NODE" await_startup --timeout 5 >/dev/null 2>&1; then booted=1; break; fi
  sleep 1
done
if [[ -z $booted ]]; then
  tail -20 "$WORK/server.out" >&2
  grep -h -m5 -E "\[error\]" "$WORK"/log/*.log >&2 || true
  fail "rabbitmq: a node with the chart's configuration did not boot"
fi
for user in vidconv gateway converter; do
  rabbitmqctl -q -n "$NODE" authenticate_user "$user" change-me >/dev/null || fail "rabbitmq: user $user cannot log in"
done
# The broker's own view of the permissions (it parsed definitions.json's regular expressions).
perms=$(rabbitmqctl -q -n "$NODE" list_permissions --vhost / --no-table-headers | sort | tr '\t\n' ' ;')
want_perms='converter ^(video|video\.dlq)$ ^amq\.default$ ^video$;gateway ^video$ ^amq\.default$ ^$;vidconv .* .* .*;'
[[ $perms == "$want_perms" ]] || fail "rabbitmq: permissions are ($perms), want ($want_perms)"
# And tried over AMQP: what each service does works, anything more is refused.
"$PY" - "$AMQP" <<'EOF' || fail "rabbitmq: the services' users can do more or less than they need (above)"
import sys, pika
from pika.exceptions import ChannelClosedByBroker
port = int(sys.argv[1])
def channel(user):
    params = pika.ConnectionParameters("127.0.0.1", port, "/", pika.PlainCredentials(user, "change-me"))
    return pika.BlockingConnection(params).channel()
def refused(user, what, action):
    try:
        action(channel(user))
    except ChannelClosedByBroker as e:
        if e.reply_code == 403:
            return True
        print(f"{user}: {what}: closed with {e.reply_code} {e.reply_text}")
        return False
    print(f"{user}: {what}: allowed, must be refused")
    return False
ok = True
def expect(condition, message):
    global ok
    if not condition:
        print(message)
        ok = False
gw = channel("gateway")
gw.queue_declare("video", durable=True)  # as the gateway declares it
gw.confirm_delivery()
gw.basic_publish("", "video", b'{"video_fid":"deploycheck"}', pika.BasicProperties(delivery_mode=2))
conv = channel("converter")
for q in ("video", "video.dlq"):
    conv.queue_declare(q, durable=True)
_, _, body = conv.basic_get("video", auto_ack=True)
expect(body == b'{"video_fid":"deploycheck"}', "converter: did not get the gateway's message")
conv.basic_publish("", "video.dlq", b"dead", pika.BasicProperties(delivery_mode=2))
_, _, body = channel("vidconv").basic_get("video.dlq", auto_ack=True)
expect(body == b"dead", "converter: its dead letter did not arrive")
# A refused publish closes the channel asynchronously: the passive declare after it sees that.
publish_topic = lambda ch: (ch.basic_publish("amq.topic", "x", b"x"), ch.queue_declare("video", passive=True))
expect(refused("gateway", "consume video", lambda ch: ch.basic_get("video")), "")
expect(refused("gateway", "declare another queue", lambda ch: ch.queue_declare("other", durable=True)), "")
expect(refused("gateway", "publish to amq.topic", publish_topic), "")
expect(refused("converter", "declare another queue", lambda ch: ch.queue_declare("other", durable=True)), "")
expect(refused("converter", "consume video.dlq", lambda ch: ch.basic_get("video.dlq")), "")
expect(refused("converter", "publish to amq.topic", publish_topic), "")
print("rabbitmq: over AMQP, gateway declared video and published, converter consumed it and dead-lettered to video.dlq; consuming as the gateway, other queues, other exchanges and consuming video.dlq as the converter were refused")
sys.exit(0 if ok else 1)
EOF
queues=""
for _ in $(seq 1 20); do  # definitions are imported right after boot
  queues=$(rabbitmqctl -q -n "$NODE" list_queues --vhost / --no-table-headers name durable auto_delete arguments | sort | tr '\t\n' ' ;')
  [[ $queues == *"video.dlq"* ]] && break
  sleep 0.5
done
[[ $queues == "video true false [];video.dlq true false [];" ]] || fail "rabbitmq: queues are ($queues)"
users=$(rabbitmqctl -q -n "$NODE" list_users --no-table-headers | awk '{print $1}' | sort | tr '\n' ' ')
[[ $users == "converter gateway vidconv " ]] || fail "rabbitmq: users are ($users), want converter gateway vidconv"
timeout=$(rabbitmqctl -q -n "$NODE" eval 'application:get_env(rabbit, consumer_timeout).')
[[ $timeout == "{ok,1800000}" ]] || fail "rabbitmq: consumer_timeout is $timeout"
listeners=$(rabbitmq-diagnostics -q -n "$NODE" listeners | grep -cE "port: ($AMQP|$MGMT), protocol: (amqp|http)")
[[ $listeners == 2 ]] || fail "rabbitmq: AMQP and management listeners not both up"
# The Prometheus endpoint the alerting rules read: per-queue series, and the age of the oldest
# ready message from its AMQP timestamp (the gateway sets one on every job it publishes).
stamp=$(($(date +%s) - 120))
# (Output kept in a variable: grep -q closing a pipe early would fail the pipeline with SIGPIPE.)
routed=$(curl -sf -u vidconv:change-me -H 'content-type: application/json' "http://127.0.0.1:$MGMT/api/exchanges/%2F/amq.default/publish" \
  -d "{\"routing_key\":\"video\",\"payload\":\"{}\",\"payload_encoding\":\"string\",\"properties\":{\"timestamp\":$stamp,\"delivery_mode\":2}}" || true)
[[ $routed == *'"routed":true'* ]] || fail "rabbitmq: could not publish a test message to video ($routed)"
metrics=""
for _ in $(seq 1 20); do  # queue metrics are collected every few seconds
  metrics=$(curl -sf "http://127.0.0.1:$PROM/metrics/per-object" || true)
  grep -q '^rabbitmq_queue_messages_ready{vhost="/",queue="video"} 1$' <<<"$metrics" && break
  sleep 1
done
for series in 'rabbitmq_queue_messages_ready{vhost="/",queue="video"} 1' 'rabbitmq_queue_messages_ready{vhost="/",queue="video.dlq"} 0' \
              'rabbitmq_queue_consumers{vhost="/",queue="video"} 0' "rabbitmq_queue_head_message_timestamp{vhost=\"/\",queue=\"video\"} $stamp"; do
  grep -qF "$series" <<<"$metrics" || fail "rabbitmq: /metrics/per-object lacks '$series': $(grep -E '^rabbitmq_queue_(messages_ready|consumers|head)' <<<"$metrics" || true)"
done
# Every RabbitMQ series the rules and the dashboard may use (scripts/monitoring/check_monitoring.py).
while read -r name; do
  [[ -z $name || $name == \#* ]] && continue
  grep -q "^# TYPE $name " <<<"$metrics" || fail "rabbitmq: /metrics/per-object has no $name (scripts/monitoring/rabbitmq-metrics.txt)"
done < scripts/monitoring/rabbitmq-metrics.txt
echo "rabbitmq: $(rabbitmqctl -q -n "$NODE" eval 'rabbit_misc:version().' | tr -d '"') booted with the chart's config and definitions: queues ($queues) users ($users) permissions ($perms) consumer_timeout $timeout, AMQP, management and Prometheus (per-queue ready, consumers, head message timestamp) listening"

# --- Redis --------------------------------------------------------------------------------
read -r REDIS_PORT < <("$PY" -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
[[ -n $REDIS_PORT ]] || fail "redis: no free port"
"$HELM" template redis Helm_charts/Redis --set service.port="$REDIS_PORT" > "$WORK/redis.yaml"
mkdir -p "$WORK/redis-data"
"$PY" - "$WORK" <<'EOF'
import sys, yaml
work = sys.argv[1]
for doc in yaml.safe_load_all(open(f"{work}/redis.yaml")):
    if doc and doc["kind"] == "ConfigMap":
        conf = doc["data"]["redis.conf"]
        # The StatefulSet's mounts (/data, /etc/redis/secret), moved to this throwaway server's
        # folder; it listens on loopback only here.
        assert "dir /data\n" in conf and "include /etc/redis/secret/auth.conf" in conf
        conf = conf.replace("dir /data\n", f"dir {work}/redis-data\n").replace("/etc/redis/secret/", f"{work}/")
        conf = conf.replace("bind * -::*", "bind 127.0.0.1")
        extra = f"pidfile {work}/redis.pid\ndaemonize yes\nlogfile {work}/redis.log\n"
        open(f"{work}/redis.conf", "w").write(conf + extra)
    if doc and doc["kind"] == "Secret":
        open(f"{work}/auth.conf", "w").write(doc["stringData"]["auth.conf"])
EOF
redis-server "$WORK/redis.conf" || fail "redis: a server with the chart's configuration did not start"
rcli() { redis-cli -p "$REDIS_PORT" "$@" 2>/dev/null; }
pong=""
for _ in $(seq 1 20); do
  pong=$(REDISCLI_AUTH=change-me rcli ping) && [[ $pong == PONG ]] && break
  sleep 0.25
done
[[ $pong == PONG ]] || { tail -5 "$WORK/redis.log" >&2; fail "redis: no PONG with the chart's password"; }
noauth=$(rcli ping)
[[ $noauth == NOAUTH* ]] || fail "redis: answered '$noauth' without a password"
aof=$(REDISCLI_AUTH=change-me rcli config get appendonly | tail -1)
maxmem=$(REDISCLI_AUTH=change-me rcli config get maxmemory | tail -1)
policy=$(REDISCLI_AUTH=change-me rcli config get maxmemory-policy | tail -1)
[[ $aof == yes && $maxmem == $((192 * 1024 * 1024)) && $policy == volatile-lru ]] \
  || fail "redis: appendonly=$aof maxmemory=$maxmem policy=$policy"
flush=$(REDISCLI_AUTH=change-me rcli flushall)
[[ $flush == *"unknown command"* ]] || fail "redis: FLUSHALL answered '$flush'"
echo "redis: $(redis-server --version | awk '{print $3}') started with the chart's redis.conf and auth.conf: NOAUTH without the password, PONG with it, appendonly=$aof maxmemory=$maxmem $policy, FLUSHALL disabled"
