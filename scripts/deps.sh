#!/usr/bin/env bash
# Installs what gocim's cluster and tests need from the system package manager
# when it is missing: ZooKeeper (plus a Java runtime), Redis, OpenLDAP's slapd
# (the LDAP authenticator's tests), Chromium (the web page's browser tests),
# mosquitto-clients (mosquitto_pub/mosquitto_sub: the MQTT tests), prometheus
# (its promtool checks the /metrics output, the Prometheus configuration and
# the alert rules) and — with the argument "protoc" — the
# protobuf compiler; with "run", only what a local cluster needs (ZooKeeper,
# Redis). Safe to run again.
set -euo pipefail

want=(zookeeper redis-server slapd chromium mosquitto-clients prometheus)
[ "${1:-}" = protoc ] && want=(protobuf-compiler)
[ "${1:-}" = run ] && want=(zookeeper redis-server)

missing=()
for pkg in "${want[@]}"; do
  case $pkg in
    zookeeper) [ -f /usr/share/java/zookeeper.jar ] || [ -n "${CIM_ZK_CLASSPATH:-}" ] || missing+=(zookeeper) ;;
    redis-server) command -v redis-server >/dev/null || missing+=(redis-server) ;;
    # /usr/sbin is not on every user's PATH.
    slapd) [ -x /usr/sbin/slapd ] || command -v slapd >/dev/null || missing+=(slapd) ;;
    chromium) command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium) ;;
    protobuf-compiler) command -v protoc >/dev/null || missing+=(protobuf-compiler) ;;
    mosquitto-clients) command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients) ;;
    prometheus) command -v promtool >/dev/null || missing+=(prometheus) ;;
  esac
done
if ! command -v java >/dev/null && [[ " ${want[*]} " == *" zookeeper "* ]]; then
  missing+=(default-jre-headless)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "deps: please install ${missing[*]} (no apt-get on this machine)" >&2
  exit 1
fi
sudo=()
# sudo resets the environment; env carries DEBIAN_FRONTEND through it so
# debconf (slapd asks for a domain and password) never prompts.
[ "$(id -u)" -eq 0 ] || sudo=(sudo env DEBIAN_FRONTEND=noninteractive)
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages enable system-wide services (slapd's debconf questions
# are answered with their defaults); gocim's tests run their own instances on
# their own ports with their own configuration, so the system ones are left
# as they are.
