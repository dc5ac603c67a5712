package ingest

import (
	"errors"
	"log/slog"
	"time"

	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/sony/gobreaker/v2"
)

// Fallback reasons, as recorded with each fallback answer.
const (
	ReasonBreakerOpen  = "breaker_open"
	ReasonTimeout      = "timeout"
	ReasonNoResponders = "no_responders"
	ReasonBadReply     = "bad_reply"
	ReasonDeciderError = "decider_error"
	// ReasonUnavailable: no NATS connection (the call is not made to wait
	// for a reconnect), or an error of no other kind.
	ReasonUnavailable = "unavailable"
)

var (
	// errBadReply: a decider's reply is not a callflow 8x8 would accept.
	errBadReply = errors.New("decider reply is not a valid callflow")
	// errDeciderError: a decider answered with a micro service error.
	errDeciderError = errors.New("decider returned a service error")
)

// decision is what the breaker returns for a call: the callflow to answer
// and what it means.
type decision struct {
	callflow []byte
	verdict  wire.Verdict
}

// deciders asks the decider pool through a circuit breaker. Every failure
// (timeout, no responders, bad reply, service error) counts against the
// breaker; an out-of-session answer is an answer, not a failure.
type deciders struct {
	nc      *nats.Conn
	subject string
	timeout time.Duration
	cb      *gobreaker.CircuitBreaker[decision]
}

func newDeciders(nc *nats.Conn, cfg *Config, log *slog.Logger) *deciders {
	failures := cfg.Breaker.Failures
	return &deciders{
		nc:      nc,
		subject: cfg.DecideSubject,
		timeout: cfg.DecideTimeout,
		cb: gobreaker.NewCircuitBreaker[decision](gobreaker.Settings{
			Name:        "deciders",
			MaxRequests: cfg.Breaker.HalfOpenProbes,
			Timeout:     cfg.Breaker.OpenFor,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
			OnStateChange: func(_ string, from, to gobreaker.State) {
				log.Warn("decider circuit breaker changed state", "from", from.String(), "to", to.String())
			},
		}),
	}
}

// decide returns the deciders' callflow for req, or the reason it has none.
// Without a NATS connection the call gets the fallback at once: a request
// would only wait in the reconnect buffer for the whole decide timeout. That
// is not counted against the breaker, which judges the deciders, not NATS.
func (d *deciders) decide(req []byte) (decision, string) {
	if !d.nc.IsConnected() {
		return decision{}, ReasonUnavailable
	}
	dec, err := d.cb.Execute(func() (decision, error) {
		msg, err := d.nc.Request(d.subject, req, d.timeout)
		if err != nil {
			return decision{}, err
		}
		if msg.Header.Get(micro.ErrorCodeHeader) != "" || msg.Header.Get(micro.ErrorHeader) != "" {
			return decision{}, errDeciderError
		}
		// Checked strictly, so that what is forwarded verbatim is a
		// callflow this service would have written itself.
		v, err := wire.CheckCallflow(msg.Data)
		if err != nil {
			return decision{}, errBadReply
		}
		return decision{callflow: msg.Data, verdict: v}, nil
	})
	if err != nil {
		return decision{}, reason(err)
	}
	return dec, ""
}

func reason(err error) string {
	switch {
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return ReasonBreakerOpen
	case errors.Is(err, nats.ErrTimeout):
		return ReasonTimeout
	case errors.Is(err, nats.ErrNoResponders):
		return ReasonNoResponders
	case errors.Is(err, errBadReply):
		return ReasonBadReply
	case errors.Is(err, errDeciderError):
		return ReasonDeciderError
	default:
		return ReasonUnavailable
	}
}

// state is the breaker's state, for readiness and tests.
func (d *deciders) state() gobreaker.State { return d.cb.State() }
