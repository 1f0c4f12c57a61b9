package mqttconn

import (
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// MQTT 5 reason codes the gateway sends. An MQTT 3.1.1 device gets the
// return code v311Connack maps a CONNACK's to, and nothing for the others
// (3.1.1 has no negative acknowledgements: the connection closes).
const (
	rcSuccess            byte = 0x00
	rcGrantedQoS1        byte = 0x01
	rcWithWill           byte = 0x04 // DISCONNECT from a device: send my will
	rcNoSubscription     byte = 0x11
	rcUnspecified        byte = 0x80
	rcMalformed          byte = 0x81
	rcProtocolError      byte = 0x82
	rcImplementation     byte = 0x83
	rcUnsupportedVersion byte = 0x84
	rcClientIDInvalid    byte = 0x85
	rcBadCredentials     byte = 0x86
	rcNotAuthorized      byte = 0x87
	rcServerBusy         byte = 0x89
	rcShuttingDown       byte = 0x8B
	rcBadAuthMethod      byte = 0x8C
	rcKeepAliveTimeout   byte = 0x8D
	rcSessionTakenOver   byte = 0x8E
	rcTopicNameInvalid   byte = 0x90
	rcReceiveMaxExceeded byte = 0x93
	rcTopicAliasInvalid  byte = 0x94
	rcPacketTooLarge     byte = 0x95
	rcRateTooHigh        byte = 0x96
	rcQuotaExceeded      byte = 0x97
	rcQoSNotSupported    byte = 0x9B
)

// MQTT 3.1.1 CONNACK return codes.
const (
	v311Accepted       byte = 0
	v311BadVersion     byte = 1
	v311IDRejected     byte = 2
	v311Unavailable    byte = 3
	v311BadCredentials byte = 4
	v311NotAuthorized  byte = 5
)

// v311Connack maps an MQTT 5 CONNACK reason to the 3.1.1 return code.
func v311Connack(rc byte) byte {
	switch rc {
	case rcSuccess:
		return v311Accepted
	case rcUnsupportedVersion:
		return v311BadVersion
	case rcClientIDInvalid:
		return v311IDRejected
	case rcBadCredentials, rcBadAuthMethod:
		return v311BadCredentials
	case rcNotAuthorized:
		return v311NotAuthorized
	}
	return v311Unavailable
}

// connackReason is the CONNACK for a login the connection code refused
// after the route gave the device its token (ERROR frame before LOGIN_ACK).
func connackReason(code codes.Code) byte {
	switch code {
	case codes.Unauthorized: // the route no longer holds the session as current
		return rcNotAuthorized
	case codes.Unavailable, codes.Busy, codes.GoingAway, codes.TooManyConnections:
		return rcServerBusy
	}
	return rcUnspecified
}

// disconnectReason is the MQTT 5 DISCONNECT for a frame that ends the
// connection (KICK, or an ERROR not answering one of the device's
// messages).
func disconnectReason(f *cimpb.Frame) byte {
	if f.GetType() == cimpb.Type_KICK {
		return rcSessionTakenOver
	}
	switch codes.Code(f.GetError().GetCode()) {
	case codes.GoingAway:
		return rcShuttingDown
	case codes.KickedElsewhere, codes.StaleSession:
		return rcSessionTakenOver
	case codes.SlowConsumer:
		return rcQuotaExceeded
	case codes.RateLimited:
		return rcRateTooHigh
	case codes.FrameTooLarge:
		return rcPacketTooLarge
	case codes.BadFrame:
		return rcProtocolError
	case codes.Unauthorized:
		return rcNotAuthorized
	case codes.Reconnect, codes.Unavailable, codes.Busy:
		return rcServerBusy
	}
	return rcUnspecified
}

// pubackReason is the MQTT 5 PUBACK for an uplink the gateway or the route
// refused (ERROR with the message's client_msg_id). PUBACK has no "too
// large" code (0x95 is DISCONNECT's and CONNACK's): a body over --max-text
// is 0x83, implementation specific, with the reason string saying so.
func pubackReason(code codes.Code) byte {
	switch code {
	case codes.Forbidden, codes.Unauthorized, codes.StaleSession:
		return rcNotAuthorized
	case codes.BadAccount, codes.NoGroup:
		return rcTopicNameInvalid // the topic names nobody
	case codes.RateLimited, codes.QuotaExceeded, codes.GroupFull:
		return rcQuotaExceeded
	case codes.TooLarge, codes.FrameTooLarge, codes.BadArgument:
		return rcImplementation
	}
	return rcUnspecified
}
