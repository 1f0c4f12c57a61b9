package router

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/gocim/gocim/proto/cimpb"
)

// msgHead is what a DELIVERED receipt needs of a stored MSG frame.
type msgHead struct {
	from, msgID, clientMsgID, group string
	broadcast                       bool
}

// Field numbers of cim.proto that peekMsg reads.
const (
	frameType      = 1
	frameMsg       = 5
	msgClientMsgID = 1
	msgMsgID       = 2
	msgFrom        = 4
	msgGroup       = 7
	msgBroadcast   = 11
)

// peekMsg reads the head of a stored frame without decoding it whole (the
// body and the rest are skipped): acknowledging a group message means one
// of these per member, so a full proto.Unmarshal per entry showed in
// profiles. ok is false unless raw is a well-formed MSG frame.
func peekMsg(raw []byte) (h msgHead, ok bool) {
	var msg []byte
	isMsg := false
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return msgHead{}, false
		}
		raw = raw[n:]
		switch {
		case num == frameType && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(raw)
			if n < 0 {
				return msgHead{}, false
			}
			isMsg, raw = v == uint64(cimpb.Type_MSG), raw[n:]
			continue
		case num == frameMsg && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(raw)
			if n < 0 {
				return msgHead{}, false
			}
			msg, raw = v, raw[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, raw)
		if n < 0 {
			return msgHead{}, false
		}
		raw = raw[n:]
	}
	if !isMsg || msg == nil {
		return msgHead{}, false
	}
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return msgHead{}, false
		}
		msg = msg[n:]
		switch {
		case typ == protowire.BytesType && (num == msgClientMsgID || num == msgMsgID || num == msgFrom || num == msgGroup):
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return msgHead{}, false
			}
			switch num {
			case msgClientMsgID:
				h.clientMsgID = string(v)
			case msgMsgID:
				h.msgID = string(v)
			case msgFrom:
				h.from = string(v)
			case msgGroup:
				h.group = string(v)
			}
			msg = msg[n:]
			continue
		case num == msgBroadcast && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(msg)
			if n < 0 {
				return msgHead{}, false
			}
			h.broadcast, msg = v != 0, msg[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, msg)
		if n < 0 {
			return msgHead{}, false
		}
		msg = msg[n:]
	}
	return h, true
}
