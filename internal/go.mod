module github.com/gocim/gocim/internal

go 1.26.8

require github.com/gocim/gocim/proto v0.0.0-00010101000000-000000000000

require go.uber.org/goleak v1.3.0

require github.com/stretchr/testify v1.12.1 // indirect

replace github.com/gocim/gocim/proto => ../proto
