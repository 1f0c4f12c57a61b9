package mqttconn

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/packets"
	packets311 "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// hello is a CONNECT, whatever its protocol level.
type hello struct {
	level              byte
	clientID           string
	user               string
	pass               []byte
	hasUser, hasPass   bool
	cleanSession       bool // 3.1.1 CleanSession / MQTT 5 Clean Start
	clean              bool // the session starts without its backlog
	keepAlive          uint16
	will               bool
	willTopic          string
	willPayload        []byte
	willQoS            byte
	recvMax            uint16 // MQTT 5: QoS 1 messages the device takes at once (0: not said)
	maxPacket          uint32 // MQTT 5: the largest packet the device takes (0: not said)
	problemInfo        bool
	authMethod         string
	unsupportedVersion bool
}

// parseConnect reads a CONNECT with the codec of its protocol level. The
// 3.1.1 codec reads the protocol name and level first, which MQTT 5 keeps
// in the same place; an MQTT 5 CONNECT is then read again with the MQTT 5
// codec.
func parseConnect(raw []byte) (hello, error) {
	cp, err311 := decode311(raw)
	c311, _ := cp.(*packets311.ConnectPacket)
	if c311 == nil {
		return hello{}, fmt.Errorf("%w: CONNECT: %v", errMalformed, err311)
	}
	name, level := c311.ProtocolName, c311.ProtocolVersion
	switch {
	case name == "MQTT" && level == level5:
		cp5, err := decode5(raw)
		if err != nil {
			return hello{}, err
		}
		k, ok := cp5.Content.(*packets.Connect)
		if !ok {
			return hello{}, fmt.Errorf("%w: not a CONNECT", errMalformed)
		}
		h := hello{level: level5, clientID: k.ClientID, user: k.Username, pass: k.Password,
			hasUser: k.UsernameFlag, hasPass: k.PasswordFlag, cleanSession: k.CleanStart, keepAlive: k.KeepAlive,
			will: k.WillFlag, willTopic: k.WillTopic, willPayload: k.WillMessage, willQoS: k.WillQOS, problemInfo: true}
		if p := k.Properties; p != nil {
			if p.ReceiveMaximum != nil {
				if *p.ReceiveMaximum == 0 {
					return hello{}, fmt.Errorf("%w: receive maximum 0", errMalformed)
				}
				h.recvMax = *p.ReceiveMaximum
			}
			if p.MaximumPacketSize != nil {
				h.maxPacket = *p.MaximumPacketSize
			}
			if p.RequestProblemInfo != nil {
				h.problemInfo = *p.RequestProblemInfo != 0
			}
			h.authMethod = p.AuthMethod
			// A session that ends with the connection and starts clean has
			// no backlog to keep.
			h.clean = k.CleanStart && (p.SessionExpiryInterval == nil || *p.SessionExpiryInterval == 0)
		} else {
			h.clean = k.CleanStart
		}
		return h, nil
	case (name == "MQTT" && level == level311) || (name == "MQIsdp" && level == level31):
		if err311 != nil {
			return hello{}, err311
		}
		if c311.ReservedBit != 0 {
			return hello{}, fmt.Errorf("%w: CONNECT reserved flag set", errMalformed)
		}
		return hello{level: level, clientID: c311.ClientIdentifier, user: c311.Username, pass: c311.Password,
			hasUser: c311.UsernameFlag, hasPass: c311.PasswordFlag, cleanSession: c311.CleanSession,
			clean: c311.CleanSession, keepAlive: c311.Keepalive, will: c311.WillFlag, willTopic: c311.WillTopic,
			willPayload: c311.WillMessage, willQoS: c311.WillQos}, nil
	case name == "MQTT" || name == "MQIsdp":
		return hello{level: level, unsupportedVersion: true}, nil
	}
	return hello{}, fmt.Errorf("%w: protocol name %q is not MQTT", errMalformed, name)
}

// connect handles the first packet, a CONNECT (readPacket saw to that):
// its device must be one the route knows. It returns the LOGIN frame for
// package conn.
func (c *Conn) connect(raw []byte) (*cimpb.Frame, error) {
	h, err := parseConnect(raw)
	if err != nil {
		return nil, violate(0, conn.BadFrame, "%v", err)
	}
	// From here on the device gets a CONNACK, in the format of its level
	// (an unknown level above 5 gets MQTT 5's, one below gets 3.1.1's).
	c.mu.Lock()
	c.level = level311 // 3.1 packets are 3.1.1's
	if h.level >= level5 {
		c.level = level5
	}
	c.phase = phaseConnecting
	c.mu.Unlock()
	refuse := func(rc byte, format string, args ...any) (*cimpb.Frame, error) {
		return nil, violate(rc, conn.LoginRefused, format, args...)
	}
	switch {
	case h.unsupportedVersion:
		return refuse(rcUnsupportedVersion, "protocol level %d", h.level)
	case h.authMethod != "":
		return refuse(rcBadAuthMethod, "enhanced authentication %q", h.authMethod)
	case h.clientID == "" && !h.cleanSession && h.level != level5:
		return refuse(rcClientIDInvalid, "empty client id with a persistent session")
	case !h.hasUser || !h.hasPass || h.user == "":
		return refuse(rcBadCredentials, "no username or password")
	}
	if h.will {
		switch {
		case h.willQoS > 2:
			return nil, violate(0, conn.BadFrame, "%v: will QoS %d", errMalformed, h.willQoS)
		case h.willQoS == 2:
			return refuse(rcQoSNotSupported, "will with QoS 2")
		case len(h.willPayload) > c.cfg.MaxBody:
			return refuse(rcPacketTooLarge, "will of %d bytes, the limit is %d", len(h.willPayload), c.cfg.MaxBody)
		case !strings.HasPrefix(h.willTopic, topicRoot):
			return refuse(rcNotAuthorized, "will topic %q is not the device's uplink", h.willTopic)
		}
	}

	tok, rc, err := c.deviceLogin(h)
	if err != nil {
		return refuse(rc, "%v", err)
	}
	var will *cimpb.Frame
	if h.will {
		t, ok := uplinkTarget(tok.UserID, h.willTopic)
		if !ok {
			return refuse(rcNotAuthorized, "will topic %q is not the device's uplink", h.willTopic)
		}
		will = uplinkMsg(0, c.msgIDs.next()+"-will", t, h.willPayload)
	}
	c.will = will
	c.mu.Lock()
	c.uid, c.down, c.sessionPresent = tok.UserID, downTopic(tok.UserID), tok.SessionPresent
	if h.level == level5 && h.clientID == "" {
		c.assignedID = tok.UserID
	}
	c.keepAlive = time.Duration(h.keepAlive) * 1500 * time.Millisecond
	c.problemInfo, c.maxOut = h.problemInfo, h.maxPacket
	c.dl.window = c.cfg.InFlight
	if h.recvMax > 0 {
		c.dl.window = min(c.dl.window, int(h.recvMax))
	}
	c.mu.Unlock()
	return &cimpb.Frame{Type: cimpb.Type_LOGIN, Login: &cimpb.Login{Token: tok.Token, ClientVersion: "mqtt/" + strconv.Itoa(int(h.level))}}, nil
}

// deviceLogin waits for a turn at the gate and asks the route for the
// device's token, both within the login timeout (the read deadline package
// conn set for the CONNECT). A refusal comes with its CONNACK reason.
func (c *Conn) deviceLogin(h hello) (contract.DeviceToken, byte, error) {
	ctx, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	if c.closed || c.halfClosed {
		c.mu.Unlock()
		cancel()
		return contract.DeviceToken{}, rcServerBusy, errors.New("connection closing")
	}
	if d := c.readDeadline; !d.IsZero() {
		cancel()
		ctx, cancel = context.WithDeadline(context.Background(), d)
	}
	c.loginCancel = cancel
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.loginCancel = nil
		c.mu.Unlock()
		cancel()
	}()
	if c.cfg.Gate != nil {
		leave, err := c.cfg.Gate.Enter(ctx)
		if err != nil {
			return contract.DeviceToken{}, rcServerBusy, err
		}
		defer leave()
	}
	tok, err := c.cfg.Login.DeviceLogin(ctx, contract.DeviceLogin{
		Device: h.user, Secret: string(h.pass), GatewayID: c.cfg.GatewayID, Clean: h.clean})
	switch {
	case err == nil:
		return tok, rcSuccess, nil
	case errors.Is(err, ErrBadCredentials):
		return tok, rcBadCredentials, err
	case errors.Is(err, ErrBusy), ctx.Err() != nil:
		return tok, rcServerBusy, err
	}
	c.cfg.Logger.Warn("device login failed", "device", h.user, "remote", c.nc.RemoteAddr(), "err", err)
	return tok, rcUnspecified, err
}

// connackLocked appends the CONNACK with reason rc (rcSuccess: accepted).
func (c *Conn) connackLocked(out []byte, rc byte) []byte {
	if c.level != level5 {
		p := packets311.NewControlPacket(packets311.Connack).(*packets311.ConnackPacket)
		p.ReturnCode = v311Connack(rc)
		p.SessionPresent = rc == rcSuccess && c.sessionPresent
		return encode311(out, p)
	}
	cp := packets.NewControlPacket(packets.CONNACK)
	ack := cp.Content.(*packets.Connack)
	ack.ReasonCode = rc
	if rc == rcSuccess {
		ack.SessionPresent = c.sessionPresent
		qos, zero := byte(1), byte(0)
		maxPacket := uint32(c.cfg.maxPacket() + 5) // with the fixed header
		recvMax := uint16(c.cfg.InFlight)
		ack.Properties.MaximumQOS = &qos
		ack.Properties.MaximumPacketSize = &maxPacket
		ack.Properties.ReceiveMaximum = &recvMax
		ack.Properties.SharedSubAvailable = &zero
		ack.Properties.AssignedClientID = c.assignedID
	}
	return encode5(out, cp)
}

// disconnectLocked appends an MQTT 5 DISCONNECT with reason rc.
func (c *Conn) disconnectLocked(out []byte, rc byte) []byte {
	cp := packets.NewControlPacket(packets.DISCONNECT)
	cp.Content.(*packets.Disconnect).ReasonCode = rc
	return encode5(out, cp)
}

// codeOf is an ERROR frame's code.
func codeOf(f *cimpb.Frame) codes.Code { return codes.Code(f.GetError().GetCode()) }

// msgIDs makes the client_msg_ids of a connection's uplinks: a random
// prefix per connection and a counter.
type msgIDs struct {
	prefix string
	n      uint64
}

func (m *msgIDs) next() string {
	if m.prefix == "" {
		m.prefix = fmt.Sprintf("mq%016x", rand.Uint64())
	}
	m.n++
	return m.prefix + "-" + strconv.FormatUint(m.n, 36)
}
