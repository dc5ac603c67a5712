package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DurableOptions tune a Durable; a zero field takes its default.
type DurableOptions struct {
	// StallAfter is how long Next waits with nothing delivered before it
	// asks the consumer whether messages wait undelivered (default 10s).
	StallAfter time.Duration
	// Buffer is how many messages one pull asks for (default 16).
	Buffer int
	// RetryMin and RetryMax bound the wait before pulling again after an
	// interruption, doubling while pulls keep failing (defaults 250ms and
	// 30s).
	RetryMin, RetryMax time.Duration
	// Logger receives interruptions and recoveries.
	Logger *slog.Logger
}

// Defaults for DurableOptions.
const (
	DefaultStallAfter = 10 * time.Second
	DefaultBuffer     = 16
	defaultRetryMin   = 250 * time.Millisecond
	defaultRetryMax   = 30 * time.Second
)

// Durable hands out the messages of a durable pull consumer one at a time
// and keeps pulling through whatever interrupts a pull: the consumer is
// created when missing (an existing one is updated to the configuration),
// created again when it is deleted, and pulled from again when a pull
// stalls (a pull request parked on a consumer leader that died is lost
// without a word: Next notices when nothing is delivered for StallAfter
// while the consumer has messages waiting). NATS reconnects are the
// client's: a pull survives them.
//
// Several processes may run a Durable on the same consumer: each message
// goes to one of them (until its ack wait runs out). Next and Stop belong
// to one goroutine; Info and Restarts may be called from any.
type Durable struct {
	js       jetstream.JetStream
	stream   string
	cfg      jetstream.ConsumerConfig
	opts     DurableOptions
	log      *slog.Logger
	it       jetstream.MessagesContext
	failures int // interruptions since the last message
	restarts atomic.Uint64
}

// NewDurable returns a Durable on the consumer cfg.Durable of stream;
// nothing is asked of NATS until Next.
func NewDurable(js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig, opts DurableOptions) *Durable {
	if opts.StallAfter <= 0 {
		opts.StallAfter = DefaultStallAfter
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = defaultRetryMin
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(defaultRetryMax, opts.RetryMin)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Durable{js: js, stream: stream, cfg: cfg, opts: opts, log: opts.Logger.With("stream", stream, "durable", cfg.Durable)}
}

// errStalled: messages wait on the consumer, and none arrive.
var errStalled = errors.New("pull stalled: messages wait and none arrive")

// Next returns the next message, waiting as long as it takes: it returns
// an error only when ctx ends (ctx's).
func (d *Durable) Next(ctx context.Context) (jetstream.Msg, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if d.it == nil {
			if d.failures > 0 {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(d.backoff()):
				}
			}
			if err := d.pull(ctx); err != nil {
				if ctx.Err() == nil {
					d.log.Warn("cannot pull from the consumer; retrying", "error", err, "in", d.backoff())
				}
				d.failures++
				continue
			}
		}
		nctx, cancel := context.WithTimeout(ctx, d.opts.StallAfter)
		msg, err := d.it.Next(jetstream.NextContext(nctx))
		cancel()
		switch {
		case err == nil:
			if d.failures > 0 {
				d.log.Info("consumer delivers again")
			}
			d.failures = 0
			return msg, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			if !d.stalled(ctx) {
				continue
			}
			err = errStalled
		}
		d.log.Warn("pull interrupted; pulling again", "error", err)
		d.it.Stop()
		d.it = nil
		d.failures++
		d.restarts.Add(1)
	}
}

// backoff is the wait before the next pull after d.failures failures.
func (d *Durable) backoff() time.Duration {
	wait := d.opts.RetryMin
	for i := 1; i < d.failures && wait < d.opts.RetryMax; i++ {
		wait *= 2
	}
	return min(wait, d.opts.RetryMax)
}

// pull creates or updates the consumer and starts pulling from it.
func (d *Durable) pull(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cons, err := d.js.CreateOrUpdateConsumer(cctx, d.stream, d.cfg)
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", d.cfg.Durable, d.stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(d.opts.Buffer))
	if err != nil {
		return fmt.Errorf("pull from consumer %s: %w", d.cfg.Durable, err)
	}
	d.it = it
	return nil
}

// stalled reports whether the consumer is gone, or has messages it does
// not deliver although it could (fewer than MaxAckPending are out).
func (d *Durable) stalled(ctx context.Context) bool {
	info, err := d.Info(ctx)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return true
	}
	if err != nil {
		return false // NATS is away: the client resumes the pull itself
	}
	limit := info.Config.MaxAckPending
	return info.NumPending > 0 && (limit <= 0 || info.NumAckPending < limit)
}

// Info reads the consumer's state from the server; the error matches
// jetstream.ErrConsumerNotFound when it does not exist.
func (d *Durable) Info(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cons, err := d.js.Consumer(ctx, d.stream, d.cfg.Durable)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", d.cfg.Durable, d.stream, err)
	}
	return cons.CachedInfo(), nil
}

// Restarts counts the pulls started again after an interruption (a
// deleted consumer, a stall).
func (d *Durable) Restarts() uint64 { return d.restarts.Load() }

// Stop stops pulling; messages delivered and not acknowledged are
// redelivered after their ack wait.
func (d *Durable) Stop() {
	if d.it != nil {
		d.it.Stop()
		d.it = nil
	}
}
