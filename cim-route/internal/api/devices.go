package api

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/internal/contract"
)

// The /devices endpoints are an admin's (API key with the admin scope):
// IoT devices and their credentials (docs/ARCHITECTURE.md, "Devices"). A
// device is named by id or name in the path. The gateways' device login is
// /internal/device-login.

// deviceJSON is a device as GET /devices and GET /devices/{id} show it.
type deviceJSON struct {
	DeviceID string `json:"deviceId"`
	Name     string `json:"name"`
	Created  int64  `json:"created"`           // unix ms
	Revoked  int64  `json:"revoked,omitempty"` // unix ms; absent while it has a credential
	Online   bool   `json:"online"`
	Gateway  string `json:"gateway,omitempty"`  // where it is connected; absent offline
	Platform string `json:"platform,omitempty"` // its session's platform; absent offline
	LastSeen int64  `json:"lastSeen,omitempty"` // unix ms of its last connect or disconnect; absent: never
}

func toDeviceJSON(d router.DeviceInfo) deviceJSON {
	return deviceJSON{DeviceID: d.ID, Name: d.Name, Created: d.Created, Revoked: d.Revoked,
		Online: d.Online, Gateway: d.Gateway, Platform: d.Platform, LastSeen: d.LastSeen}
}

// deviceSecretJSON is a device with its new credential (POST /devices, POST
// /devices/{id}/secret): the only time the credential is shown.
type deviceSecretJSON struct {
	DeviceID string `json:"deviceId"`
	Name     string `json:"name"`
	Secret   string `json:"secret"`  // base64url, no padding
	Created  int64  `json:"created"` // unix ms
}

// devicePageJSON is a page of GET /devices.
type devicePageJSON struct {
	Devices []deviceJSON `json:"devices"`
	Next    string       `json:"next"` // the after of the next page; empty at the end
}

// createDeviceJSON is the body of POST /devices.
type createDeviceJSON struct {
	Name string `json:"name"`
}

func (h *handler) answerSecret(c *gin.Context, d router.DeviceSecret, err error) {
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, deviceSecretJSON{DeviceID: d.ID, Name: d.Name, Secret: d.Secret, Created: d.Created})
}

func (h *handler) createDevice(c *gin.Context) {
	var req createDeviceJSON
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	d, err := h.svc.CreateDevice(c.Request.Context(), req.Name)
	h.answerSecret(c, d, err)
}

// listDevices is GET /devices?after=<id>&limit=<n>.
func (h *handler) listDevices(c *gin.Context) {
	limit := 0
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > router.MaxDeviceList {
			h.fail(c, fmt.Errorf("%w: limit must be 1..%d", errs.ErrBadArgument, router.MaxDeviceList))
			return
		}
		limit = n
	}
	page, next, err := h.svc.Devices(c.Request.Context(), c.Query("after"), limit)
	if err != nil {
		h.fail(c, err)
		return
	}
	out := devicePageJSON{Devices: make([]deviceJSON, len(page)), Next: next}
	for i, d := range page {
		out.Devices[i] = toDeviceJSON(d)
	}
	ok(c, out)
}

func (h *handler) getDevice(c *gin.Context) {
	d, err := h.svc.Device(c.Request.Context(), c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, toDeviceJSON(d))
}

func (h *handler) revokeDevice(c *gin.Context) {
	h.answerNull(c, h.svc.RevokeDevice(c.Request.Context(), c.Param("id")))
}

func (h *handler) rotateDeviceSecret(c *gin.Context) {
	d, err := h.svc.RotateDeviceSecret(c.Request.Context(), c.Param("id"))
	h.answerSecret(c, d, err)
}

// deviceLogin is a gateway trading a device's credential for a gateway
// token (contract.PathDeviceLogin). It is not subject to /login's limits
// per address and name: a fleet behind one address reconnects at once;
// the router bounds device logins for the whole route instead.
func (h *handler) deviceLogin(c *gin.Context) {
	var req contract.DeviceLogin
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	tok, err := h.svc.DeviceLogin(c.Request.Context(), req)
	switch {
	case errors.Is(err, errs.ErrBusy):
		// Expected by the thousand in a reconnect storm: answered without
		// a warning each (the router counts them).
		code, status, _ := classify(err)
		c.JSON(status, envelope{Code: code, Message: err.Error()})
	case err != nil:
		h.fail(c, err)
	default:
		ok(c, tok)
	}
}
