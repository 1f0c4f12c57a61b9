package config

import (
	"bytes"
	"strings"
	"testing"
)

func TestDeviceFlags(t *testing.T) {
	c, err := Parse("cim-route", ok, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxDevices != 100000 || c.DeviceLoginRate != 2000 || c.DeviceLoginBurst != 2000 || c.DeviceLoginConcurrency != 256 {
		t.Fatalf("device defaults: %d %v %d %d", c.MaxDevices, c.DeviceLoginRate, c.DeviceLoginBurst, c.DeviceLoginConcurrency)
	}
	t.Setenv("CIM_DEVICE_LOGIN_RATE", "0")
	c, err = Parse("cim-route", with("--max-devices", "5", "--device-login-burst", "10", "--device-login-concurrency", "3"), &bytes.Buffer{})
	if err != nil || c.MaxDevices != 5 || c.DeviceLoginRate != 0 || c.DeviceLoginBurst != 10 || c.DeviceLoginConcurrency != 3 {
		t.Fatalf("device flags: %+v %v", c, err)
	}
	for flag, want := range map[string]string{
		"--max-devices": "--max-devices 0", "--device-login-burst": "--device-login-burst 0",
		"--device-login-concurrency": "--device-login-concurrency 0",
	} {
		if _, err := Parse("cim-route", with(flag, "0"), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s 0: %v", flag, err)
		}
	}
	if _, err := Parse("cim-route", with("--device-login-rate", "-1"), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--device-login-rate") {
		t.Errorf("--device-login-rate -1: %v", err)
	}
	if _, err := Parse("cim-route", with("--webhook-url", "http://x/hook", "--webhook-secret", "webhook-secret-0123", "--webhook-events", "device.data"), &bytes.Buffer{}); err != nil {
		t.Errorf("--webhook-events device.data: %v", err)
	}
	var out bytes.Buffer
	Parse("cim-route", []string{"--help"}, &out)
	for _, s := range []string{"max-devices", "(default 100000)", "device-login-rate", "(default 2000)", "device-login-concurrency", "(default 256)", "CIM_MAX_DEVICES"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("--help output lacks %q", s)
		}
	}
}
