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
)

require (
	github.com/gocim/gocim/internal v0.0.0 // indirect
	github.com/hashicorp/golang-lru/v2 v2.0.7 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
