module github.com/gocim/gocim/cim-server

go 1.26.8
