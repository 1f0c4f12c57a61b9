package contract

// Devices (IoT, MQTT on the gateway): a device is a gocim user with a
// long-lived credential instead of a password. It connects to a gateway's
// MQTT listener with its id (or name) and credential as the CONNECT
// username and password; the gateway trades them for a gateway token at
// the route (PathDeviceLogin) and logs the connection in with it as any
// other: one route call per connect beyond those every login makes.

// PathDeviceLogin: a JSON DeviceLogin in; a JSON envelope out whose data is
// a DeviceToken (HTTP 200), or a refusal: code codes.BadAccount (HTTP 401:
// unknown device, wrong or revoked credential: the device is told "not
// authorized"), codes.Busy or codes.Unavailable (HTTP 503: the route is
// busy with other devices, or cannot reach its storage: the device is told
// to come back later).
const PathDeviceLogin = "/internal/device-login"

// DeviceLogin is the body of PathDeviceLogin.
type DeviceLogin struct {
	// Device is the device's user id or name (the MQTT username).
	Device string `json:"device"`
	// Secret is its credential (the MQTT password).
	Secret string `json:"secret"`
	// GatewayID is the calling gateway: the session is claimed there, and
	// the token is for it.
	GatewayID string `json:"gatewayId"`
	// Clean starts the session without its backlog (MQTT clean session /
	// clean start): what was stored for the device while it was away is
	// taken as delivered. Otherwise the device gets it, in order, after
	// the last message it acknowledged.
	Clean bool `json:"clean,omitempty"`
}

// DeviceToken is the data of the route's answer to a DeviceLogin.
type DeviceToken struct {
	UserID    string `json:"userId"`
	UserName  string `json:"userName"`
	SessionID string `json:"sessionId"`
	// Token is a gateway token for GatewayID with platform "device": the
	// gateway logs the connection in with it (LOGIN).
	Token string `json:"token"`
	// SessionPresent: the device connected before and this is not a clean
	// start, so what it missed follows (MQTT CONNACK session present).
	SessionPresent bool `json:"sessionPresent"`
}

// PlatformDevice is the platform of a device's sessions.
const PlatformDevice = "device"
