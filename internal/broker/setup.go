package broker

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// SetupAttemptTimeout bounds one JetStream API request made while a role
// sets up its stream or buckets. A request to a cluster still electing its
// meta leader, or whose routes are still forming, may get no answer at
// all; waiting for it for the whole setup would fail a role that a second
// request would have started.
const SetupAttemptTimeout = 5 * time.Second

// Setup runs op, one JetStream API request or a few, until it succeeds,
// fails with an error that another attempt would not change, or ctx ends.
// Each attempt has at most SetupAttemptTimeout. Roles of a deployment
// start together (compose, Kubernetes), often before the NATS cluster
// they use has a JetStream meta leader: Setup is how they wait for it. The
// error returned is op's last one.
func Setup(ctx context.Context, log *slog.Logger, what string, op func(context.Context) error) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, SetupAttemptTimeout)
		err := op(actx)
		cancel()
		if err == nil || !transient(err) || ctx.Err() != nil {
			return err
		}
		log.Warn("JetStream not ready; trying again", "what", what, "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// errCodeNoPeers is JetStream's "no suitable peers for placement": a
// replicated stream asked of a cluster whose other nodes are not up yet.
const errCodeNoPeers jetstream.ErrorCode = 10005

// transient reports whether err is one a JetStream cluster that is still
// forming or electing gives: no answer in time, no responders, a 503 from
// the JetStream API ("JetStream system temporarily unavailable",
// "insufficient resources"), or too few peers up to place the replicas.
func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.Code == http.StatusServiceUnavailable || apiErr.ErrorCode == errCodeNoPeers)
}
