package config

import "flag"

// registerDeviceFlags binds the IoT device flags.
func (c *Config) registerDeviceFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxDevices, "max-devices", c.MaxDevices, "IoT devices that may exist (revoked ones count); POST /devices beyond it gets 429/4293")
	fs.Float64Var(&c.DeviceLoginRate, "device-login-rate", c.DeviceLoginRate, "device logins (gateways' /internal/device-login) per second for the whole route; beyond it and --device-login-burst a login gets 503/5032 at once and the device is told to come back (0: no rate limit)")
	fs.IntVar(&c.DeviceLoginBurst, "device-login-burst", c.DeviceLoginBurst, "device logins allowed at once before --device-login-rate applies")
	fs.IntVar(&c.DeviceLoginConcurrency, "device-login-concurrency", c.DeviceLoginConcurrency, "device logins in progress at once; more get 503/5032 at once")
}

// validateDevices checks the IoT device flags.
func (c *Config) validateDevices(bad func(string, ...any)) {
	if c.MaxDevices < 1 {
		bad("--max-devices %d: must be at least 1", c.MaxDevices)
	}
	if c.DeviceLoginRate < 0 {
		bad("--device-login-rate %v: must be >= 0 (0 turns the limit off)", c.DeviceLoginRate)
	}
	if c.DeviceLoginBurst < 1 {
		bad("--device-login-burst %d: must be at least 1", c.DeviceLoginBurst)
	}
	if c.DeviceLoginConcurrency < 1 {
		bad("--device-login-concurrency %d: must be at least 1", c.DeviceLoginConcurrency)
	}
}
