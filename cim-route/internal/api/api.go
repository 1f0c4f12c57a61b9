// Package api is the route service's HTTP edge (gin): the public CIM
// endpoints, history, uploads and downloads, the internal endpoints gateways
// call, and the mapping of errors to result codes. Every JSON answer is {"code","message","data"}; the
// internal uplink call speaks protobuf. Handlers only decode, validate shape
// and encode; the logic lives behind the Service interface.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/files"
	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// Service is what the handlers need (router.Router implements it).
type Service interface {
	Register(ctx context.Context, name, password string) (router.User, error)
	Login(ctx context.Context, req router.LoginRequest) (router.Session, error)
	P2P(ctx context.Context, from, to, text string) (string, error)
	Broadcast(ctx context.Context, from, text string) (string, int, error)
	OnlineUsers(ctx context.Context) ([]router.User, error)
	Logoff(ctx context.Context, uid, sid string) error
	SessionOnline(ctx context.Context, uid, sid, gw string, reassert bool) error
	SessionOffline(ctx context.Context, uid, sid string) error
	Uplink(ctx context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error)
	Health(ctx context.Context) (int, error)
	History(ctx context.Context, q router.HistoryQuery) (router.HistoryPage, error)
	Upload(ctx context.Context, uid, sid, name, contentType string, body io.Reader) (files.Info, error)
	OpenFile(ref string) (*os.File, files.Info, time.Time, error)
}

// ProtobufType is the media type of the internal protobuf bodies.
const ProtobufType = "application/x-protobuf"

// Config configures the handler.
type Config struct {
	Service Service
	Logger  *slog.Logger
	// MaxBody bounds JSON request bodies (default 64 KiB); larger ones get
	// 413 / 3000.
	MaxBody int64
	// MaxUplink bounds an uplink batch (default 64 MiB: a gateway batch
	// may carry many frames of up to 64 KiB each).
	MaxUplink int64
	// MaxUpload bounds POST /upload bodies (default 10 MiB); larger ones get
	// 413 / 3000.
	MaxUpload int64
}

type handler struct {
	svc       Service
	log       *slog.Logger
	maxBody   int64
	maxUplink int64
	maxUpload int64
}

var releaseMode sync.Once

// New returns the route's HTTP handler.
func New(cfg Config) http.Handler {
	// Gin's debug mode prints route tables to stdout, which carries only the
	// ready line.
	releaseMode.Do(func() { gin.SetMode(gin.ReleaseMode) })
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 10
	}
	if cfg.MaxUplink <= 0 {
		cfg.MaxUplink = 64 << 20
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = 10 << 20
	}
	h := &handler{svc: cfg.Service, log: cfg.Logger.With("component", "api"),
		maxBody: cfg.MaxBody, maxUplink: cfg.MaxUplink, maxUpload: cfg.MaxUpload}

	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(gin.CustomRecovery(func(c *gin.Context, rec any) {
		h.log.Error("handler panic", "path", c.Request.URL.Path, "panic", rec)
		c.AbortWithStatusJSON(http.StatusInternalServerError, envelope{Code: codes.Internal, Message: codes.Internal.Text()})
	}))
	e.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, envelope{Code: codes.BadArgument, Message: "no such endpoint: " + c.Request.URL.Path})
	})
	e.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, envelope{Code: codes.BadArgument, Message: "method " + c.Request.Method + " not allowed here"})
	})

	e.POST("/registerAccount", h.register)
	e.POST("/login", h.login)
	e.POST("/p2pRoute", h.p2p)
	e.POST("/groupRoute", h.group)
	e.GET("/onlineUser", h.onlineUsers)
	e.POST("/offLine", h.offline)
	e.GET("/healthz", h.healthz)
	e.GET("/history", h.history)
	e.POST("/upload", h.upload)
	e.GET("/files/:ref", h.file)

	e.POST("/internal/online", h.sessionOnline)
	e.POST("/internal/offline", h.sessionOffline)
	e.POST("/internal/uplink", h.uplink)
	return e
}

// envelope is every JSON answer.
type envelope struct {
	Code    codes.Code `json:"code"`
	Message string     `json:"message"`
	Data    any        `json:"data"`
}

func ok(c *gin.Context, data any) {
	c.JSON(http.StatusOK, envelope{Code: codes.OK, Message: codes.OK.Text(), Data: data})
}

func (h *handler) fail(c *gin.Context, err error) {
	code, status, known := classify(err)
	msg := err.Error()
	switch {
	case !known:
		h.log.Error("request failed", "path", c.Request.URL.Path, "err", err)
		msg = codes.Internal.Text()
	case status >= 500:
		h.log.Warn("request failed", "path", c.Request.URL.Path, "code", code, "err", err)
	default:
		h.log.Debug("request rejected", "path", c.Request.URL.Path, "code", code, "err", err)
	}
	c.JSON(status, envelope{Code: code, Message: msg})
}

// read returns the body, at most limit bytes.
func read(c *gin.Context, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, fmt.Errorf("%w: more than %d bytes", errs.ErrTooLarge, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading the body: %v", errs.ErrBadArgument, err)
	}
	return body, nil
}

// bind decodes a JSON body into v.
func (h *handler) bind(c *gin.Context, v any) error {
	body, err := read(c, h.maxBody)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return fmt.Errorf("%w: empty body, want a JSON object", errs.ErrBadArgument)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: bad JSON: %v", errs.ErrBadArgument, err)
	}
	return nil
}
