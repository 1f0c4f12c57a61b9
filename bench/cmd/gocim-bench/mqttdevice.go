package main

// The bench's MQTT device: what a cheap device does, on a raw net.Conn with
// Eclipse Paho's MQTT 5 packet codec (github.com/eclipse/paho.golang/packets)
// and nothing else, so that a load generator holds thousands of them: one
// reader goroutine, a small read buffer and a keep-alive timer each.
//
// A device CONNECTs (MQTT 5, clean start, username = its device id,
// password = its credential), SUBSCRIBEs to its downlink gocim/<id>/down at
// QoS 1, answers each QoS 1 PUBLISH with PUBACK at once, PINGs every
// keep-alive and can PUBLISH at QoS 1 on its uplink gocim/<id>/up/<to>.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"

	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/codes"
)

const (
	mqttKeepAlive   = 60 * time.Second // every device's CONNECT keep-alive
	mqttReadBuf     = 256              // a device's read buffer: most packets are a few dozen bytes
	mqttDialTimeout = 10 * time.Second
	// A device told "server busy" (the gateway's login queue is full, or
	// the route is busy) comes back after a random pause of up to
	// mqttBusyBackoff (doubling up to mqttBusyMax).
	mqttBusyBackoff = 50 * time.Millisecond
	mqttBusyMax     = time.Second
)

// mqttAccount is a device's account, as POST /devices answers it.
type mqttAccount struct {
	DeviceID string `json:"deviceId"`
	Name     string `json:"name"`
	Secret   string `json:"secret"`
}

func (a mqttAccount) downTopic() string        { return "gocim/" + a.DeviceID + "/down" }
func (a mqttAccount) upTopic(to string) string { return "gocim/" + a.DeviceID + "/up/" + to }

// apiCall calls the route's public API with an API key: body as JSON in,
// the envelope's data into out (nil: ignored). A code other than OK is an
// error.
func apiCall(ctx context.Context, hc *http.Client, method, url, key string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", key)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Code    codes.Code      `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s %s: HTTP %d, not an envelope: %.200s", method, url, resp.StatusCode, raw)
	}
	if env.Code != codes.OK {
		return fmt.Errorf("%s %s: HTTP %d, code %d: %s", method, url, resp.StatusCode, env.Code, env.Message)
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return fmt.Errorf("%s %s: data %.200s: %w", method, url, env.Data, err)
		}
	}
	return nil
}

// createDevice creates device name with the admin API (POST /devices).
func createDevice(ctx context.Context, hc *http.Client, routeURL, name string) (mqttAccount, error) {
	var a mqttAccount
	if err := apiCall(ctx, hc, http.MethodPost, routeURL+"/devices", harness.AdminKey, map[string]string{"name": name}, &a); err != nil {
		return a, err
	}
	if a.DeviceID == "" || a.Secret == "" {
		return a, fmt.Errorf("POST /devices %s: no deviceId or secret in the answer", name)
	}
	return a, nil
}

// pushCommand is the app back-end's command to one device (POST /api/push).
func pushCommand(ctx context.Context, hc *http.Client, routeURL, to, msg string) error {
	return apiCall(ctx, hc, http.MethodPost, routeURL+"/api/push", harness.PushKey, map[string]any{"to": []string{to}, "msg": msg}, nil)
}

// mqttStats counts what went unusual on a set of devices.
type mqttStats struct {
	busy    atomic.Int64 // CONNECTs answered "server busy" (and tried again)
	dropped atomic.Int64 // connections that ended without the bench closing them
	nacks   atomic.Int64 // PUBACKs with a failure reason
	lastEnd atomic.Value // string: why the latest dropped connection ended
}

// errMQTTBusy: the CONNACK said server busy / unavailable / rate exceeded.
var errMQTTBusy = errors.New("mqtt: server busy")

// mqttHandlers are a device's callbacks, called on its reader goroutine.
type mqttHandlers struct {
	// onPublish: a downlink PUBLISH arrived at now (its PUBACK is written
	// first).
	onPublish func(payload []byte, now time.Time)
	// onPuback: the PUBACK of an uplink PUBLISH written at sent arrived at
	// now, with reason (0 success).
	onPuback func(sent time.Time, reason byte, now time.Time)
}

// mqttDevice is one connected device.
type mqttDevice struct {
	acct  mqttAccount
	nc    net.Conn
	h     mqttHandlers
	stats *mqttStats

	wmu     sync.Mutex // one packet written at a time
	nextID  uint16
	pending map[uint16]time.Time // uplink packet id → written at (under wmu)
	ping    *time.Timer
	closed  atomic.Bool
}

// mqttConnect connects acct to the MQTT listener at addr through dialer,
// trying again (after a growing random pause) while the gateway says it is
// busy, until ctx ends.
func mqttConnect(ctx context.Context, dialer *net.Dialer, addr string, acct mqttAccount, h mqttHandlers, stats *mqttStats) (*mqttDevice, error) {
	backoff := mqttBusyBackoff
	for {
		d, err := mqttConnectOnce(ctx, dialer, addr, acct, h, stats)
		if !errors.Is(err, errMQTTBusy) {
			return d, err
		}
		stats.busy.Add(1)
		select {
		case <-time.After(backoff/2 + rand.N(backoff)):
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		}
		backoff = min(2*backoff, mqttBusyMax)
	}
}

func mqttConnectOnce(ctx context.Context, dialer *net.Dialer, addr string, acct mqttAccount, h mqttHandlers, stats *mqttStats) (*mqttDevice, error) {
	nc, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	nc.SetDeadline(deadline)
	d := &mqttDevice{acct: acct, nc: nc, h: h, stats: stats, pending: map[uint16]time.Time{}}
	br := bufio.NewReaderSize(nc, mqttReadBuf)
	fail := func(err error) (*mqttDevice, error) {
		nc.Close()
		return nil, err
	}
	c := &packets.Connect{
		ProtocolName: "MQTT", ProtocolVersion: 5, CleanStart: true,
		KeepAlive: uint16(mqttKeepAlive / time.Second), ClientID: acct.Name,
		UsernameFlag: true, Username: acct.DeviceID, PasswordFlag: true, Password: []byte(acct.Secret),
	}
	if _, err := c.WriteTo(nc); err != nil {
		return fail(fmt.Errorf("CONNECT: %w", err))
	}
	p, err := packets.ReadPacket(br)
	if err != nil {
		return fail(fmt.Errorf("CONNACK: %w", err))
	}
	ack, ok := p.Content.(*packets.Connack)
	if !ok {
		return fail(fmt.Errorf("CONNACK: got %s", p.PacketType()))
	}
	switch ack.ReasonCode {
	case packets.ConnackSuccess:
	case packets.ConnackServerBusy, packets.ConnackServerUnavailable, packets.ConnackConnectionRateExceeded:
		return fail(fmt.Errorf("%w: CONNACK reason 0x%02X", errMQTTBusy, ack.ReasonCode))
	default:
		return fail(fmt.Errorf("CONNACK reason 0x%02X (%s)", ack.ReasonCode, ack.Reason()))
	}
	sub := &packets.Subscribe{PacketID: 1, Subscriptions: []packets.SubOptions{{Topic: acct.downTopic(), QoS: 1}}}
	if _, err := sub.WriteTo(nc); err != nil {
		return fail(fmt.Errorf("SUBSCRIBE: %w", err))
	}
	for {
		p, err := packets.ReadPacket(br)
		if err != nil {
			return fail(fmt.Errorf("SUBACK: %w", err))
		}
		if sa, ok := p.Content.(*packets.Suback); ok {
			if len(sa.Reasons) != 1 || sa.Reasons[0] > 1 {
				return fail(fmt.Errorf("SUBACK reasons %v", sa.Reasons))
			}
			break
		}
		if err := d.handle(p); err != nil { // the downlink flows from CONNACK on
			return fail(err)
		}
	}
	nc.SetDeadline(time.Time{})
	d.ping = time.AfterFunc(mqttKeepAlive, d.keepAlive)
	go d.readLoop(br)
	return d, nil
}

// keepAlive sends PINGREQ every keep-alive (the gateway closes a device
// silent for 1.5 × its keep-alive).
func (d *mqttDevice) keepAlive() {
	if d.closed.Load() {
		return
	}
	d.write(&packets.Pingreq{})
	d.ping.Reset(mqttKeepAlive)
}

func (d *mqttDevice) write(p packets.Packet) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := p.WriteTo(d.nc)
	return err
}

func (d *mqttDevice) readLoop(br *bufio.Reader) {
	for {
		p, err := packets.ReadPacket(br)
		if err == nil {
			err = d.handle(p)
		}
		if err != nil {
			if !d.closed.Swap(true) {
				d.stats.dropped.Add(1)
				d.stats.lastEnd.Store(fmt.Sprintf("%s: %v", d.acct.Name, err))
				d.ping.Stop()
				d.nc.Close()
			}
			return
		}
	}
}

// handle is what the device does with a packet after login.
func (d *mqttDevice) handle(p *packets.ControlPacket) error {
	switch c := p.Content.(type) {
	case *packets.Publish:
		now := time.Now()
		if c.QoS == 1 {
			if err := d.write(&packets.Puback{PacketID: c.PacketID}); err != nil {
				return fmt.Errorf("PUBACK: %w", err)
			}
		}
		if d.h.onPublish != nil {
			d.h.onPublish(c.Payload, now)
		}
	case *packets.Puback:
		now := time.Now()
		d.wmu.Lock()
		sent, ok := d.pending[c.PacketID]
		delete(d.pending, c.PacketID)
		d.wmu.Unlock()
		if !ok {
			return nil
		}
		if c.ReasonCode >= 0x80 {
			d.stats.nacks.Add(1)
		}
		if d.h.onPuback != nil {
			d.h.onPuback(sent, c.ReasonCode, now)
		}
	case *packets.Disconnect:
		return fmt.Errorf("DISCONNECT reason 0x%02X", c.ReasonCode)
	}
	return nil // PINGRESP, SUBACK, …
}

// publish sends payload at QoS 1 on topic.
func (d *mqttDevice) publish(topic string, payload []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.closed.Load() {
		return errors.New("mqtt: connection ended")
	}
	for {
		d.nextID++
		if _, used := d.pending[d.nextID]; d.nextID != 0 && !used {
			break
		}
	}
	d.pending[d.nextID] = time.Now()
	d.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := (&packets.Publish{Topic: topic, QoS: 1, PacketID: d.nextID, Payload: payload}).WriteTo(d.nc)
	return err
}

// unacked is how many uplink PUBLISHes wait for their PUBACK.
func (d *mqttDevice) unacked() int {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	return len(d.pending)
}

// close sends DISCONNECT and closes the connection.
func (d *mqttDevice) close() {
	if d.closed.Swap(true) {
		return
	}
	d.ping.Stop()
	d.write(&packets.Disconnect{})
	d.nc.Close()
}
