module github.com/gocim/gocim/cim-client

go 1.26.8

require (
	github.com/gocim/gocim/internal v0.0.0
	github.com/gocim/gocim/proto v0.0.0
	go.uber.org/goleak v1.3.0
	golang.org/x/term v0.48.0
	google.golang.org/protobuf v1.36.12
)

require (
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/sys v0.50.0 // indirect
)

replace github.com/gocim/gocim/proto => ../proto

replace github.com/gocim/gocim/internal => ../internal
