#!/usr/bin/env bash
# Runs a local gocim cluster: ZooKeeper, Redis (AOF on), one cim-route and two
# cim-server gateways, each with a route replica inside (--route-replica: the
# gateway's uplinks are handled in its own process, the shape the benchmarks
# measure; CIM_RUN_REPLICAS=0 leaves them out), as background processes with
# their data, logs and pid files under $CIM_RUN_DIR (default ./run).
#
#   scripts/cluster.sh start    build must have run (make run does both)
#   scripts/cluster.sh stop     gateways first (graceful), then route, Redis, ZooKeeper
#   scripts/cluster.sh status
#
# Ports can be moved with CIM_ZK_PORT (2181), CIM_REDIS_PORT (6379),
# CIM_ROUTE_PORT (8080, public API), CIM_ROUTE_INTERNAL_PORT (8090, gateway
# calls) and CIM_GATEWAYS ("9000:9100:9200:1883 9001:9101:9201:1884":
# tcp:http:ws:mqtt[:replica-api:replica-internal] ports per gateway; without
# the third, ws = tcp + 200; without the fourth, mqtt = 1883, 1884, ... in
# order; without the last two, the replica's listeners are tcp + 300 and
# tcp + 400).
# The token and internal secrets, an API key (scopes push+admin) and the
# gateways' ZooKeeper credentials (user:password) are generated once into
# $run/secret, $run/internal-secret, $run/api-key and $run/zk-auth (mode 600).
#
# Hardening: ZooKeeper and Redis listen on 127.0.0.1 only; the gateways
# lock their ZooKeeper nodes with digest credentials (world may read, only
# they may write); Redis closes a client whose unread output passes
# 64 MB (or 32 MB for 10 s) instead of growing until the OOM killer.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
run=${CIM_RUN_DIR:-$root/run}
bin=${CIM_BIN_DIR:-$root/bin}
zk_port=${CIM_ZK_PORT:-2181}
redis_port=${CIM_REDIS_PORT:-6379}
route_port=${CIM_ROUTE_PORT:-8080}
route_internal_port=${CIM_ROUTE_INTERNAL_PORT:-8090}
gateways=${CIM_GATEWAYS:-"9000:9100:9200:1883 9001:9101:9201:1884"}
replicas=${CIM_RUN_REPLICAS:-1}
host=127.0.0.1

alive() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

# launch NAME CMD... starts CMD detached, logging to $run/NAME.log.
launch() {
  local name=$1; shift
  if alive "$name"; then echo "  $name already running (pid $(cat "$run/$name.pid"))"; return; fi
  : >"$run/$name.log"
  setsid "$@" >>"$run/$name.log" 2>&1 </dev/null &
  echo $! >"$run/$name.pid"
}

# wait_for NAME TEXT waits until TEXT shows in NAME's log.
wait_for() {
  local name=$1 text=$2
  for _ in $(seq 1 300); do
    grep -q "$text" "$run/$name.log" 2>/dev/null && return 0
    alive "$name" || { echo "$name exited; last lines of $run/$name.log:" >&2; tail -20 "$run/$name.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "$name did not become ready; see $run/$name.log" >&2
  exit 1
}

zk_classpath() {
  if [ -n "${CIM_ZK_CLASSPATH:-}" ]; then echo "$CIM_ZK_CLASSPATH"; return; fi
  echo "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"
}

start() {
  "$root/scripts/deps.sh" run
  for b in cim-server cim-route cim-client; do
    [ -x "$bin/$b" ] || { echo "missing $bin/$b: run 'make build' first" >&2; exit 1; }
  done
  mkdir -p "$run/zookeeper" "$run/redis"
  (umask 077
   [ -s "$run/secret" ] || head -c 32 /dev/urandom | base64 | tr -d '\n=+/' >"$run/secret"
   [ -s "$run/internal-secret" ] || head -c 32 /dev/urandom | base64 | tr -d '\n=+/' >"$run/internal-secret"
   [ -s "$run/api-key" ] || head -c 24 /dev/urandom | base64 | tr -d '\n=+/' >"$run/api-key"
   [ -s "$run/zk-auth" ] || { printf 'cim:'; head -c 24 /dev/urandom | base64 | tr -d '\n=+/'; } >"$run/zk-auth")
  export CIM_TOKEN_SECRET CIM_INTERNAL_SECRET
  CIM_TOKEN_SECRET=$(cat "$run/secret")
  CIM_INTERNAL_SECRET=$(cat "$run/internal-secret")
  export CIM_ZK="$host:$zk_port" CIM_REDIS="$host:$redis_port"

  # A config file, not "<port> <dir>" (which listens on every address).
  cat >"$run/zoo.cfg" <<CFG
tickTime=2000
dataDir=$run/zookeeper
clientPort=$zk_port
clientPortAddress=$host
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok
CFG
  echo "starting ZooKeeper on $host:$zk_port (loopback only)"
  launch zookeeper java -Xmx256m -cp "$(zk_classpath)" \
    org.apache.zookeeper.server.ZooKeeperServerMain "$run/zoo.cfg"
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/$host/$zk_port" && printf srvr >&3 && timeout 1 cat <&3) 2>/dev/null | grep -q Mode; then break; fi
    alive zookeeper || { tail -20 "$run/zookeeper.log" >&2; exit 1; }
    sleep 0.2
  done

  echo "starting Redis on $host:$redis_port (AOF everysec)"
  launch redis redis-server --bind "$host" --port "$redis_port" --dir "$run/redis" \
    --appendonly yes --appendfsync everysec --save "" --daemonize no \
    --client-output-buffer-limit "normal 64mb 32mb 10"
  wait_for redis "Ready to accept connections"

  local api_keys; api_keys="local:$(cat "$run/api-key"):push+admin"
  echo "starting cim-route: API on $host:$route_port, gateway calls on $host:$route_internal_port"
  # The API key goes in the environment, not on the command line (which
  # every local user can read in ps).
  CIM_API_KEYS=$api_keys launch route "$bin/cim-route" --listen "$host:$route_port" \
    --internal-listen "$host:$route_internal_port"
  wait_for route "route ready"

  local i=0 first_mqtt=1883 replica_metrics=""
  for ports in $gateways; do
    i=$((i + 1))
    IFS=: read -r tcp http ws mqtt rapi rint <<<"$ports"
    ws=${ws:-$((tcp + 200))}
    mqtt=${mqtt:-$((1882 + i))}
    rapi=${rapi:-$((tcp + 300))}
    rint=${rint:-$((tcp + 400))}
    [ "$i" -eq 1 ] && first_mqtt=$mqtt
    echo "starting cim-server gw$i: clients on $host:$tcp (TCP), ws://$host:$ws/ws (WebSocket) and $host:$mqtt (MQTT devices), internal http on $host:$http"
    local replica=()
    if [ "$replicas" != 0 ]; then
      echo "  with a route replica inside: API on $host:$rapi, internal on $host:$rint"
      # The replica is a route like the standalone one (same secrets, ZooKeeper
      # and Redis through the CIM_* variables above), on listeners of its own.
      (umask 077; printf '%s\n' "--listen $host:$rapi" "--internal-listen $host:$rint" \
        "--api-keys $api_keys" >"$run/gw$i-route-replica")
      replica=(--route-replica "$run/gw$i-route-replica")
      replica_metrics="$replica_metrics
  gw$i's route replica (its clients' messages): http://$host:$rint/metrics"
    fi
    launch "gw$i" "$bin/cim-server" --listen "$host:$tcp" --http-listen "$host:$http" --ws-listen "$host:$ws" \
      --mqtt-listen "$host:$mqtt" --route "http://$host:$route_internal_port" --zk-auth-file "$run/zk-auth" \
      "${replica[@]}"
  done
  i=0
  for _ in $gateways; do i=$((i + 1)); wait_for "gw$i" "gateway ready"; done

  cat <<MSG

gocim is up (logs and data in $run).
Chat in a browser: http://$host:$route_port/
Or open a terminal client in each of two terminals:
  $bin/cim-client --route http://$host:$route_port --user alice --password secret --register
  $bin/cim-client --route http://$host:$route_port --user bob --password secret --register
Then type "bob;;hello" in alice's, ":help" for commands, ":q" to quit.
An app back-end pushes with the API key in $run/api-key:
  curl -H "X-API-Key: \$(cat $run/api-key)" -d '{"to":["alice"],"msg":"hi from the app"}' http://$host:$route_port/api/push
A device (MQTT) gets its credential from the admin API, then listens and talks:
  curl -H "X-API-Key: \$(cat $run/api-key)" -d '{"name":"sensor-1"}' http://$host:$route_port/devices
  mosquitto_sub -h $host -p $first_mqtt -u <deviceId> -P <secret> -t 'gocim/<deviceId>/down' -q 1
  mosquitto_pub -h $host -p $first_mqtt -u <deviceId> -P <secret> -t 'gocim/<deviceId>/up/alice' -q 1 -m 'temp=21'
Operate it (who is online, gateways and their load, kick, ban, drain):
  CIM_ROUTE=http://$host:$route_port CIM_API_KEY=\$(cat $run/api-key) $bin/cimctl gateways
Metrics: http://$host:$route_internal_port/metrics (route: logins, API) and each gateway's /metrics on its HTTP port${replica_metrics}
Stop everything with: make stop
MSG
}

stop_one() {
  local name=$1
  alive "$name" || { rm -f "$run/$name.pid"; return 0; }
  local pid; pid=$(cat "$run/$name.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  rm -f "$run/$name.pid"
  echo "stopped $name"
}

stop() {
  [ -d "$run" ] || { echo "nothing running ($run does not exist)"; return 0; }
  for f in "$run"/gw*.pid; do [ -e "$f" ] && stop_one "$(basename "$f" .pid)"; done
  stop_one route
  stop_one redis
  stop_one zookeeper
}

status() {
  for f in "$run"/*.pid; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .pid)
    if alive "$n"; then echo "$n: running (pid $(cat "$f"))"; else echo "$n: dead"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
