package model

// Device is an IoT device's record (docs/ARCHITECTURE.md, "Devices"): an
// account without a password, which logs in at a gateway with a long-lived
// credential instead. Only the credential's hash is kept.
type Device struct {
	ID   string // the account's user id
	Name string // the account's user name
	// Secret is the SHA-256 of the credential; nil once revoked (and in
	// listings, which never carry it).
	Secret  []byte
	Created int64 // unix ms
	// Revoked is when the credential was revoked (unix ms); 0 while the
	// device has one.
	Revoked int64
	// Seen is the last connect or disconnect of a session of the device
	// (unix ms); 0: it never connected.
	Seen int64
}
