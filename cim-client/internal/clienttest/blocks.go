package clienttest

import (
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/gocim/gocim/proto/codes"
)

// DefaultBlockMax is how many users one user may block, the route's limit.
const DefaultBlockMax = 1000

// blockState is the fake route's block lists, under Route.mu.
type blockState struct {
	of  map[string]map[string]bool // user id → the ids it blocked
	max int
}

func (r *Route) registerBlocks(mux *http.ServeMux) {
	r.blk = blockState{of: map[string]map[string]bool{}, max: DefaultBlockMax}
	mux.HandleFunc("GET /blocks", r.listBlocks)
	mux.HandleFunc("POST /blocks", r.block)
	mux.HandleFunc("DELETE /blocks/{user}", r.unblock)
}

// Blocked returns the ids user id uid blocked, by id.
func (r *Route) Blocked(uid string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blockedLocked(uid)
}

func (r *Route) blockedLocked(uid string) []string {
	return slices.SortedFunc(maps.Keys(r.blk.of[uid]), func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
}

// SetBlockMax changes how many users one user may block (default
// DefaultBlockMax).
func (r *Route) SetBlockMax(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blk.max = n
}

func userJSON(a *account) map[string]string {
	return map[string]string{"userId": a.id, "userName": a.name}
}

// blockTargetLocked resolves the user a block call names, answering 401 /
// 9100 for an unknown one; nil after a refusal.
func (r *Route) blockTargetLocked(w http.ResponseWriter, user string) *account {
	a := r.userLocked(user)
	if a == nil {
		reply(w, http.StatusUnauthorized, codes.BadAccount, "unknown user", nil)
	}
	return a
}

func (r *Route) listBlocks(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	me, _, _ := r.bearerLocked(w, req, req.Pattern, false)
	if me == nil {
		return
	}
	users := []map[string]string{}
	for _, id := range r.blockedLocked(me.id) {
		if a := r.byID[id]; a != nil {
			users = append(users, userJSON(a))
		}
	}
	reply(w, http.StatusOK, codes.OK, "ok", map[string]any{"users": users})
}

func (r *Route) block(w http.ResponseWriter, req *http.Request) {
	var in struct {
		User string `json:"user"`
	}
	if !decode(w, req, &in) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	me, _, _ := r.bearerLocked(w, req, req.Pattern, false)
	if me == nil {
		return
	}
	if in.User == "" {
		reply(w, http.StatusBadRequest, codes.BadArgument, "user is required", nil)
		return
	}
	a := r.blockTargetLocked(w, in.User)
	switch {
	case a == nil:
	case a.id == me.id:
		reply(w, http.StatusBadRequest, codes.BadArgument, "you cannot block yourself", nil)
	case !r.blk.of[me.id][a.id] && len(r.blk.of[me.id]) >= r.blk.max:
		reply(w, http.StatusTooManyRequests, codes.QuotaExceeded, "too many users blocked", nil)
	default:
		if r.blk.of[me.id] == nil {
			r.blk.of[me.id] = map[string]bool{}
		}
		r.blk.of[me.id][a.id] = true
		reply(w, http.StatusOK, codes.OK, "ok", userJSON(a))
	}
}

func (r *Route) unblock(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	me, _, _ := r.bearerLocked(w, req, req.Pattern, false)
	if me == nil {
		return
	}
	if a := r.blockTargetLocked(w, req.PathValue("user")); a != nil {
		delete(r.blk.of[me.id], a.id)
		reply(w, http.StatusOK, codes.OK, "ok", userJSON(a))
	}
}
