package router

import (
	"context"
	"strconv"

	"github.com/gocim/gocim/proto/codes"
)

// prepare checks messages and notes which names and ids to resolve.
func (j *job) prepare() {
	j.idName = make(map[string]string, len(j.msgs)*2+len(j.reads))
	j.nameID = map[string]string{}
	for _, it := range j.msgs {
		it.ts = j.ts
		if it.msg == nil {
			it.fail(codes.BadArgument, "MSG frame without a message")
			continue
		}
		it.msgID = newMsgID(j.now)
		if !it.system {
			j.wantID(it.from)
		}
		if len(it.msg.ClientMsgId) > maxClientMsgID {
			it.fail(codes.BadArgument, "clientMsgId longer than "+strconv.Itoa(maxClientMsgID)+" bytes")
			continue
		}
		if p := kindProblem(it.msg); p != "" {
			it.fail(codes.BadArgument, p)
			continue
		}
		if p := j.r.opProblem(it.msg, j.now); p != "" {
			it.fail(codes.BadArgument, p)
			continue
		}
		if it.msg.ToApp {
			if c, p := j.r.appProblem(it.msg); c != 0 {
				it.fail(c, p)
			}
			continue
		}
		switch to := it.msg.To; {
		case it.msg.Group != "":
			j.prepareGroup(it)
			j.wantMentions(it)
		case it.msg.Broadcast:
		case to == "":
			it.fail(codes.BadArgument, "message has no recipient")
		default:
			if !j.want(to) {
				it.fail(codes.BadAccount, "unknown user "+strconv.Quote(to))
			}
		}
	}
	for _, rd := range j.reads {
		j.want(rd.peer)
	}
}

// want notes a user id or name to resolve; false if it is neither.
func (j *job) want(user string) bool {
	switch {
	case isID(user):
		j.wantID(user)
	case isName(user):
		j.wantName(user)
	default:
		return false
	}
	return true
}

func (j *job) wantID(id string) {
	if _, seen := j.idName[id]; seen {
		return
	}
	n, _ := j.r.names.Get(id)
	if j.idName[id] = n; n == "" {
		j.needIDs = append(j.needIDs, id)
	}
}

func (j *job) wantName(name string) {
	if _, seen := j.nameID[name]; seen {
		return
	}
	id, _ := j.r.ids.Get(name)
	if j.nameID[name] = id; id == "" {
		j.needNames = append(j.needNames, name)
	}
}

// userID returns the id of an existing user given by id or name, or "".
func (j *job) userID(user string) string {
	if isID(user) {
		if j.idName[user] != "" {
			return user
		}
		return ""
	}
	return j.nameID[user]
}

// resolve looks up the names and ids the caches lack (one round trip) and
// settles every message's sender name and private recipient id.
func (j *job) resolve(ctx context.Context) error {
	if len(j.needIDs)+len(j.needNames) > 0 {
		names, ids, err := j.r.st.Lookup(ctx, j.needIDs, j.needNames)
		if err != nil {
			return err
		}
		for id, n := range names {
			j.idName[id] = n
			j.r.remember(id, n)
		}
		for n, id := range ids {
			j.nameID[n] = id
			// n is the name as given (any case): not the display name.
			j.r.rememberName(n, id)
		}
	}
	for _, it := range j.msgs {
		if it.code != 0 {
			continue
		}
		if it.system {
			it.fromName = SystemUserName
		} else if it.fromName = j.idName[it.from]; it.fromName == "" {
			it.fail(codes.BadAccount, "unknown sender "+strconv.Quote(it.from))
			continue
		}
		if it.group != nil {
			j.resolveMentions(it)
		}
		if it.msg.Broadcast || it.group != nil || it.msg.ToApp {
			continue
		}
		if it.toID = j.userID(it.msg.To); it.toID == "" {
			it.fail(codes.BadAccount, "unknown user "+strconv.Quote(it.msg.To))
		}
	}
	for _, rd := range j.reads {
		rd.peerID = j.userID(rd.peer)
	}
	return nil
}
