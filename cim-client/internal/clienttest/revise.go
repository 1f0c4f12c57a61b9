package clienttest

import (
	"encoding/json"
	"net/http"

	"github.com/gocim/gocim/proto/codes"
)

// deleteHistory is POST /history/delete {"msgIds":[…]}: the ids leave the
// caller's own /history answers (1 to 100 per call, as the route).
func (r *Route) deleteHistory(w http.ResponseWriter, req *http.Request) {
	var in struct {
		MsgIDs []string `json:"msgIds"`
	}
	if err := json.NewDecoder(req.Body).Decode(&in); err != nil || len(in.MsgIDs) == 0 || len(in.MsgIDs) > 100 {
		reply(w, http.StatusBadRequest, codes.BadArgument, "msgIds must name 1 to 100 messages", nil)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	me := r.sessionLocked(w, req, "/history/delete")
	if me == nil {
		return
	}
	if r.deleted == nil {
		r.deleted = map[string]map[string]bool{}
	}
	if r.deleted[me.id] == nil {
		r.deleted[me.id] = map[string]bool{}
	}
	for _, id := range in.MsgIDs {
		r.deleted[me.id][id] = true
	}
	reply(w, http.StatusOK, codes.OK, "ok", nil)
}
