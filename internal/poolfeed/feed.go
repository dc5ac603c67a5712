// Package poolfeed keeps the number pool current from 8x8's own
// VIRTUAL_NUMBER_UPDATE webhooks. The ingestor records every webhook in
// the records stream; the feed reads the number updates back through a
// durable consumer that every process with the ingest role shares, applies
// each to the pool (session.Store.ApplyPoolUpdate: idempotent, and older
// updates never overwrite newer ones, so at-least-once delivery in any
// order is safe), writes an audit record for every number it changed
// (author 8x8, source the webhook's record id), and only then acknowledges
// the record. A record that is not a readable pool update is acknowledged
// and counted; a storage error is retried with backoff until the pool
// takes the update.
package poolfeed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// Config configures a Feed.
type Config struct {
	// Stream is the records stream (default broker.DefaultStream).
	Stream string
	// Durable names the consumer the ingest processes share (default
	// DefaultDurable).
	Durable string
	// AckWait is how long a delivered record may stay unacknowledged
	// before it goes to another process (default 1m).
	AckWait time.Duration
	// ApplyTimeout bounds one application of a record to the pool
	// (default 20s, below AckWait).
	ApplyTimeout time.Duration
	// RetryMin and RetryMax bound the delay before a record that met a
	// storage error is delivered again, doubling with each delivery
	// (defaults 1s and 30s).
	RetryMin, RetryMax time.Duration
	// StallAfter: see broker.DurableOptions (default 10s).
	StallAfter time.Duration
	// Instance names this process in audit records.
	Instance string
	// Logger receives the feed's notable events.
	Logger *slog.Logger
	// Metrics, when set, counts what the feed does.
	Metrics *Metrics
}

// Defaults for Config.
const (
	DefaultDurable      = "callflow-pool"
	DefaultAckWait      = time.Minute
	DefaultApplyTimeout = 20 * time.Second
	DefaultRetryMin     = time.Second
	DefaultRetryMax     = 30 * time.Second
)

// ErrInvalidConfig is wrapped by configuration errors of New.
var ErrInvalidConfig = errors.New("invalid pool feed config")

func (c *Config) setDefaults() {
	if c.Stream == "" {
		c.Stream = broker.DefaultStream
	}
	if c.Durable == "" {
		c.Durable = DefaultDurable
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = min(DefaultApplyTimeout, c.AckWait/2)
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(DefaultRetryMax, c.RetryMin)
	}
	if c.StallAfter == 0 {
		c.StallAfter = broker.DefaultStallAfter
	}
	if c.Instance == "" {
		c.Instance, _ = os.Hostname()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the configuration after defaults are applied.
func (c *Config) Validate() error {
	switch {
	case c.AckWait < time.Second:
		return fmt.Errorf("%w: ack wait must be at least 1s, got %s", ErrInvalidConfig, c.AckWait)
	case c.ApplyTimeout <= 0 || c.ApplyTimeout >= c.AckWait:
		return fmt.Errorf("%w: apply timeout must be > 0 and below the ack wait %s, got %s", ErrInvalidConfig, c.AckWait, c.ApplyTimeout)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("%w: retry delays must be > 0 with max >= min, got %s and %s", ErrInvalidConfig, c.RetryMin, c.RetryMax)
	case c.StallAfter <= 0:
		return fmt.Errorf("%w: stall interval must be > 0", ErrInvalidConfig)
	}
	return nil
}

// Pool is what the feed changes: session.Store.
type Pool interface {
	ApplyPoolUpdate(ctx context.Context, u session.PoolUpdate, at time.Time) ([]session.NumberChange, error)
}

// Recorder keeps records durably: the ingest's record path (JetStream, or
// its spool). Record returns nil once the record is kept in either.
type Recorder interface {
	Record(subject, id string, data []byte) error
}

// Filter is the subject filter of the feed's consumer: every
// VIRTUAL_NUMBER_UPDATE record, of every sub-account.
var Filter = wire.SubjectPrefix + "." + wire.EventVirtualNumberUpdate + ".>"

// Feed applies the pool updates of the records stream.
type Feed struct {
	cfg     Config
	pool    Pool
	rec     Recorder
	log     *slog.Logger
	metrics *Metrics
	d       *broker.Durable
	stats   stats

	mu      sync.Mutex
	lastErr error // the last storage error, until an update is applied
}

// Stats counts what a feed did since it started.
type Stats struct {
	// Applied records (whether or not they changed anything), Refused
	// ones (not pool updates), Retried deliveries (storage errors).
	Applied, Refused, Retried uint64
	// Changed numbers, and audit records that could not be kept.
	Changed, AuditFailures uint64
}

type stats struct {
	applied, refused, retried, changed, auditFailures atomic.Uint64
}

// New returns a feed on js's records stream that applies to pool and
// writes its audit records through rec (nil: none). Nothing runs until
// Run.
func New(js jetstream.JetStream, pool Pool, rec Recorder, cfg Config) (*Feed, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &Feed{cfg: cfg, pool: pool, rec: rec, log: cfg.Logger, metrics: cfg.Metrics}
	if f.metrics == nil {
		f.metrics = NewMetrics(nil)
	}
	f.d = broker.NewDurable(js, cfg.Stream, jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   "callflow: 8x8's number updates into the number pool",
		FilterSubject: Filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 256,
	}, broker.DurableOptions{StallAfter: cfg.StallAfter, Buffer: 4, Logger: cfg.Logger})
	return f, nil
}

// Run applies pool updates until ctx ends; the record in hand is finished
// first (within ApplyTimeout). Records delivered to it and not yet
// handled go to another process, or to this one again, after AckWait.
func (f *Feed) Run(ctx context.Context) {
	defer f.d.Stop()
	f.log.Info("pool feed running", "stream", f.cfg.Stream, "durable", f.cfg.Durable, "filter", Filter)
	for {
		msg, err := f.d.Next(ctx)
		if err != nil {
			return // ctx ended
		}
		f.handle(ctx, msg)
	}
}

// Check reports, for readiness, whether the feed's consumer exists and
// whether the last update failed on storage with none applied since.
func (f *Feed) Check(ctx context.Context) error {
	if _, err := f.d.Info(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lastErr != nil {
		return fmt.Errorf("pool updates wait for storage: %w", f.lastErr)
	}
	return nil
}

// Stats returns what the feed did since it started.
func (f *Feed) Stats() Stats {
	return Stats{
		Applied: f.stats.applied.Load(), Refused: f.stats.refused.Load(), Retried: f.stats.retried.Load(),
		Changed: f.stats.changed.Load(), AuditFailures: f.stats.auditFailures.Load(),
	}
}

// Restarts counts the consumer's pulls started again (deleted, stalled).
func (f *Feed) Restarts() uint64 { return f.d.Restarts() }

// handle applies one record and settles it: acknowledged once applied (or
// refused), delivered again later after a storage error.
func (f *Feed) handle(ctx context.Context, msg jetstream.Msg) {
	meta, _ := msg.Metadata()
	var seq uint64
	delivered := uint64(1)
	if meta != nil {
		seq, delivered = meta.Sequence.Stream, max(meta.NumDelivered, 1)
	}
	rec, u, ignored, err := parse(msg.Data())
	if err != nil {
		f.refuse(msg, seq, err)
		return
	}
	if len(ignored) > 0 {
		f.log.Warn("pool update read in part", "record", rec.ID, "sub_account", u.SubAccountID, "ignored", ignored)
	}
	at := rec.ReceivedAt
	if at.IsZero() && meta != nil {
		at = meta.Timestamp
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.cfg.ApplyTimeout)
	changes, err := f.pool.ApplyPoolUpdate(actx, u, at)
	cancel()
	// What changed is changed, also when the rest failed: its audit is
	// due now, as a retry finds it unchanged.
	f.audit(rec.ID, changes)
	f.stats.changed.Add(uint64(len(changes)))
	for _, c := range changes {
		if c.After != nil {
			f.metrics.changed(c.After.Status)
		}
	}
	if err != nil && !invalidOnly(err) {
		f.retry(msg, rec.ID, seq, delivered, len(changes), err)
		return
	}
	if err != nil {
		// Only numbers the store would never take: retrying changes
		// nothing. The rest of the update is applied.
		f.log.Warn("pool update applied in part: some numbers refused", "record", rec.ID, "sub_account", u.SubAccountID, "error", err)
	}
	f.mu.Lock()
	f.lastErr = nil
	f.mu.Unlock()
	f.stats.applied.Add(1)
	f.metrics.updates.WithLabelValues(ResultApplied).Inc()
	f.log.Debug("pool update applied", "record", rec.ID, "sub_account", u.SubAccountID, "kind", u.UpdateEventType,
		"numbers", len(u.VirtualNumbers), "changed", len(changes))
	if err := msg.Ack(); err != nil {
		f.log.Warn("pool update applied, not acknowledged: it will be applied again, changing nothing", "record", rec.ID, "error", err)
	}
}

// parse reads a record of the stream as a pool update; ignored says what
// of it was left out (wire.VirtualNumberUpdate.Ignored).
func parse(data []byte) (rec *wire.Record, u session.PoolUpdate, ignored []string, err error) {
	if rec, err = wire.ParseRecord(data); err != nil {
		return nil, u, nil, err
	}
	if rec.EventType != wire.EventVirtualNumberUpdate {
		return rec, u, nil, fmt.Errorf("record %s is a %q, not a %s", rec.ID, rec.EventType, wire.EventVirtualNumberUpdate)
	}
	v, err := wire.ParseVirtualNumberUpdate(rec.Event)
	if err != nil {
		return rec, u, nil, fmt.Errorf("record %s: %w", rec.ID, err)
	}
	if err := session.ValidSubAccount(v.SubAccountID); err != nil {
		return rec, u, nil, fmt.Errorf("record %s: payload.subAccountId: %w", rec.ID, err)
	}
	u = session.PoolUpdate{
		SubAccountID:    v.SubAccountID,
		UpdateEventType: v.UpdateEventType,
		TotalNumbers:    v.TotalNumbers,
		VirtualNumbers:  make([]session.NumberUpdate, 0, len(v.Numbers)),
	}
	for _, n := range v.Numbers {
		u.VirtualNumbers = append(u.VirtualNumbers, session.NumberUpdate{
			MSISDN:            n.MSISDN,
			UpdatedTimestamp:  n.UpdatedAt,
			CountryCode:       n.CountryCode,
			OperationalStatus: n.OperationalStatus,
			ReferenceID:       n.ReferenceID,
		})
	}
	return rec, u, v.Ignored, nil
}

// refuse acknowledges a record that is not a pool update.
func (f *Feed) refuse(msg jetstream.Msg, seq uint64, err error) {
	f.stats.refused.Add(1)
	f.metrics.updates.WithLabelValues(ResultRefused).Inc()
	f.log.Warn("record is not a usable pool update; acknowledged and skipped", "subject", msg.Subject(), "stream_seq", seq, "error", err)
	if err := msg.Ack(); err != nil {
		f.log.Warn("refused record not acknowledged; it will be refused again", "stream_seq", seq, "error", err)
	}
}

// retry has the record delivered again after a delay that doubles with
// each delivery.
func (f *Feed) retry(msg jetstream.Msg, id string, seq, delivered uint64, changed int, err error) {
	f.mu.Lock()
	f.lastErr = err
	f.mu.Unlock()
	f.stats.retried.Add(1)
	f.metrics.updates.WithLabelValues(ResultRetried).Inc()
	delay := f.cfg.RetryMin
	for i := uint64(1); i < delivered && delay < f.cfg.RetryMax; i++ {
		delay *= 2
	}
	delay = min(delay, f.cfg.RetryMax)
	// Logged at the first deliveries and then at each doubling, not once
	// a delivery through a long outage.
	if delivered&(delivered-1) == 0 {
		f.log.Warn("pool update not applied (storage); it will be delivered again", "record", id, "stream_seq", seq,
			"delivery", delivered, "changed_before_error", changed, "retry_in", delay, "error", err)
	}
	if nerr := msg.NakWithDelay(delay); nerr != nil {
		f.log.Warn("pool update not applied and not negatively acknowledged: it will be delivered again after the ack wait",
			"record", id, "error", nerr)
	}
}

// invalidOnly reports whether every error joined in err is a refusal of
// the store (session.ErrInvalid), which no retry changes.
func invalidOnly(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !invalidOnly(e) {
				return false
			}
		}
		return true
	}
	return errors.Is(err, session.ErrInvalid)
}

// audit writes one audit record per number changed: operation
// number_update, author 8x8, source the record that changed it.
func (f *Feed) audit(source string, changes []session.NumberChange) {
	if f.rec == nil {
		return
	}
	for _, c := range changes {
		if c.After == nil {
			continue
		}
		now := time.Now().UTC()
		a := wire.Audit{
			Timestamp:     now,
			Operation:     wire.AuditNumberUpdate,
			SubAccountID:  c.After.SubAccountID,
			VirtualNumber: c.After.Number,
			Actor:         wire.Actor{Author: wire.Author8x8, Source: source},
		}
		var err error
		if c.Before != nil {
			a.Before, err = json.Marshal(c.Before)
		}
		if err == nil {
			a.After, err = json.Marshal(c.After)
		}
		if err == nil {
			a.ID = auditID(source, c.After.Number, a.After)
			err = f.rec.Record(a.Record(f.cfg.Instance, now))
		}
		if err != nil {
			f.stats.auditFailures.Add(1)
			f.metrics.auditFailures.Inc()
			f.log.Error("audit record of a pool change not kept", "record", source, "number", wire.Masked(c.After.Number), "error", err)
		}
	}
}

// auditID names the audit of one change: the same change (same record,
// number and result) always gets the same id, which the stream's
// duplicate window drops when it is written twice.
func auditID(source, number string, after []byte) string {
	h := sha256.New()
	for _, s := range [][]byte{[]byte(source), []byte(number), after} {
		h.Write(s)
		h.Write([]byte{0})
	}
	return "audit-8x8-" + hex.EncodeToString(h.Sum(nil)[:12])
}
