package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/codes"
)

// device is a device's account and credential, as POST /devices answers.
type device struct {
	DeviceID string `json:"deviceId"`
	Name     string `json:"name"`
	Secret   string `json:"secret"`
}

// newDevice creates a device with the admin API.
func newDevice(t *testing.T, c *harness.Cluster, name string) device {
	t.Helper()
	env := checkAPI(t, c, http.MethodPost, "/devices", harness.APIKey(harness.AdminKey), map[string]string{"name": name}, http.StatusOK, codes.OK)
	var d device
	if err := json.Unmarshal(env.Data, &d); err != nil || d.DeviceID == "" || d.Secret == "" || d.Name != name {
		t.Fatalf("POST /devices answered %s (%v)", env.Data, err)
	}
	return d
}

func (d device) down() string        { return "gocim/" + d.DeviceID + "/down" }
func (d device) up(to string) string { return "gocim/" + d.DeviceID + "/up/" + to }
func (d device) upToApp() string     { return "gocim/" + d.DeviceID + "/up" }
func mosquittoArgs(addr string, d device, version string) []string {
	host, port, _ := net.SplitHostPort(addr)
	return []string{"-h", host, "-p", port, "-u", d.DeviceID, "-P", d.Secret, "-V", version}
}

// mosquittoSub runs mosquitto_sub for d on the downlink topic and records
// each payload it prints.
func mosquittoSub(t *testing.T, addr string, d device, version string, extra ...string) *harness.Recorder[string] {
	t.Helper()
	args := append(mosquittoArgs(addr, d, version), "-t", d.down(), "-q", "1")
	cmd := exec.Command("mosquitto_sub", append(args, extra...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("mosquitto_sub: %v", err)
	}
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("mosquitto_sub %s stderr: %s", version, stderr.String())
		}
	})
	return harness.Record(lines)
}

// mosquittoPub publishes one payload as d with mosquitto_pub.
func mosquittoPub(t *testing.T, addr string, d device, version, topic, payload string) {
	t.Helper()
	args := append(mosquittoArgs(addr, d, version), "-t", topic, "-q", "1", "-m", payload)
	if out, err := exec.Command("mosquitto_pub", args...).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub %s to %s: %v: %s", version, topic, err, out)
	}
}

// pahoClient connects d with the Go MQTT client (3.1.1) to the brokers given,
// persistent session, acknowledging by hand; got receives each downlink
// message.
func pahoClient(t *testing.T, d device, clean bool, got chan<- mqtt.Message, brokers ...string) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().SetClientID("paho-" + d.Name).SetUsername(d.DeviceID).SetPassword(d.Secret).
		SetCleanSession(clean).SetAutoAckDisabled(true).SetAutoReconnect(true).SetConnectRetry(true).
		SetMaxReconnectInterval(500 * time.Millisecond).SetConnectTimeout(5 * time.Second).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { got <- m })
	for _, b := range brokers {
		opts.AddBroker("tcp://" + b)
	}
	cl := mqtt.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("paho connect %s: %v", d.Name, tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(100) })
	return cl
}

// pushTo sends a command from the app back-end (POST /api/push).
func pushTo(t *testing.T, c *harness.Cluster, to, text string) {
	t.Helper()
	checkAPI(t, c, http.MethodPost, "/api/push", harness.APIKey(harness.PushKey), map[string]any{"to": []string{to}, "msg": text}, http.StatusOK, codes.OK)
}

// TestMQTTDevices: devices speak MQTT 3.1.1 and 5 to the gateways with the
// Debian mosquitto clients and the Go paho client: commands down from the
// app back-end and from a user, data up to a user and to the back-end's
// webhook, presence and GET /devices/<id>, a revoked credential refused.
func TestMQTTDevices(t *testing.T) {
	rcv := newHookReceiver(t)
	c := harness.Start(t, harness.Options{Gateways: 2, MQTT: true, RouteArgs: []string{
		"--webhook-url", rcv.srv.URL + "/gocim/events",
		"--webhook-secret", webhookSecret,
		"--webhook-retry-max", "2s",
	}})
	ctx := ctxT(t)
	bob := c.Connect(t, "bob")
	sensor := newDevice(t, c, "sensor-1")
	valve := newDevice(t, c, "valve-1")
	if _, err := bob.Subscribe(ctx, []string{"sensor-1", "valve-1"}, nil); err != nil {
		t.Fatal(err)
	}

	// Commands down: v3.1.1 on one gateway, v5 on the other.
	sub3 := mosquittoSub(t, c.Gateways[0].MQTTAddr, sensor, "mqttv311", "-i", "sensor-1", "-c")
	sub5 := mosquittoSub(t, c.Gateways[1].MQTTAddr, valve, "mqttv5")
	bob.WaitFor(t, 0, wait, "sensor-1 online as a device", isPresenceOn(sensor.DeviceID, "device"))
	pushTo(t, c, "sensor-1", "open valve")
	sub3.WaitFor(t, 0, wait, "the command", func(s string) bool { return s == "open valve" })
	if _, err := bob.Send(ctx, "valve-1", "close"); err != nil {
		t.Fatal(err)
	}
	sub5.WaitFor(t, 0, wait, "bob's command", func(s string) bool { return s == "close" })

	// Data up: to bob (both protocol versions), and to the app back-end.
	mosquittoPub(t, c.Gateways[1].MQTTAddr, sensor, "mqttv311", sensor.up("bob"), "temp=21")
	mosquittoPub(t, c.Gateways[0].MQTTAddr, valve, "mqttv5", valve.up(bob.ID), "pressure=3")
	bob.WaitFor(t, 0, wait, "the sensor's data", func(e client.Event) bool {
		return e.Kind == client.EventMessage && string(e.Msg.Body) == "temp=21" && e.Msg.From == sensor.DeviceID
	})
	bob.WaitFor(t, 0, wait, "the valve's data", harness.IsMessage("pressure=3"))
	mosquittoPub(t, c.Gateways[0].MQTTAddr, sensor, "mqttv5", sensor.upToApp(), "battery=80")
	rcv.wait(t, "device.data", "the sensor's data for the back-end", func(d hookData) bool {
		return d.From == sensor.DeviceID && string(d.Body) == "battery=80" && d.Kind == "binary"
	})

	// The device's state for back-ends.
	var info struct {
		Online   bool   `json:"online"`
		Gateway  string `json:"gateway"`
		LastSeen int64  `json:"lastSeen"`
		Platform string `json:"platform"`
	}
	// (mosquitto_pub's own connections as sensor-1 replaced the
	// subscriber's session for a moment: one session per device under the
	// default login policy; mosquitto_sub comes back by itself.)
	harness.Eventually(t, wait, func() error {
		env := checkAPI(t, c, http.MethodGet, "/devices/"+sensor.DeviceID, harness.APIKey(harness.AdminKey), nil, http.StatusOK, codes.OK)
		if err := json.Unmarshal(env.Data, &info); err != nil || !info.Online || info.Gateway != c.Gateways[0].ID || info.LastSeen == 0 {
			return fmt.Errorf("GET /devices/%s = %s (%v)", sensor.DeviceID, env.Data, err)
		}
		return nil
	})
	checkAPI(t, c, http.MethodGet, "/devices/"+sensor.DeviceID, harness.APIKey(harness.PushKey), nil, http.StatusForbidden, codes.Forbidden)

	// Revoked: the connection is closed and the credential refused.
	checkAPI(t, c, http.MethodDelete, "/devices/"+valve.DeviceID, harness.APIKey(harness.AdminKey), nil, http.StatusOK, codes.OK)
	bob.WaitFor(t, 0, wait, "valve-1 offline", isPresence(valve.DeviceID, false))
	args := append(mosquittoArgs(c.Gateways[0].MQTTAddr, valve, "mqttv5"), "-t", valve.upToApp(), "-m", "x")
	if out, err := exec.Command("mosquitto_pub", args...).CombinedOutput(); err == nil {
		t.Fatalf("mosquitto_pub with a revoked credential succeeded: %s", out)
	} else if !strings.Contains(strings.ToLower(string(out)), "not authori") && !strings.Contains(strings.ToLower(string(out)), "bad user name or password") {
		t.Fatalf("mosquitto_pub with a revoked credential: %v: %s", err, out)
	}
}

// TestMQTTRedeliveryAndGatewayLoss: a QoS 1 message the device did not
// acknowledge comes again after its connection dropped, in order, and a
// fleet on a gateway that is killed moves to the other one and gets every
// command sent meanwhile exactly once.
func TestMQTTRedeliveryAndGatewayLoss(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2, MQTT: true})
	const fleet = 20
	var devs []device
	for i := range fleet {
		devs = append(devs, newDevice(t, c, fmt.Sprintf("meter-%d", i)))
	}
	// The first device does not acknowledge its first message, then its
	// connection drops: it comes again.
	got := make(chan mqtt.Message, 100)
	cl := pahoClient(t, devs[0], false, got, c.Gateways[0].MQTTAddr)
	if tok := cl.Subscribe(devs[0].down(), 1, nil); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pushTo(t, c, devs[0].Name, "first")
	m := recvMQTT(t, got)
	if string(m.Payload()) != "first" {
		t.Fatalf("got %q, want first", m.Payload())
	}
	cl.Disconnect(0) // without PUBACK
	got2 := make(chan mqtt.Message, 100)
	cl2 := pahoClient(t, devs[0], false, got2, c.Gateways[1].MQTTAddr)
	pushTo(t, c, devs[0].Name, "second")
	for _, want := range []string{"first", "second"} {
		m := recvMQTT(t, got2)
		if string(m.Payload()) != want {
			t.Fatalf("after the reconnect got %q, want %q", m.Payload(), want)
		}
		m.Ack()
	}
	cl2.Disconnect(100)

	// A fleet on gateway 0 (each client knows both gateways); gateway 0 is
	// killed; commands sent before and after reach every device once.
	type meter struct {
		d   device
		got chan mqtt.Message
	}
	var meters []meter
	for _, d := range devs[1:] {
		ch := make(chan mqtt.Message, 100)
		pahoClient(t, d, false, ch, c.Gateways[0].MQTTAddr, c.Gateways[1].MQTTAddr)
		meters = append(meters, meter{d, ch})
	}
	for _, mt := range meters {
		pushTo(t, c, mt.d.Name, "before")
	}
	for _, mt := range meters {
		m := recvMQTT(t, mt.got)
		if string(m.Payload()) != "before" {
			t.Fatalf("%s got %q", mt.d.Name, m.Payload())
		}
		m.Ack()
	}
	c.Gateways[0].Signal(syscall.SIGKILL)
	for _, mt := range meters {
		pushTo(t, c, mt.d.Name, "after")
	}
	for _, mt := range meters {
		for {
			m := recvMQTT(t, mt.got)
			m.Ack()
			if string(m.Payload()) == "after" {
				break
			}
			if string(m.Payload()) != "before" { // a repeat of an unacknowledged one is allowed once
				t.Fatalf("%s got %q after the gateway died", mt.d.Name, m.Payload())
			}
		}
	}
}

func recvMQTT(t *testing.T, ch <-chan mqtt.Message) mqtt.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(wait):
		t.Fatal("no MQTT message within the wait")
		return nil
	}
}

// TestMQTTHostilePackets: bad lengths, a wrong protocol, an oversized
// payload, a packet before CONNECT and topics outside the device's own each
// end their connection cleanly; the gateway goes on serving the others.
func TestMQTTHostilePackets(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1, MQTT: true})
	addr := c.Gateways[0].MQTTAddr
	d := newDevice(t, c, "probe-1")
	connect := mqttConnect(d.DeviceID, d.Secret)
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"remaining length over four bytes", []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"announced length far over the limit", []byte{0x10, 0xff, 0xff, 0xff, 0x7f}},
		{"wrong protocol name", []byte{0x10, 0x0c, 0x00, 0x04, 'H', 'T', 'T', 'P', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00}},
		{"publish before connect", []byte{0x30, 0x05, 0x00, 0x01, 'a', 'h', 'i'}},
		{"http request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"second connect", append(append([]byte{}, connect...), connect...)},
		{"oversized publish", append(append([]byte{}, connect...), mqttPublish(d.upToApp(), strings.Repeat("x", 1<<20))...)},
		{"publish outside own topics", append(append([]byte{}, connect...), mqttPublishQoS1("gocim/1/up/bob", "spoof")...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_, _ = nc.Write(tc.send) // the gateway may close before it read everything
			_ = nc.SetReadDeadline(time.Now().Add(wait))
			if _, err := io.Copy(io.Discard, nc); err != nil && !isConnReset(err) {
				t.Fatalf("connection not closed cleanly: %v", err)
			}
		})
	}
	// Still serving: a well-behaved device gets its command. The hostile
	// connections that logged in as probe-1 must be gone first: the route
	// may still count one online, and a push to it would be stored for a
	// session the clean mosquitto_sub below skips.
	waitDeviceOnline(t, c, d, false)
	sub := mosquittoSub(t, addr, d, "mqttv311")
	waitDeviceOnline(t, c, d, true)
	pushTo(t, c, d.Name, "still here")
	sub.WaitFor(t, 0, wait, "the command after the hostile connections", func(s string) bool { return s == "still here" })
}

// waitDeviceOnline waits until GET /devices/<id> says d is online (or not).
func waitDeviceOnline(t *testing.T, c *harness.Cluster, d device, online bool) {
	t.Helper()
	harness.Eventually(t, wait, func() error {
		var info struct {
			Online bool `json:"online"`
		}
		var env harness.Envelope
		if _, err := c.API(http.MethodGet, "/devices/"+d.DeviceID, harness.APIKey(harness.AdminKey), nil, &env); err != nil {
			return err
		}
		if err := json.Unmarshal(env.Data, &info); err != nil || info.Online != online {
			return fmt.Errorf("%s online=%v, want %v: %s", d.Name, info.Online, online, env.Data)
		}
		return nil
	})
}

func isConnReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// mqttConnect is an MQTT 3.1.1 CONNECT with a username and password.
func mqttConnect(user, pass string) []byte {
	var vh []byte
	vh = append(vh, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xC2, 0x00, 0x3c)
	body := append(vh, mqttString("probe")...)
	body = append(body, mqttString(user)...)
	body = append(body, mqttString(pass)...)
	return append(append([]byte{0x10}, mqttLength(len(body))...), body...)
}

func mqttPublish(topic, payload string) []byte {
	body := append(mqttString(topic), payload...)
	return append(append([]byte{0x30}, mqttLength(len(body))...), body...)
}

func mqttPublishQoS1(topic, payload string) []byte {
	body := append(mqttString(topic), 0x00, 0x07)
	body = append(body, payload...)
	return append(append([]byte{0x32}, mqttLength(len(body))...), body...)
}

func mqttString(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

func mqttLength(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}
