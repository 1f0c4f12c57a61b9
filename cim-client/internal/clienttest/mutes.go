package clienttest

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gocim/gocim/proto/codes"
)

// DefaultMuteMax is how many conversations one user may have muted at
// once, the route's limit.
const DefaultMuteMax = 1000

// maxMuteFor is the route's longest mute with an end; longer ones have
// none.
const maxMuteFor = 366 * 24 * time.Hour

// muteState is the fake route's mutes, under Route.mu.
type muteState struct {
	// of maps a user id to its muted conversations: "u<id>" or "g<gid>"
	// → until (unix ms; 0 until unmuted), expired ones included.
	of  map[string]map[string]int64
	max int
	now func() time.Time
}

func (r *Route) registerMutes(mux *http.ServeMux) {
	r.mut = muteState{of: map[string]map[string]int64{}, max: DefaultMuteMax, now: time.Now}
	mux.HandleFunc("GET /mutes", r.listMutes)
	mux.HandleFunc("POST /mutes", r.mute)
	mux.HandleFunc("DELETE /mutes", r.unmute)
}

// Muted returns the conversations user id uid muted, expired ones
// included: "u<id>" for a user, "g<gid>" for a group → until (unix ms; 0
// until unmuted).
func (r *Route) Muted(uid string) map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.mut.of[uid])
}

// SetMuteMax changes how many conversations one user may have muted
// (default DefaultMuteMax).
func (r *Route) SetMuteMax(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mut.max = n
}

// SetMuteClock makes the mute endpoints read the time from now (default
// time.Now): when a mute ends, and which are still in force for GET
// /mutes.
func (r *Route) SetMuteClock(now func() time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mut.now = now
}

// muteJSONLocked is one mute in the answers: userId and userName, or
// group, with untilMs; nil for a user deleted since.
func (r *Route) muteJSONLocked(target string, until int64) map[string]any {
	if gid, ok := strings.CutPrefix(target, "g"); ok {
		return map[string]any{"group": gid, "untilMs": until}
	}
	a := r.byID[strings.TrimPrefix(target, "u")]
	if a == nil {
		return nil
	}
	return map[string]any{"userId": a.id, "userName": a.name, "untilMs": until}
}

// muteTargetLocked checks the conversation a mute call names, as the
// route does, and returns its key; "" after answering the refusal.
func (r *Route) muteTargetLocked(w http.ResponseWriter, me *account, user, gid string) string {
	switch {
	case (user == "") == (gid == ""):
		reply(w, http.StatusBadRequest, codes.BadArgument, "a mute names a user or a group", nil)
	case gid != "":
		g := r.grp.groups[gid]
		switch {
		case !isNumber(gid):
			reply(w, http.StatusBadRequest, codes.BadArgument, "group must be a group id", nil)
		case g == nil:
			reply(w, http.StatusNotFound, codes.NoGroup, "no such group", nil)
		case !g.member(me.id):
			forbidden(w, "not a member of group "+gid)
		default:
			return "g" + gid
		}
	default:
		a := r.userLocked(user)
		switch {
		case a == nil:
			reply(w, http.StatusUnauthorized, codes.BadAccount, "unknown user", nil)
		case a.id == me.id:
			reply(w, http.StatusBadRequest, codes.BadArgument, "you cannot mute yourself", nil)
		default:
			return "u" + a.id
		}
	}
	return ""
}

func (r *Route) listMutes(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	me, _, _ := r.bearerLocked(w, req, req.Pattern, false)
	if me == nil {
		return
	}
	now := r.mut.now().UnixMilli()
	var users, groups []string
	for t, until := range r.mut.of[me.id] {
		if until != 0 && until <= now {
			continue
		}
		if strings.HasPrefix(t, "u") {
			users = append(users, t)
		} else {
			groups = append(groups, t)
		}
	}
	byID := func(a, b string) int {
		x, _ := strconv.Atoi(a[1:])
		y, _ := strconv.Atoi(b[1:])
		return x - y
	}
	slices.SortFunc(users, byID)
	slices.SortFunc(groups, byID)
	out := []map[string]any{}
	for _, t := range append(users, groups...) {
		if m := r.muteJSONLocked(t, r.mut.of[me.id][t]); m != nil {
			out = append(out, m)
		}
	}
	reply(w, http.StatusOK, codes.OK, "ok", map[string]any{"mutes": out})
}

func (r *Route) mute(w http.ResponseWriter, req *http.Request) {
	var in struct {
		User       string `json:"user"`
		Group      string `json:"group"`
		ForSeconds int64  `json:"forSeconds"`
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
	target := r.muteTargetLocked(w, me, in.User, in.Group)
	if target == "" {
		return
	}
	if in.ForSeconds < 0 {
		reply(w, http.StatusBadRequest, codes.BadArgument, "a mute lasts 0 (until unmuted) or more", nil)
		return
	}
	now := r.mut.now()
	var until int64
	if d := time.Duration(in.ForSeconds) * time.Second; d > 0 && in.ForSeconds <= int64(maxMuteFor/time.Second) {
		until = now.Add(d).UnixMilli()
	}
	mine := r.mut.of[me.id]
	if mine == nil {
		mine = map[string]int64{}
		r.mut.of[me.id] = mine
	}
	maps.DeleteFunc(mine, func(_ string, u int64) bool { return u != 0 && u <= now.UnixMilli() })
	if _, ok := mine[target]; !ok && len(mine) >= r.mut.max {
		reply(w, http.StatusTooManyRequests, codes.QuotaExceeded, "too many conversations muted", nil)
		return
	}
	mine[target] = until
	reply(w, http.StatusOK, codes.OK, "ok", r.muteJSONLocked(target, until))
}

func (r *Route) unmute(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	me, _, _ := r.bearerLocked(w, req, req.Pattern, false)
	if me == nil {
		return
	}
	q := req.URL.Query()
	target := r.muteTargetLocked(w, me, q.Get("user"), q.Get("group"))
	if target == "" {
		return
	}
	delete(r.mut.of[me.id], target)
	reply(w, http.StatusOK, codes.OK, "ok", r.muteJSONLocked(target, 0))
}
