#!/usr/bin/env bash
# Installs what gocim's cluster and tests need from the system package manager
# when it is missing: ZooKeeper (plus a Java runtime), Redis, and — with the
# argument "protoc" — the protobuf compiler. Safe to run again.
set -euo pipefail

want=(zookeeper redis-server)
[ "${1:-}" = protoc ] && want=(protobuf-compiler)

missing=()
for pkg in "${want[@]}"; do
  case $pkg in
    zookeeper) [ -f /usr/share/java/zookeeper.jar ] || [ -n "${CIM_ZK_CLASSPATH:-}" ] || missing+=(zookeeper) ;;
    redis-server) command -v redis-server >/dev/null || missing+=(redis-server) ;;
    protobuf-compiler) command -v protoc >/dev/null || missing+=(protobuf-compiler) ;;
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
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages enable system-wide services; gocim runs its own
# instances on its own ports, so the system ones are left as they are.
