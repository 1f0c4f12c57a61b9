// Package pprofhttp serves Go's runtime profiles (net/http/pprof) from a mux
// of their own, so a service mounts them behind its own access check on an
// internal address — never on http.DefaultServeMux or a public port.
package pprofhttp

import (
	"net/http"
	"net/http/pprof"
)

// Prefix is where the profiles live.
const Prefix = "/debug/pprof/"

// Handler serves Prefix: the index, the named profiles (heap, goroutine,
// allocs, block, mutex, threadcreate), profile (CPU, ?seconds=N), trace,
// symbol and cmdline.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(Prefix, pprof.Index)
	mux.HandleFunc(Prefix+"cmdline", pprof.Cmdline)
	mux.HandleFunc(Prefix+"profile", pprof.Profile)
	mux.HandleFunc(Prefix+"symbol", pprof.Symbol)
	mux.HandleFunc(Prefix+"trace", pprof.Trace)
	return mux
}
