module github.com/gocim/gocim/cim-client

go 1.26.8
