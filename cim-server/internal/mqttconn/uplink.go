package mqttconn

import (
	"fmt"

	"github.com/eclipse/paho.golang/packets"
	packets311 "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/proto/cimpb"
)

// packet is what a device sent after CONNECT, whatever its protocol level.
type packet struct {
	typ     byte
	pid     uint16
	qos     byte
	topic   string
	payload []byte
	alias   bool // MQTT 5: a topic alias (none is granted)
	subs    []subscription
	topics  []string // UNSUBSCRIBE
	reason  byte     // DISCONNECT (MQTT 5)
}

type subscription struct {
	filter string
	qos    byte
}

// decode parses a packet with the codec of the connection's level.
func (c *Conn) decode(raw []byte) (packet, error) {
	typ, flags := packetType(raw)
	p := packet{typ: typ}
	if c.level == level5 {
		cp, err := decode5(raw)
		if err != nil {
			return p, err
		}
		switch k := cp.Content.(type) {
		case *packets.Publish:
			p.pid, p.qos, p.topic, p.payload = k.PacketID, k.QoS, k.Topic, k.Payload
			p.alias = k.Properties != nil && k.Properties.TopicAlias != nil
		case *packets.Puback:
			p.pid = k.PacketID
		case *packets.Subscribe:
			p.pid = k.PacketID
			for _, s := range k.Subscriptions {
				p.subs = append(p.subs, subscription{filter: s.Topic, qos: s.QoS})
			}
		case *packets.Unsubscribe:
			p.pid, p.topics = k.PacketID, k.Topics
		case *packets.Disconnect:
			p.reason = k.ReasonCode
		}
		return p, nil
	}
	cp, err := decode311(raw)
	if err != nil {
		return p, err
	}
	switch k := cp.(type) {
	case *packets311.PublishPacket:
		p.pid, p.qos, p.topic, p.payload = k.MessageID, (flags>>1)&3, k.TopicName, k.Payload
	case *packets311.PubackPacket:
		p.pid = k.MessageID
	case *packets311.SubscribePacket:
		p.pid = k.MessageID
		if len(k.Topics) != len(k.Qoss) {
			return p, fmt.Errorf("%w: SUBSCRIBE", errMalformed)
		}
		for i, f := range k.Topics {
			p.subs = append(p.subs, subscription{filter: f, qos: k.Qoss[i]})
		}
	case *packets311.UnsubscribePacket:
		p.pid, p.topics = k.MessageID, k.Topics
	}
	return p, nil
}

// handle turns a packet of an online device into the frame package conn
// gets (nil: none).
func (c *Conn) handle(raw []byte) (*cimpb.Frame, error) {
	p, err := c.decode(raw)
	if err != nil {
		return nil, err
	}
	switch p.typ {
	case packets.PUBLISH:
		return c.publish(p)
	case packets.PUBACK:
		return c.puback(p.pid), nil
	case packets.SUBSCRIBE:
		return c.subscribe(p)
	case packets.UNSUBSCRIBE:
		return c.unsubscribe(p)
	case packets.PINGREQ:
		// PING resets package conn's idle timer; its PONG is the PINGRESP.
		return &cimpb.Frame{Type: cimpb.Type_PING}, nil
	case packets.DISCONNECT:
		if c.level != level5 || p.reason != rcWithWill {
			c.will = nil
		}
		return nil, errDisconnected
	case packets.CONNECT:
		return nil, violate(rcProtocolError, conn.BadFrame, "a second CONNECT")
	case packets.PUBREC, packets.PUBREL, packets.PUBCOMP:
		return nil, violate(rcProtocolError, conn.BadFrame, "QoS 2 is not supported")
	}
	return nil, violate(rcProtocolError, conn.BadFrame, "unexpected packet of type %d", p.typ)
}

// publish turns a device's PUBLISH into a MSG.
func (c *Conn) publish(p packet) (*cimpb.Frame, error) {
	switch {
	case p.qos == 2:
		return nil, violate(rcQoSNotSupported, conn.BadFrame, "PUBLISH with QoS 2")
	case p.alias:
		return nil, violate(rcTopicAliasInvalid, conn.BadFrame, "PUBLISH with a topic alias")
	}
	t, ok := uplinkTarget(c.uid, p.topic)
	if !ok {
		if c.level == level5 && p.qos == 1 {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.replyLocked(c.pubackLocked(nil, p.pid, rcNotAuthorized, "not one of this device's uplink topics"))
		}
		return nil, violate(rcNotAuthorized, conn.BadFrame, "PUBLISH to %q, not one of the device's uplink topics", p.topic)
	}
	var req uint64
	if p.qos == 1 {
		c.mu.Lock()
		if len(c.pendingUp) >= c.cfg.InFlight {
			c.mu.Unlock()
			return nil, violate(rcReceiveMaxExceeded, conn.Flooding, "over %d QoS 1 messages unacknowledged", c.cfg.InFlight)
		}
		c.nextReq++
		req = c.nextReq
		if c.pendingUp == nil {
			c.pendingUp = make(map[uint64]uint16)
		}
		c.pendingUp[req] = p.pid
		c.mu.Unlock()
	}
	return uplinkMsg(req, c.msgIDs.next(), t, p.payload), nil
}

// uplinkMsg is the MSG for a device's payload to t.
func uplinkMsg(req uint64, clientMsgID string, t target, payload []byte) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: req, Msg: &cimpb.Msg{ClientMsgId: clientMsgID,
		To: t.to, Group: t.group, ToApp: t.toApp, Kind: cimpb.Kind_KIND_BINARY, Body: payload}}
}

// puback takes the device's acknowledgement of a downlink message. When
// messages wait for room in the window, it returns a PING whose PONG makes
// the writer send them.
func (c *Conn) puback(pid uint16) *cimpb.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acknowledgedLocked(pid)
	if len(c.dl.waiting) == 0 || c.draining {
		return nil
	}
	c.draining = true
	f, _ := c.replyLocked(nil)
	return f
}

// subscribe grants the device's own filters and refuses the others.
func (c *Conn) subscribe(p packet) (*cimpb.Frame, error) {
	if len(p.subs) == 0 {
		return nil, violate(rcProtocolError, conn.BadFrame, "SUBSCRIBE without a topic filter")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	reasons := make([]byte, len(p.subs))
	for i, s := range p.subs {
		if s.qos > 2 {
			return nil, violate(rcMalformed, conn.BadFrame, "%v: SUBSCRIBE with QoS %d", errMalformed, s.qos)
		}
		f, own := ownFilter(c.uid, s.filter)
		if !own {
			reasons[i] = rcNotAuthorized
			continue
		}
		granted := min(s.qos, 1)
		c.subs.add(f, granted)
		reasons[i] = granted
	}
	c.dl.qos0 = c.downQoS0Locked()
	var out []byte
	if c.level == level5 {
		cp := packets.NewControlPacket(packets.SUBACK)
		ack := cp.Content.(*packets.Suback)
		ack.PacketID, ack.Reasons = p.pid, reasons
		out = encode5(nil, cp)
	} else {
		for i, rc := range reasons {
			if rc == rcNotAuthorized {
				reasons[i] = 0x80 // 3.1.1's one failure code
			}
		}
		ack := packets311.NewControlPacket(packets311.Suback).(*packets311.SubackPacket)
		ack.MessageID, ack.ReturnCodes = p.pid, reasons
		out = encode311(nil, ack)
	}
	return c.replyLocked(out)
}

// downQoS0Locked reports whether the downlink goes at QoS 0: the device
// subscribed to it, and at QoS 0 only. Without a subscription it is QoS 1
// (the subscription is implicit).
func (c *Conn) downQoS0Locked() bool { return c.subs.qos0Only() }

// unsubscribe answers UNSUBSCRIBE; the downlink goes on (see the package
// doc).
func (c *Conn) unsubscribe(p packet) (*cimpb.Frame, error) {
	if len(p.topics) == 0 {
		return nil, violate(rcProtocolError, conn.BadFrame, "UNSUBSCRIBE without a topic filter")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	reasons := make([]byte, len(p.topics))
	for i, topic := range p.topics {
		f, own := ownFilter(c.uid, topic)
		switch {
		case !own:
			reasons[i] = rcNotAuthorized
		case !c.subs.remove(f):
			reasons[i] = rcNoSubscription
		}
	}
	c.dl.qos0 = c.downQoS0Locked()
	if c.level != level5 {
		ack := packets311.NewControlPacket(packets311.Unsuback).(*packets311.UnsubackPacket)
		ack.MessageID = p.pid
		return c.replyLocked(encode311(nil, ack))
	}
	cp := packets.NewControlPacket(packets.UNSUBACK)
	ack := cp.Content.(*packets.Unsuback)
	ack.PacketID, ack.Reasons = p.pid, reasons
	return c.replyLocked(encode5(nil, cp))
}

// OwnPing reports whether the PING of reqID is one the adapter made to
// wake the writer for messages waiting for room in the window (see
// puback): not an answer the device asked for, so package conn does not
// count it against the device's answers.
func (c *Conn) OwnPing(reqID uint64) bool {
	if reqID == 0 {
		return false // a PINGREQ
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	pkt, ok := c.replies[reqID]
	return ok && pkt == nil
}

// replyLocked keeps pkt (nil: none) for the writer and returns the PING
// whose PONG makes the writer send it: every packet goes out through
// package conn's writer, in order, under its deadlines and queue bounds.
func (c *Conn) replyLocked(pkt []byte) (*cimpb.Frame, error) {
	if len(c.replies) >= maxReplies {
		return nil, violate(rcQuotaExceeded, conn.Flooding, "%d answers not read", len(c.replies))
	}
	if c.replies == nil {
		c.replies = make(map[uint64][]byte)
	}
	c.nextReq++
	c.replies[c.nextReq] = pkt
	return &cimpb.Frame{Type: cimpb.Type_PING, ReqId: c.nextReq}, nil
}

// pubackLocked appends a PUBACK; an MQTT 3.1.1 one only says success.
func (c *Conn) pubackLocked(out []byte, pid uint16, rc byte, why string) []byte {
	if c.level != level5 {
		ack := packets311.NewControlPacket(packets311.Puback).(*packets311.PubackPacket)
		ack.MessageID = pid
		return encode311(out, ack)
	}
	cp := packets.NewControlPacket(packets.PUBACK)
	ack := cp.Content.(*packets.Puback)
	ack.PacketID, ack.ReasonCode = pid, rc
	if rc != rcSuccess && c.problemInfo {
		ack.Properties.ReasonString = why
	}
	return encode5(out, cp)
}

// answerUplinkLocked turns the route's answer to a QoS 1 uplink (its
// RECEIPT_SENT, or an ERROR) into the device's PUBACK; it reports whether
// f was such an answer.
func (c *Conn) answerUplinkLocked(w *writeBatch, f *cimpb.Frame) bool {
	if f.ReqId == 0 {
		return false
	}
	pid, ok := c.pendingUp[f.ReqId]
	if !ok {
		return false
	}
	switch {
	case f.Type == cimpb.Type_RECEIPT && f.GetReceipt().GetStatus() == cimpb.ReceiptStatus_RECEIPT_SENT:
		c.answeredLocked(f.ReqId)
		w.out = c.pubackLocked(w.out, pid, rcSuccess, "")
	case f.Type == cimpb.Type_ERROR:
		c.answeredLocked(f.ReqId)
		if c.level == level5 {
			w.out = c.pubackLocked(w.out, pid, pubackReason(codeOf(f)), f.GetError().GetText())
			break
		}
		// 3.1.1 has no negative acknowledgement: close, and the device
		// sends it again when it is back.
		c.cfg.Logger.Debug("uplink refused; closing the MQTT 3.1.1 connection", "user", c.uid,
			"code", codeOf(f), "text", f.GetError().GetText())
		c.endLocked(w, conn.UplinkFailed, nil)
	default:
		return false
	}
	return true
}

// answeredLocked forgets the QoS 1 uplink req: its PUBACK is written.
func (c *Conn) answeredLocked(req uint64) {
	delete(c.pendingUp, req)
	if len(c.pendingUp) == 0 {
		c.pendingUp = nil // a device between its messages keeps no map
	}
}

// endLocked makes the connection end once this write is done; nothing more
// is published meanwhile.
func (c *Conn) endLocked(w *writeBatch, why conn.Cause, f *cimpb.Frame) {
	if c.ending {
		return
	}
	c.ending, c.noWill = true, true
	w.endWhy, w.endWith = why, f
}
