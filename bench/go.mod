module github.com/gocim/gocim/bench

go 1.26.8

replace (
	github.com/gocim/gocim/cim-client => ../cim-client
	github.com/gocim/gocim/e2e => ../e2e
	github.com/gocim/gocim/internal => ../internal
	github.com/gocim/gocim/proto => ../proto
)

require (
	github.com/gocim/gocim/cim-client v0.0.0-00010101000000-000000000000
	github.com/gocim/gocim/e2e v0.0.0-00010101000000-000000000000
	github.com/gocim/gocim/proto v0.0.0
	github.com/nats-io/nats-server/v2 v2.15.2
	github.com/nats-io/nats.go v1.55.0
)

require (
	github.com/antithesishq/antithesis-sdk-go v0.8.0-default-no-op // indirect
	github.com/gocim/gocim/internal v0.0.0 // indirect
	github.com/google/go-tpm v0.9.8 // indirect
	github.com/hashicorp/golang-lru/v2 v2.0.7 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/minio/highwayhash v1.0.4 // indirect
	github.com/nats-io/jwt/v2 v2.8.2 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/time v0.16.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
