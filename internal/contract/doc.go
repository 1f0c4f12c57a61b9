// Package contract is the gateway⇄route contract, the one place both sides
// take it from: the internal HTTP paths each side serves, the header that
// carries the internal secret and the set of secrets it is checked against,
// the media types, the JSON bodies of the session calls and of the
// gateway's health answer, the gateway id's format and parse, and the
// errors a gateway reads out of the route's answers.
//
// The route serves PathOnline, PathOffline and PathUplink on its
// --internal-listen address; a gateway serves PathPush and PathHealth on
// its --http-listen address. Every call but PathHealth carries Header.
//
// Everything here is immutable or a pure function: safe for concurrent use.
package contract
