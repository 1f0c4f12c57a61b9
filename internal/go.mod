module github.com/gocim/gocim/internal

go 1.26.8
