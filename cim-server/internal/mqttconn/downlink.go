package mqttconn

import (
	"slices"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/packets"
	packets311 "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

const (
	// maxHeld bounds the entries one stream holds back while a gap fills:
	// a SYNC page (at most 200) and a good margin of live pushes, as the
	// SDK does.
	maxHeld = 1024
	// maxTimelines bounds the large groups' timelines tracked per
	// connection; messages of others go out untracked, at QoS 0.
	maxTimelines = 64
	// maxAckGroups is the most group positions one ACK carries.
	maxAckGroups = 64
	// ackDelay coalesces the device's acknowledgements into one ACK.
	ackDelay = 100 * time.Millisecond
)

// pingresp is the same packet in both protocol levels.
var pingresp = encode5(nil, packets.NewControlPacket(packets.PINGRESP))

// downlink is what a connection keeps about what it sends the device.
// Guarded by Conn.mu; maps and slices exist only while in use.
type downlink struct {
	inbox     *stream
	timelines map[string]*stream
	inflight  map[uint16]entry // QoS 1 PUBLISHes not acknowledged, by packet id
	nextPID   uint16
	waiting   []entry // released, waiting for room in the window
	window    int     // QoS 1 PUBLISHes unacknowledged at once
	qos0      bool    // the device subscribed to its downlink at QoS 0
	ackTimer  *time.Timer
	ackArmed  bool
}

// entry is one frame for the device.
type entry struct {
	f   *cimpb.Frame
	st  *stream // nil: not tracked (no seq: live only)
	seq uint64
}

// stream is one sequence of entries the device gets in order, exactly
// once: the user's inbox (by seq) or a large group's timeline (by
// group_seq). It is the SDK's bookkeeping (cim-client/client/inbox.go)
// without the rewind after Redis lost data: an entry at last+1 goes out,
// one beyond is held back and a SYNC fills the gap; one at or below last
// is a repeat.
type stream struct {
	group   string // "" for the inbox
	known   bool   // a SYNC answer placed last
	syncing bool   // a SYNC is outstanding
	last    uint64 // everything up to it went out (or was not for the device, or is gone)
	acked   uint64 // the position the last ACK carried
	dropped uint64 // lowest seq thrown away because held was full (0: none)
	held    map[uint64]*cimpb.Frame
	// open are the seqs that went out (or wait to) and are not
	// acknowledged yet, ascending: the ACK stops below the first.
	open []uint64
}

// target is the position everything up to which is acknowledged.
func (s *stream) target() uint64 {
	if len(s.open) > 0 {
		return s.open[0] - 1
	}
	return s.last
}

func (s *stream) syncFrame() *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{Group: s.group, AfterSeq: s.last, FromAcked: !s.known}}
}

// add takes the entry at seq, calls release for what goes out now, in
// order, and reports whether to ask a SYNC.
func (s *stream) add(seq uint64, f *cimpb.Frame, release func(uint64, *cimpb.Frame)) bool {
	if s.known {
		switch {
		case seq <= s.last:
			return false // a repeat
		case seq == s.last+1:
			release(seq, f)
			s.last = seq
			s.flush(release)
			return false
		}
	}
	// Beyond a gap, or before the first answer placed the stream.
	s.hold(seq, f)
	if s.syncing {
		return false
	}
	s.syncing = true
	return true
}

// answer takes the SYNC frame that ends a SYNC's answer (its entries came
// before it, through add) and reports whether to ask the next page.
func (s *stream) answer(sy *cimpb.Sync, release func(uint64, *cimpb.Frame)) bool {
	prev := s.last
	s.syncing = false
	// The route started after what the user acknowledged (from_acked):
	// everything up to there went to some device already.
	if after := sy.GetAfterSeq(); !s.known || after > s.last {
		s.known = true
		s.last = max(s.last, after)
		s.acked = max(s.acked, after)
		for seq := range s.held {
			if seq <= s.last {
				delete(s.held, seq)
			}
		}
	}
	// Trimmed: what is before first_seq is gone for good; an answer with no
	// entries and no first_seq says nothing is retained.
	first := sy.GetFirstSeq()
	if first == 0 && sy.GetLastSeq() == 0 && sy.GetHeadSeq() > 0 {
		first = sy.GetHeadSeq() + 1
	}
	if first > s.last+1 {
		s.releaseHeld(first-1, release)
	}
	// The answer carried every entry in (after_seq, last_seq] that exists:
	// a seq still missing there is a hole. Entries dropped for room are not.
	covered := sy.GetLastSeq()
	if s.dropped != 0 && s.dropped <= covered {
		covered = s.dropped - 1
	}
	if covered > s.last {
		s.releaseHeld(covered, release)
	}
	s.flush(release)
	if s.dropped != 0 && s.dropped <= s.last {
		s.dropped = 0
	}
	more := len(s.held) > 0 || sy.GetHeadSeq() > s.last
	if more && (s.last > prev || sy.GetLastSeq() > 0) {
		s.syncing = true
		return true
	}
	// Without progress a new SYNC could spin: the next entry with a gap
	// asks again.
	return false
}

func (s *stream) hold(seq uint64, f *cimpb.Frame) {
	if _, dup := s.held[seq]; dup {
		return
	}
	if s.held == nil {
		s.held = make(map[uint64]*cimpb.Frame)
	}
	if len(s.held) >= maxHeld {
		// The highest seqs give way: they are the furthest from going
		// out, and a later SYNC page brings them again.
		top := seq
		for q := range s.held {
			top = max(top, q)
		}
		if s.dropped == 0 || top < s.dropped {
			s.dropped = top
		}
		if top == seq {
			return
		}
		delete(s.held, top)
	}
	s.held[seq] = f
}

// releaseHeld moves last to upTo, releasing the held entries up to it in
// order.
func (s *stream) releaseHeld(upTo uint64, release func(uint64, *cimpb.Frame)) {
	var seqs []uint64
	for seq := range s.held {
		if seq <= upTo {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		release(seq, s.held[seq])
		delete(s.held, seq)
	}
	s.last = upTo
}

// flush releases the held entries that follow last.
func (s *stream) flush(release func(uint64, *cimpb.Frame)) {
	for {
		f, ok := s.held[s.last+1]
		if !ok {
			break
		}
		delete(s.held, s.last+1)
		s.last++
		release(s.last, f)
	}
	if len(s.held) == 0 {
		s.held = nil
	}
}

// settle notes that seq is acknowledged (or will never be).
func (s *stream) settle(seq uint64) {
	if i, ok := slices.BinarySearch(s.open, seq); ok {
		s.open = slices.Delete(s.open, i, i+1)
		if len(s.open) == 0 {
			s.open = nil
		}
	}
}

func (c *Conn) inboxLocked() *stream {
	if c.dl.inbox == nil {
		// The login SYNC package conn sent is outstanding.
		c.dl.inbox = &stream{syncing: true}
	}
	return c.dl.inbox
}

// timelineLocked returns gid's stream, nil when too many are tracked.
func (c *Conn) timelineLocked(gid string) *stream {
	if st, ok := c.dl.timelines[gid]; ok {
		return st
	}
	if len(c.dl.timelines) >= maxTimelines {
		return nil
	}
	if c.dl.timelines == nil {
		c.dl.timelines = make(map[string]*stream)
	}
	st := &stream{group: gid}
	c.dl.timelines[gid] = st
	return st
}

// downLocked translates a frame for an online device.
func (c *Conn) downLocked(w *writeBatch, f *cimpb.Frame) {
	switch f.Type {
	case cimpb.Type_PONG:
		if f.ReqId == 0 {
			w.out = append(w.out, pingresp...)
			return
		}
		if pkt, ok := c.replies[f.ReqId]; ok {
			delete(c.replies, f.ReqId)
			if len(c.replies) == 0 {
				c.replies = nil // an idle device keeps no map
			}
			if pkt == nil {
				c.draining = false // the writer drains the window below
			}
			w.out = append(w.out, pkt...)
		}
	case cimpb.Type_MSG:
		m := f.GetMsg()
		var st *stream
		seq := m.GetSeq()
		switch {
		case seq > 0:
			st = c.inboxLocked()
		case m.GetGroupSeq() > 0 && m.GetGroup() != "":
			st, seq = c.timelineLocked(m.GetGroup()), m.GetGroupSeq()
		}
		if st == nil {
			// Live only (a broadcast): at most once.
			if c.forDevice(f) {
				c.emitLocked(w, entry{f: f})
			}
			return
		}
		c.addLocked(w, st, seq, f)
	case cimpb.Type_RECEIPT:
		if c.answerUplinkLocked(w, f) {
			return
		}
		// Not for the device, but its place in the inbox counts.
		if seq := f.GetReceipt().GetSeq(); seq > 0 {
			c.addLocked(w, c.inboxLocked(), seq, f)
		}
	case cimpb.Type_SYNC:
		c.syncAnswerLocked(w, f.GetSync())
	case cimpb.Type_ERROR:
		if c.answerUplinkLocked(w, f) || f.GetError().GetClientMsgId() != "" {
			return // an answer to a message that waits for none (QoS 0, a will)
		}
		// What ends the connection: the device hears why (MQTT 5) when
		// it hangs up, and it is not the device's failure.
		c.endReason, c.noWill = disconnectReason(f), true
	case cimpb.Type_KICK:
		c.endReason, c.noWill = disconnectReason(f), true
	}
}

// forDevice reports whether a MSG goes to the device: not its own messages'
// copies in its inbox, and recalls and edits only on MQTT 5 (3.1.1 has no
// way to say what the payload is).
func (c *Conn) forDevice(f *cimpb.Frame) bool {
	m := f.GetMsg()
	return f.Type == cimpb.Type_MSG && m.GetFrom() != c.uid &&
		(c.level == level5 || m.GetOp() == cimpb.MsgOp_MSG_OP_NEW)
}

// addLocked puts an entry through its stream.
func (c *Conn) addLocked(w *writeBatch, st *stream, seq uint64, f *cimpb.Frame) {
	if st.add(seq, f, c.releaser(w, st)) {
		w.uplinks = append(w.uplinks, st.syncFrame())
	}
	c.ackDueLocked(st)
}

// releaser returns what releases st's entries: the device's go out, the
// others are settled at once.
func (c *Conn) releaser(w *writeBatch, st *stream) func(uint64, *cimpb.Frame) {
	return func(seq uint64, f *cimpb.Frame) {
		if !c.forDevice(f) {
			return
		}
		st.open = append(st.open, seq)
		c.emitLocked(w, entry{f: f, st: st, seq: seq})
	}
}

// syncAnswerLocked takes the SYNC frame ending a SYNC's answer.
func (c *Conn) syncAnswerLocked(w *writeBatch, sy *cimpb.Sync) {
	st := c.inboxLocked()
	if g := sy.GetGroup(); g != "" {
		if st = c.timelineLocked(g); st == nil {
			return
		}
	}
	if st.answer(sy, c.releaser(w, st)) {
		w.uplinks = append(w.uplinks, st.syncFrame())
	}
	c.ackDueLocked(st)
	// The login SYNC's answer lists the timelines with anything new.
	for _, g := range sy.GetGroups() {
		t := c.timelineLocked(g.GetGroup())
		if t == nil || g.GetGroup() == "" || t.syncing || (t.known && g.GetSeq() <= t.last) {
			continue
		}
		t.syncing = true
		w.uplinks = append(w.uplinks, t.syncFrame())
	}
}

// emitLocked publishes e now, or queues it behind the window.
func (c *Conn) emitLocked(w *writeBatch, e entry) {
	if c.ending {
		return
	}
	if len(c.dl.waiting) == 0 && !c.windowFullLocked(e) {
		c.publishLocked(w, e)
		return
	}
	if len(c.dl.waiting) >= c.cfg.InFlight {
		// The device does not acknowledge what it gets: it is a slow
		// consumer, like a TCP client that does not read.
		c.cfg.Logger.Warn("MQTT device does not acknowledge its messages; disconnected as a slow consumer",
			"user", c.uid, "remote", c.nc.RemoteAddr(), "in_flight", len(c.dl.inflight), "waiting", len(c.dl.waiting))
		c.endLocked(w, conn.SlowConsumer, conn.ErrorFrame(0, codes.SlowConsumer, "MQTT window full", ""))
		return
	}
	c.dl.waiting = append(c.dl.waiting, e)
}

// qos1 reports whether e goes at QoS 1.
func (c *Conn) qos1(e entry) bool { return e.st != nil && !c.dl.qos0 }

func (c *Conn) windowFullLocked(e entry) bool {
	return c.qos1(e) && len(c.dl.inflight) >= c.dl.window
}

// drainLocked publishes what waits, as far as the window allows.
func (c *Conn) drainLocked(w *writeBatch) {
	n := 0
	for _, e := range c.dl.waiting {
		if c.ending || c.windowFullLocked(e) {
			break
		}
		c.publishLocked(w, e)
		n++
	}
	if n > 0 {
		clear(c.dl.waiting[:n])
		c.dl.waiting = c.dl.waiting[n:]
		if len(c.dl.waiting) == 0 {
			c.dl.waiting = nil
		}
	}
}

// publishLocked appends e's PUBLISH.
func (c *Conn) publishLocked(w *writeBatch, e entry) {
	qos1 := c.qos1(e)
	var pid uint16
	if qos1 {
		pid = c.allocPIDLocked()
	}
	n := len(w.out)
	w.out = c.publishPacketLocked(w.out, e.f.GetMsg(), pid, qos1)
	if c.maxOut > 0 && len(w.out)-n > int(c.maxOut) {
		// Over what the device takes: MQTT 5 treats it as delivered.
		w.out = w.out[:n]
		c.cfg.Logger.Debug("message over the device's maximum packet size dropped", "user", c.uid,
			"bytes", len(e.f.GetMsg().GetBody()), "max_packet", c.maxOut)
		c.settleLocked(e)
		return
	}
	if !qos1 {
		c.settleLocked(e)
		return
	}
	if c.dl.inflight == nil {
		c.dl.inflight = make(map[uint16]entry)
	}
	c.dl.inflight[pid] = e
}

func (c *Conn) allocPIDLocked() uint16 {
	for {
		c.dl.nextPID++
		if c.dl.nextPID == 0 {
			c.dl.nextPID = 1
		}
		if _, used := c.dl.inflight[c.dl.nextPID]; !used {
			return c.dl.nextPID
		}
	}
}

// publishPacketLocked appends the PUBLISH of m on the device's downlink.
func (c *Conn) publishPacketLocked(out []byte, m *cimpb.Msg, pid uint16, qos1 bool) []byte {
	if c.level != level5 {
		p := packets311.NewControlPacket(packets311.Publish).(*packets311.PublishPacket)
		p.TopicName, p.Payload = c.down, m.GetBody()
		if qos1 {
			p.Qos, p.MessageID = 1, pid
		}
		return encode311(out, p)
	}
	cp := packets.NewControlPacket(packets.PUBLISH)
	p := cp.Content.(*packets.Publish)
	p.Topic, p.Payload = c.down, m.GetBody()
	if qos1 {
		p.QoS, p.PacketID = 1, pid
	}
	props := p.Properties
	add := func(k, v string) {
		if v != "" {
			props.User = append(props.User, packets.User{Key: k, Value: v})
		}
	}
	add("from", m.GetFrom())
	add("from_name", m.GetFromName())
	add("msg_id", m.GetMsgId())
	add("to", m.GetTo())
	add("group", m.GetGroup())
	add("kind", strings.ToLower(strings.TrimPrefix(m.GetKind().String(), "KIND_")))
	if m.GetOp() != cimpb.MsgOp_MSG_OP_NEW {
		add("op", strings.ToLower(strings.TrimPrefix(m.GetOp().String(), "MSG_OP_")))
		add("ref_msg_id", m.GetRefMsgId())
	}
	if m.GetKind() == cimpb.Kind_KIND_TEXT {
		utf8 := byte(1)
		props.PayloadFormat = &utf8
		props.ContentType = "text/plain; charset=utf-8"
	}
	return encode5(out, cp)
}

// acknowledgedLocked takes the device's PUBACK of a downlink message.
func (c *Conn) acknowledgedLocked(pid uint16) {
	e, ok := c.dl.inflight[pid]
	if !ok {
		return // not ours (a repeat): nothing to do
	}
	delete(c.dl.inflight, pid)
	if len(c.dl.inflight) == 0 {
		c.dl.inflight = nil
	}
	c.settleLocked(e)
}

func (c *Conn) settleLocked(e entry) {
	if e.st == nil {
		return
	}
	e.st.settle(e.seq)
	c.ackDueLocked(e.st)
}

// ackDueLocked arms the ACK when st's position moved.
func (c *Conn) ackDueLocked(st *stream) {
	if st.target() <= st.acked || c.dl.ackArmed || c.closed {
		return
	}
	c.dl.ackArmed = true
	if c.dl.ackTimer == nil {
		c.dl.ackTimer = time.AfterFunc(ackDelay, c.flushAcks)
		return
	}
	c.dl.ackTimer.Reset(ackDelay)
}

// flushAcks sends the ACK that is due.
func (c *Conn) flushAcks() {
	c.mu.Lock()
	c.dl.ackArmed = false
	var f *cimpb.Frame
	if !c.closed {
		f = c.acksLocked()
	}
	c.mu.Unlock()
	if f != nil && c.owner != nil {
		c.owner.Uplink(f)
	}
}

// acksLocked returns the ACK for every stream whose position moved (nil:
// none did), and records it as sent.
func (c *Conn) acksLocked() *cimpb.Frame {
	var ack *cimpb.Ack
	if in := c.dl.inbox; in != nil && in.target() > in.acked {
		in.acked = in.target()
		ack = &cimpb.Ack{Seq: in.acked}
	}
	for gid, st := range c.dl.timelines {
		if st.target() <= st.acked {
			continue
		}
		if ack == nil {
			ack = &cimpb.Ack{}
		}
		if len(ack.Groups) == maxAckGroups {
			c.ackDueLocked(st) // the rest in the next one
			break
		}
		st.acked = st.target()
		ack.Groups = append(ack.Groups, &cimpb.GroupSeq{Group: gid, Seq: st.acked})
	}
	if ack == nil {
		return nil
	}
	if ack.Seq == 0 && c.dl.inbox != nil {
		ack.Seq = c.dl.inbox.acked // a repeat the route ignores
	}
	return &cimpb.Frame{Type: cimpb.Type_ACK, Ack: ack}
}

// closeAcksLocked stops the ACK timer and returns the ACK still due.
func (c *Conn) closeAcksLocked() *cimpb.Frame {
	if c.dl.ackTimer != nil {
		c.dl.ackTimer.Stop()
	}
	c.dl.ackArmed = false
	return c.acksLocked()
}
