#!/usr/bin/env bash
# The whole system on one machine, self-contained under .stack/ (or $STACK_DIR):
# its own PostgreSQL cluster, RabbitMQ node, Redis and SecantusDB (MongoDB stand-in), the three
# services, and nginx serving the frontend. Never touches servers already running on the
# machine (5432, 5672, 27017): every component has its own port, data and logs.
#
#   scripts/stack.sh up                 install what is missing, build, start, seed a demo user
#   scripts/stack.sh down               stop everything this stack started
#   scripts/stack.sh status             each component, its pid and its health
#   scripts/stack.sh logs [component]   follow the logs
#   scripts/stack.sh clean              stop, then wipe the stack directory
#   scripts/stack.sh start|stop|restart COMPONENT
#                                        one of: postgres rabbitmq mongo redis auth gateway converter
#                                        balancer nginx prometheus, or one replica (converter-2, ...)
#
# Settings (environment; see docs/local-stack.md): STACK_DIR, STACK_PROFILE (release|debug),
# STACK_BIND, STACK_*_PORT, STACK_REDIS (1|0), STACK_REPLICAS (1-4), JWT_SECRET, ...
# The values used by `up` are recorded in $STACK_DIR/stack.env, so down/status/logs find the
# same stack without the variables being set again.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source "$ROOT/scripts/stack/lib.sh"

usage() {
  sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift || true

case "$cmd" in
  up) stack_up ;;
  down) stack_down ;;
  status) stack_status ;;
  logs) stack_logs "$@" ;;
  clean) stack_clean ;;
  start | stop | restart)
    [ $# -eq 1 ] || usage
    component_known "$1" || die "unknown component '$1' (one of: ${COMPONENTS[*]})"
    load_settings
    case "$cmd" in
      start) start_component "$1" ;;
      stop) stop_component "$1" ;;
      restart)
        stop_component "$1"
        start_component "$1"
        ;;
    esac
    ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
