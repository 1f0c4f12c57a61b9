package api

import (
	"context"
	"fmt"
	"log/slog"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/internal/stream"
	"github.com/gocim/gocim/proto/cimpb"
)

// Uplinker handles a gateway's uplink batch (router.Router).
type Uplinker interface {
	Uplink(ctx context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error)
}

// StreamHandler answers what gateways send over their streams (package
// stream): uplink batches, handled exactly as POST /internal/uplink
// handles them. Errors a retry cannot fix (a malformed batch) are
// rejected; the others (storage down) tell the gateway to retry elsewhere.
func StreamHandler(svc Uplinker, logger *slog.Logger) stream.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	log := logger.With("component", "api")
	return func(ctx context.Context, kind stream.Kind, p []byte) ([]byte, error) {
		if kind != stream.KindUplink {
			return nil, stream.Reject(fmt.Errorf("the route takes uplinks only, not kind %d", kind))
		}
		var b cimpb.UplinkBatch
		if err := proto.Unmarshal(p, &b); err != nil {
			return nil, stream.Reject(fmt.Errorf("%w: bad UplinkBatch: %v", errs.ErrBadArgument, err))
		}
		out, err := svc.Uplink(ctx, &b)
		if err != nil {
			code, status, known := classify(err)
			switch {
			case !known:
				log.Error("stream uplink failed", "gateway", b.GatewayId, "err", err)
			case status < 500:
				return nil, stream.Reject(err)
			default:
				log.Warn("stream uplink failed", "gateway", b.GatewayId, "code", code, "err", err)
			}
			return nil, err
		}
		return proto.Marshal(out)
	}
}
