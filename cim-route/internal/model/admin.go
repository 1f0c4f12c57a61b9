package model

// Ban keeps a user out (an operator's POST /admin/users/{id}/ban): no
// login, no session confirmed, no device login, until it is lifted or
// Until passes.
type Ban struct {
	Reason string
	// Until is when the ban ends by itself (unix ms); 0: never.
	Until int64
	// By is who banned (the admin API key's name), At when (unix ms).
	By string
	At int64
}
