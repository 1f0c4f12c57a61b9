package contract

import (
	"errors"
	"testing"
)

// TestGatewayInfoMQTT: a gateway's MQTT address (and whether it speaks
// TLS) goes through its node's data; a bad address, or TLS without one, is
// not a gateway's.
func TestGatewayInfoMQTT(t *testing.T) {
	for _, info := range []GatewayInfo{
		{MQTTAddr: "10.0.0.7:1883"},
		{MQTTAddr: "gw.example.com:8883", MQTTTLS: true},
		{MQTTAddr: "[2001:db8::7]:1883", WSURL: "ws://[2001:db8::7]:9200/ws"},
	} {
		b := info.Marshal()
		got, err := ParseGatewayInfo(b)
		if err != nil || got != info {
			t.Fatalf("round trip of %+v via %s: %+v, %v", info, b, got, err)
		}
	}
	if b := string((GatewayInfo{MQTTAddr: "h:1", MQTTTLS: true}).Marshal()); b != `{"mqtt":"h:1","mqttTls":true}` {
		t.Fatalf("node data %s", b)
	}
	for _, bad := range []string{
		`{"mqtt":"1883"}`, `{"mqtt":":1883"}`, `{"mqtt":"h:0"}`, `{"mqtt":"h:65536"}`, `{"mqtt":"h:x"}`,
		`{"mqtt":"mqtt://h:1883"}`, `{"mqttTls":true}`, `{"mqtt":"h:1","mqttTls":"yes"}`,
	} {
		if _, err := ParseGatewayInfo([]byte(bad)); !errors.Is(err, ErrBadGatewayInfo) {
			t.Errorf("%s: err %v, want ErrBadGatewayInfo", bad, err)
		}
	}
}
