module github.com/gocim/gocim/cim-route

go 1.26.8
