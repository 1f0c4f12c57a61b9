// Package proto holds gocim's wire contract: the protobuf schema (cim.proto),
// its generated Go code (cimpb), the frame codec (codec) and the login token
// format shared by the route and the gateways (token).
package proto

//go:generate ../scripts/protoc.sh
