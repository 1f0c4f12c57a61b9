#!/usr/bin/env bash
# Regenerates proto/cimpb from proto/cim.proto with a pinned protoc-gen-go.
# protoc itself comes from the system package manager (protobuf-compiler).
set -euo pipefail
PROTOC_GEN_GO_VERSION=v1.36.12
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin/tools"
mkdir -p "$bin"
if ! command -v protoc >/dev/null; then
  "$root/scripts/deps.sh" protoc
fi
if [ ! -x "$bin/protoc-gen-go" ] || ! "$bin/protoc-gen-go" --version | grep -q "${PROTOC_GEN_GO_VERSION#v}"; then
  GOBIN="$bin" GOWORK=off go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
fi
cd "$root/proto"
PATH="$bin:$PATH" protoc --go_out=cimpb --go_opt=paths=source_relative cim.proto
