module github.com/gocim/gocim/e2e

go 1.26.8
