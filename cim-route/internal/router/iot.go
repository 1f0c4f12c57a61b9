package router

// IoT devices (docs/ARCHITECTURE.md, "Devices"): a device is an account
// without a password (so it never logs in at /login, nor through an
// external authenticator) with a long-lived credential, created, listed,
// revoked and re-keyed by an admin. The device connects to a gateway's MQTT
// listener with its id or name and credential; the gateway trades them
// here (DeviceLogin, /internal/device-login) for a gateway token of a
// session claimed on that gateway, as Login claims one. A fleet that
// reconnects at once after a power cut is bounded by a route-wide rate and
// a bound on the logins in progress, answered errs.ErrBusy at once beyond
// them (the gateway tells the device to come back), never queued.
//
// The credential is 32 random bytes, handed out once in base64url without
// padding (43 characters); the store keeps the SHA-256 of that string. A
// fast hash is right for a high-entropy random secret (nothing to guess,
// nothing a slow hash would protect), and a reconnecting fleet must be
// cheap to check. It is compared in constant time.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/token"
)

// Device defaults and bounds.
const (
	// DefaultMaxDevices bounds the devices (--max-devices).
	DefaultMaxDevices = 100000
	// DefaultDeviceList and MaxDeviceList are GET /devices' page size.
	DefaultDeviceList = 100
	MaxDeviceList     = 1000
	// DefaultDeviceLoginConcurrency bounds the device logins in progress.
	DefaultDeviceLoginConcurrency = 256
	// deviceSecretBytes is the credential's length before encoding.
	deviceSecretBytes = 32
	// maxDeviceSecret bounds a credential presented at login: anything
	// longer is no credential of ours, and is not hashed.
	maxDeviceSecret = 256
)

// DeviceInfo is a device as the admin API shows it.
type DeviceInfo struct {
	ID      string
	Name    string
	Created int64 // unix ms
	Revoked int64 // unix ms; 0: not revoked
	// Online: a session of the device is connected at a live gateway,
	// Gateway; Platform is what that session's login named.
	Online   bool
	Gateway  string
	Platform string
	// LastSeen: the last connect or disconnect of a session of the device
	// (unix ms); 0: never connected.
	LastSeen int64
}

// DeviceSecret is a device with its new credential, which is shown once.
type DeviceSecret struct {
	DeviceInfo
	Secret string
}

// newDeviceSecret returns a fresh credential and the hash the store keeps.
func newDeviceSecret() (secret string, hash []byte) {
	var b [deviceSecretBytes]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	secret = base64.RawURLEncoding.EncodeToString(b[:])
	return secret, deviceSecretHash(secret)
}

func deviceSecretHash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// deviceLimiter bounds the device logins route-wide: a token bucket (nil:
// no rate limit) and a bound on those in progress.
type deviceLimiter struct {
	rate  *rate.Limiter
	slots chan struct{}
	// refused counts the logins answered busy; lastLog (unix ms) spaces
	// the warning that says so.
	refused atomic.Uint64
	lastLog atomic.Int64
}

// busyLogEvery spaces the warnings about device logins refused as busy.
const busyLogEvery = 10 * time.Second

func newDeviceLimiter(perSecond float64, burst, concurrency int) *deviceLimiter {
	l := &deviceLimiter{slots: make(chan struct{}, concurrency)}
	if perSecond > 0 {
		l.rate = rate.NewLimiter(rate.Limit(perSecond), max(burst, 1))
	}
	return l
}

// errDevicesBusy is the answer of a device login beyond the bounds.
var errDevicesBusy = fmt.Errorf("%w: too many devices logging in, come back later", errs.ErrBusy)

// acquireDeviceLogin takes a place for one device login, or answers
// errDevicesBusy at once; release gives the place back.
func (r *Router) acquireDeviceLogin() (release func(), err error) {
	l := r.deviceLogins
	select {
	case l.slots <- struct{}{}:
	default:
		return nil, r.devicesBusy()
	}
	if l.rate != nil && !l.rate.AllowN(r.now(), 1) {
		<-l.slots
		return nil, r.devicesBusy()
	}
	return func() { <-l.slots }, nil
}

// devicesBusy counts a device login refused as busy and warns at most once
// per busyLogEvery: a reconnecting fleet makes thousands.
func (r *Router) devicesBusy() error {
	l := r.deviceLogins
	total := l.refused.Add(1)
	now, last := time.Now().UnixMilli(), l.lastLog.Load()
	if now-last >= busyLogEvery.Milliseconds() && l.lastLog.CompareAndSwap(last, now) {
		r.log.Warn("device logins refused: too many at once; their gateways tell them to come back",
			"refusedTotal", total, "rate", r.cfg.DeviceLoginRate, "burst", r.cfg.DeviceLoginBurst, "concurrency", cap(l.slots))
	}
	return errDevicesBusy
}

// CreateDevice creates a device called name (a user name, as for Register)
// and its credential. The name must be free among users and devices
// (errs.ErrNameTaken); beyond Config.MaxDevices it is errs.ErrQuotaExceeded.
func (r *Router) CreateDevice(ctx context.Context, name string) (DeviceSecret, error) {
	if err := checkName(name); err != nil {
		return DeviceSecret{}, err
	}
	if reservedName(name) {
		return DeviceSecret{}, fmt.Errorf("%w: %q is reserved", errs.ErrNameTaken, name)
	}
	secret, hash := newDeviceSecret()
	d, err := r.st.CreateDevice(ctx, name, hash, r.cfg.MaxDevices)
	if errors.Is(err, errs.ErrQuotaExceeded) {
		return DeviceSecret{}, fmt.Errorf("%w (--max-devices)", err)
	}
	if err != nil {
		return DeviceSecret{}, err
	}
	r.remember(d.ID, d.Name)
	r.log.Info("device created", "user", d.ID, "name", d.Name)
	return DeviceSecret{DeviceInfo: DeviceInfo{ID: d.ID, Name: d.Name, Created: d.Created}, Secret: secret}, nil
}

// Devices lists up to limit devices (0: DefaultDeviceList; at most
// MaxDeviceList) with an id above after, in id order; next is the after of
// the next page, "" after the last one.
func (r *Router) Devices(ctx context.Context, after string, limit int) (page []DeviceInfo, next string, err error) {
	if after != "" && !isID(after) {
		return nil, "", fmt.Errorf("%w: after must be a device id", errs.ErrBadArgument)
	}
	switch {
	case limit == 0:
		limit = DefaultDeviceList
	case limit < 0 || limit > MaxDeviceList:
		return nil, "", fmt.Errorf("%w: limit must be 1..%d", errs.ErrBadArgument, MaxDeviceList)
	}
	ds, err := r.st.ListDevices(ctx, after, limit)
	if err != nil {
		return nil, "", err
	}
	uids := make([]string, len(ds))
	for i, d := range ds {
		uids[i] = d.ID
	}
	routes, err := r.st.Routes(ctx, uids)
	if err != nil {
		return nil, "", err
	}
	page = make([]DeviceInfo, len(ds))
	for i, d := range ds {
		page[i] = r.deviceInfo(d, routes[d.ID])
	}
	if len(ds) == limit {
		next = ds[len(ds)-1].ID
	}
	return page, next, nil
}

// Device returns the device given by id or name; errs.ErrNotFound when
// there is none.
func (r *Router) Device(ctx context.Context, ref string) (DeviceInfo, error) {
	d, err := r.findDevice(ctx, ref)
	if err != nil {
		return DeviceInfo{}, err
	}
	routes, err := r.st.Routes(ctx, []string{d.ID})
	if err != nil {
		return DeviceInfo{}, err
	}
	return r.deviceInfo(d, routes[d.ID]), nil
}

// deviceInfo is d with its presence from its route.
func (r *Router) deviceInfo(d model.Device, rt model.Route) DeviceInfo {
	info := DeviceInfo{ID: d.ID, Name: d.Name, Created: d.Created, Revoked: d.Revoked, LastSeen: d.Seen}
	if s, ok := r.liveSession(rt); ok {
		info.Online, info.Gateway, info.Platform = true, s.Gateway, s.Platform
	}
	return info
}

// findDevice reads the device given by id or name: errs.ErrNotFound when
// there is none (also for a user that is no device), errs.ErrBadArgument
// when ref is neither an id nor a name.
func (r *Router) findDevice(ctx context.Context, ref string) (model.Device, error) {
	uid, err := r.deviceID(ctx, ref)
	if err != nil {
		return model.Device{}, err
	}
	return r.st.Device(ctx, uid)
}

// deviceID is the user id of ref, an id or a name (errs.ErrNotFound for an
// unknown name).
func (r *Router) deviceID(ctx context.Context, ref string) (string, error) {
	switch {
	case isID(ref):
		return ref, nil
	case !isName(ref):
		return "", fmt.Errorf("%w: %q is neither a device id nor a name", errs.ErrBadArgument, ref)
	}
	if id, ok := r.ids.Get(ref); ok {
		return id, nil
	}
	_, ids, err := r.st.Lookup(ctx, nil, []string{ref})
	if err != nil {
		return "", err
	}
	id := ids[ref]
	if id == "" {
		return "", fmt.Errorf("%w: no device %q", errs.ErrNotFound, ref)
	}
	r.rememberName(ref, id)
	return id, nil
}

// RevokeDevice revokes the device given by id or name: its credential is
// deleted, so every later login is refused, and its sessions are logged
// off. The account and its record stay (Device shows it revoked); a new
// credential (RotateDeviceSecret) reinstates it.
func (r *Router) RevokeDevice(ctx context.Context, ref string) error {
	uid, err := r.deviceID(ctx, ref)
	if err != nil {
		return err
	}
	// The credential goes first: a login that verified it before is either
	// refused when it records its connect (DeviceConnected) or has claimed
	// its session already, which the log-off then ends.
	if err := r.st.RevokeDevice(ctx, uid, r.now().UnixMilli()); err != nil {
		return err
	}
	if err := r.Logoff(ctx, uid, ""); err != nil {
		return err
	}
	r.log.Info("device revoked", "user", uid)
	return nil
}

// RotateDeviceSecret gives the device given by id or name a new
// credential; the old one stops working at once (logins that verified it
// are refused when they record their connect). Sessions already connected
// stay: a device is often handed its new credential over its connection.
func (r *Router) RotateDeviceSecret(ctx context.Context, ref string) (DeviceSecret, error) {
	d, err := r.findDevice(ctx, ref)
	if err != nil {
		return DeviceSecret{}, err
	}
	secret, hash := newDeviceSecret()
	if err := r.st.SetDeviceSecret(ctx, d.ID, hash); err != nil {
		return DeviceSecret{}, err
	}
	r.log.Info("device credential replaced", "user", d.ID, "reinstated", d.Revoked != 0)
	return DeviceSecret{DeviceInfo: DeviceInfo{ID: d.ID, Name: d.Name, Created: d.Created}, Secret: secret}, nil
}

// errBadDevice is the one answer for an unknown device and a wrong or
// revoked credential.
var errBadDevice = fmt.Errorf("%w: unknown device or wrong credential", errs.ErrBadAccount)

// DeviceLogin checks a device's credential for the gateway it is connected
// to (contract.PathDeviceLogin), claims a pending session for it on that
// gateway under the login policy (as Login does, without picking a
// gateway), records the connect and signs a gateway token with platform
// "device". With req.Clean what is stored for the device counts as
// delivered first, so the gateway's login SYNC (from the acknowledged seq)
// brings nothing old. Refusals: errs.ErrBadAccount (unknown device, wrong
// or revoked credential), errs.ErrBusy (too many device logins now),
// errs.ErrRepeatLogin (--login-policy reject, the device is online
// elsewhere), errs.ErrUnavailable (storage).
func (r *Router) DeviceLogin(ctx context.Context, req contract.DeviceLogin) (contract.DeviceToken, error) {
	gw := req.GatewayID
	if gw == "" {
		return contract.DeviceToken{}, fmt.Errorf("%w: gatewayId is required", errs.ErrBadArgument)
	}
	if _, err := contract.ParseGatewayID(gw); err != nil {
		return contract.DeviceToken{}, fmt.Errorf("%w: gatewayId: %v", errs.ErrBadArgument, err)
	}
	if req.Device == "" || req.Secret == "" || len(req.Secret) > maxDeviceSecret || (!isID(req.Device) && !isName(req.Device)) {
		return contract.DeviceToken{}, errBadDevice
	}
	release, err := r.acquireDeviceLogin()
	if err != nil {
		return contract.DeviceToken{}, err
	}
	defer release()

	uid, err := r.deviceID(ctx, req.Device)
	if err != nil {
		return contract.DeviceToken{}, deviceRefusal(err)
	}
	d, err := r.st.Device(ctx, uid)
	if err != nil {
		return contract.DeviceToken{}, deviceRefusal(err)
	}
	hash := deviceSecretHash(req.Secret)
	if d.Secret == nil || subtle.ConstantTimeCompare(hash, d.Secret) != 1 {
		return contract.DeviceToken{}, errBadDevice
	}
	if err := r.checkBan(ctx, uid); err != nil {
		if errors.Is(err, errs.ErrForbidden) {
			return contract.DeviceToken{}, errBadDevice // a banned device is refused like a revoked one
		}
		return contract.DeviceToken{}, err
	}
	r.remember(d.ID, d.Name)

	sid := newSessionID()
	if r.devices() {
		sid = contract.SlotFor(contract.PlatformDevice) + "." + sid
	}
	claim := model.Claim{Gateway: gw, Session: sid, TTL: r.cfg.TokenTTL, RejectOnline: r.cfg.LoginPolicy == PolicyReject,
		Platform: contract.PlatformDevice}
	r.forgetCurrent(uid)
	old, err := r.st.ClaimRoute(ctx, uid, claim)
	if errors.Is(err, errs.ErrRepeatLogin) && !r.gw.Live(old.Gateway) {
		claim.Evict = old.Session // online on a gateway that is gone (see Login)
		old, err = r.st.ClaimRoute(ctx, uid, claim)
	}
	if err != nil {
		return contract.DeviceToken{}, err
	}
	now := r.now()
	seen, err := r.st.DeviceConnected(ctx, uid, hash, now.UnixMilli(), req.Clean)
	if err != nil {
		// Revoked or re-keyed since it was checked (or storage failed):
		// the session just claimed goes again.
		if _, _, derr := r.st.DropSession(context.WithoutCancel(ctx), uid, sid); derr != nil {
			r.log.Warn("device session not dropped; it expires unconfirmed", "user", uid, "session", sid, "err", derr)
		}
		if errors.Is(err, errs.ErrBadAccount) {
			return contract.DeviceToken{}, errBadDevice
		}
		return contract.DeviceToken{}, err
	}
	if old.Online() {
		r.kick(ctx, uid, old.Session, old.Gateway, old.Platform, "logged in elsewhere")
	}
	tok, err := token.Sign(r.cfg.TokenKeys[0], token.Claims{
		UserID: uid, UserName: d.Name, SessionID: sid, GatewayID: gw, ExpiresAt: now.Add(r.cfg.TokenTTL).Unix(),
		Audience: token.AudienceGateway, Platform: contract.PlatformDevice,
	})
	if err != nil {
		return contract.DeviceToken{}, err
	}
	// A fleet reconnecting logs thousands of these a second: debug only.
	r.log.Debug("device login", "user", uid, "session", sid, "gateway", gw, "clean", req.Clean, "replaced", old.Session)
	return contract.DeviceToken{UserID: uid, UserName: d.Name, SessionID: sid, Token: tok,
		SessionPresent: seen != 0 && !req.Clean}, nil
}

// deviceRefusal turns "no such device" into the login's one refusal.
func deviceRefusal(err error) error {
	if errors.Is(err, errs.ErrNotFound) || errors.Is(err, errs.ErrBadArgument) {
		return errBadDevice
	}
	return err
}
