package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// fakeBroker accepts MQTT 5 connections: the first busy CONNECTs are told
// "server busy", later ones accepted; each then gets SUBACK, one QoS 1
// PUBLISH on the downlink, and a PUBACK for each uplink PUBLISH. What the
// device sends after SUBSCRIBE goes to got.
func fakeBroker(t *testing.T, busy int) (addr string, got <-chan *packets.ControlPacket) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan *packets.ControlPacket, 16)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { nc.Close() })
			br := bufio.NewReader(nc)
			p, err := packets.ReadPacket(br)
			if err != nil {
				continue
			}
			c, ok := p.Content.(*packets.Connect)
			if !ok || c.ProtocolVersion != 5 || c.Username != "dev1" || string(c.Password) != "s3cret" || c.KeepAlive != 60 {
				t.Errorf("first packet %v", p)
				nc.Close()
				continue
			}
			if busy > 0 {
				busy--
				(&packets.Connack{ReasonCode: packets.ConnackServerBusy}).WriteTo(nc)
				nc.Close()
				continue
			}
			(&packets.Connack{}).WriteTo(nc)
			go func() {
				for {
					p, err := packets.ReadPacket(br)
					if err != nil {
						return
					}
					switch c := p.Content.(type) {
					case *packets.Subscribe:
						if len(c.Subscriptions) != 1 || c.Subscriptions[0].Topic != "gocim/dev1/down" || c.Subscriptions[0].QoS != 1 {
							t.Errorf("SUBSCRIBE %v", c)
						}
						(&packets.Suback{PacketID: c.PacketID, Reasons: []byte{1}}).WriteTo(nc)
						(&packets.Publish{Topic: "gocim/dev1/down", QoS: 1, PacketID: 7, Payload: []byte("open")}).WriteTo(nc)
					case *packets.Publish:
						(&packets.Puback{PacketID: c.PacketID}).WriteTo(nc)
					}
					ch <- p
				}
			}()
		}
	}()
	return ln.Addr().String(), ch
}

func TestMQTTDevice(t *testing.T) {
	addr, got := fakeBroker(t, 2)
	down := make(chan string, 1)
	acked := make(chan time.Duration, 1)
	stats := &mqttStats{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := mqttConnect(ctx, &net.Dialer{}, addr, mqttAccount{DeviceID: "dev1", Name: "d1", Secret: "s3cret"}, mqttHandlers{
		onPublish: func(p []byte, _ time.Time) { down <- string(p) },
		onPuback:  func(sent time.Time, reason byte, now time.Time) { acked <- now.Sub(sent) },
	}, stats)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if n := stats.busy.Load(); n != 2 {
		t.Errorf("busy = %d, want 2", n)
	}
	next := func(what string) *packets.ControlPacket {
		t.Helper()
		select {
		case p := <-got:
			return p
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s", what)
			return nil
		}
	}
	next("SUBSCRIBE")
	if s := <-down; s != "open" {
		t.Errorf("downlink %q", s)
	}
	if p, ok := next("PUBACK").Content.(*packets.Puback); !ok || p.PacketID != 7 {
		t.Errorf("want PUBACK 7, got %v", p)
	}
	if err := d.publish("gocim/dev1/up/bob", []byte("temp=21")); err != nil {
		t.Fatal(err)
	}
	if p, ok := next("PUBLISH").Content.(*packets.Publish); !ok || p.QoS != 1 || p.Topic != "gocim/dev1/up/bob" || string(p.Payload) != "temp=21" {
		t.Errorf("want the uplink PUBLISH, got %v", p)
	}
	select {
	case <-acked:
	case <-time.After(5 * time.Second):
		t.Fatal("no PUBACK callback")
	}
	if n := d.unacked(); n != 0 {
		t.Errorf("unacked = %d", n)
	}
	d.close()
	if _, ok := next("DISCONNECT").Content.(*packets.Disconnect); !ok {
		t.Error("no DISCONNECT on close")
	}
	if n := stats.dropped.Load(); n != 0 {
		t.Errorf("dropped = %d after our own close", n)
	}
}

func TestMQTTStat(t *testing.T) {
	if n := mqttStat(`stats dropped=3 busy=12 last="x"`, "busy"); n != 12 {
		t.Errorf("busy = %d", n)
	}
	if n := mqttStat("stats", "dropped"); n != 0 {
		t.Errorf("dropped = %d", n)
	}
}

// TestMQTTGenBadArgs: the child refuses bad arguments with a "failed" line.
func TestMQTTGenBadArgs(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	var out lineBuf
	if code := mqttgenMain([]string{"--route", "http://x", "--count", "0"}, r, &out); code != 2 || len(out.b) == 0 || string(out.b[:6]) != "failed" {
		t.Fatalf("code %d, output %q", code, out.b)
	}
}

type lineBuf struct{ b []byte }

func (l *lineBuf) Write(p []byte) (int, error) { l.b = append(l.b, p...); return len(p), nil }
