package archiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Archiver consumes the records stream into ClickHouse.
type Archiver struct {
	cfg      Config
	js       jetstream.JetStream
	conn     driver.Conn
	w        *writer
	log      *slog.Logger
	stats    stats
	metrics  *Metrics
	consumer consumerRef
}

// Open connects (lazily: nothing is dialled until Run) to ClickHouse.
func Open(js jetstream.JetStream, cfg Config) (*Archiver, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// A connection for each insert in flight, one for the rejected
	// records and number statuses an insert may write meanwhile, and one
	// for probes and retention.
	conn, err := connect(cfg.ClickHouse, cfg.Inserts+2)
	if err != nil {
		return nil, err
	}
	a := &Archiver{
		cfg: cfg, js: js, conn: conn, log: cfg.Logger, metrics: cfg.Metrics,
		w: newWriter(conn, cfg.ClickHouse.Database, cfg.ClickHouse.QueryTimeout, cfg.Logger),
	}
	a.metrics.register(a)
	return a, nil
}

// applySchema applies the schema for one server, or ON CLUSTER.
func (a *Archiver) applySchema(ctx context.Context) error {
	if c := a.cfg.ClickHouse.Cluster; c != "" {
		return applyClusterSchema(ctx, a.conn, a.cfg.ClickHouse.Database, c, a.log)
	}
	return applySchema(ctx, a.conn, a.cfg.ClickHouse.Database, a.log)
}

// Connect opens a ClickHouse connection pool over the native protocol.
// Nothing is dialled until the first query.
func Connect(cfg ClickHouseConfig) (driver.Conn, error) {
	return connect(cfg, 4)
}

// connect opens a pool of at most conns connections, all of which it keeps
// open when idle: a connection closed and dialled again between two
// batches costs the next insert its handshake.
func connect(cfg ClickHouseConfig, conns int) (driver.Conn, error) {
	var compression *clickhouse.Compression
	switch cfg.Compression {
	case "", "lz4":
		compression = &clickhouse.Compression{Method: clickhouse.CompressionLZ4}
	case "zstd":
		compression = &clickhouse.Compression{Method: clickhouse.CompressionZSTD}
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: cfg.Addrs,
		Auth: clickhouse.Auth{Username: cfg.Username, Password: cfg.Password},
		TLS:  cfg.TLS,
		// Tables are always named with their database, which may not
		// exist yet when the pool opens.
		DialTimeout:     cfg.DialTimeout,
		ReadTimeout:     cfg.QueryTimeout,
		MaxOpenConns:    conns,
		MaxIdleConns:    conns,
		ConnMaxLifetime: time.Hour,
		Compression:     compression,
		DialStrategy:    dialWith(cfg.PasswordFunc),
		Settings:        clusterSettings(cfg.Cluster),
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	return conn, nil
}

// dialWith is the pool's dial strategy: the default one, with the password
// password returns at the time of the dial; nil without one.
func dialWith(password func() string) func(context.Context, int, *clickhouse.Options, clickhouse.Dial) (clickhouse.DialResult, error) {
	if password == nil {
		return nil
	}
	return func(ctx context.Context, id int, opts *clickhouse.Options, dial clickhouse.Dial) (clickhouse.DialResult, error) {
		o := *opts
		o.Auth.Password = password()
		return clickhouse.DefaultDialStrategy(ctx, id, &o, dial)
	}
}

// Close closes the ClickHouse connections.
func (a *Archiver) Close() error { return a.conn.Close() }

// Check reports whether ClickHouse answers, for readiness probes.
func (a *Archiver) Check(ctx context.Context) error {
	if err := a.conn.Ping(ctx); err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	return nil
}

// Stats returns counters since the archiver started.
func (a *Archiver) Stats() Stats { return a.stats.snapshot() }

// Run archives until ctx ends, then stores the batches in flight and the
// one in hand (bounded by drain) and returns. Until ClickHouse answers it
// retries with backoff, the records waiting in JetStream.
func (a *Archiver) Run(ctx context.Context, drain time.Duration) error {
	if err := a.retry(ctx, "apply schema", func(ctx context.Context) error {
		return a.applySchema(ctx)
	}); err != nil {
		return nil // stopped before ClickHouse was ever reachable
	}
	if a.cfg.RetentionMonths > 0 {
		rctx, stop := context.WithCancel(ctx)
		retained := make(chan struct{})
		go func() { defer close(retained); a.retain(rctx) }()
		defer func() { stop(); <-retained }()
	}
	it, err := a.pull(ctx)
	if err != nil {
		return err
	}
	defer func() { it.Stop() }()
	a.log.Info("archiver running", "stream", a.cfg.Stream, "durable", a.cfg.Durable, "database", a.cfg.ClickHouse.Database,
		"batch_rows", a.cfg.Batch.MaxRows, "batch_bytes", a.cfg.Batch.MaxBytes, "batch_age", a.cfg.Batch.MaxAge, "inserts", a.cfg.Inserts)

	// The inserts outlive ctx by drain at most: a stop lets the batches in
	// flight, and the one in hand, be stored and acknowledged.
	fctx, stopInserts := context.WithCancel(context.WithoutCancel(ctx))
	defer stopInserts()
	drained := context.AfterFunc(ctx, func() { time.AfterFunc(drain, stopInserts) })
	defer drained()
	in := startInserts(fctx, a.cfg.Inserts, func(ctx context.Context, b *batch) {
		if err := a.flush(ctx, b); err != nil {
			a.log.Warn("batch not archived; its records will be redelivered", "records", b.len(), "error", err)
		}
	})
	defer in.close()

	for {
		b, err := a.collect(ctx, it)
		if b.len() > 0 && !in.put(fctx, b, a.cfg.AckWait) {
			a.log.Warn("batch not archived; its records will be redelivered", "records", b.len(), "error", "stopped")
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			continue
		}
		// The pull stalled, or the iterator ended (the consumer was
		// deleted): make sure of the consumer and pull again, until it
		// works or the archiver is stopped.
		a.log.Warn("archiver pull interrupted; pulling again", "error", err)
		it.Stop()
		for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
			if it, err = a.pull(ctx); err == nil {
				break
			}
			a.log.Warn("archiver cannot pull; retrying", "error", err, "in", wait)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	}
}

// pull creates the durable consumer when missing (an existing one is
// updated to this archiver's settings) and starts pulling from it.
func (a *Archiver) pull(ctx context.Context) (jetstream.MessagesContext, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// MaxAckPending leaves room for a batch for each insert in flight and
	// the one being read.
	cons, err := a.js.CreateOrUpdateConsumer(cctx, a.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       a.cfg.Durable,
		Description:   "callflow archiver: records into ClickHouse",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       a.cfg.AckWait,
		MaxAckPending: (a.cfg.Inserts + 1) * a.cfg.Batch.MaxRows,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("archiver consumer on %s: %w", a.cfg.Stream, err)
	}
	a.consumer.Store(&cons)
	it, err := cons.Messages(jetstream.PullMaxMessages(min(a.cfg.Batch.MaxRows, 5000)))
	if err != nil {
		return nil, fmt.Errorf("archiver consume: %w", err)
	}
	return it, nil
}

// stallAfter is how long an archiver with nothing in hand waits for records
// before it asks the consumer whether some are waiting undelivered.
const stallAfter = 10 * time.Second

// errStalled: records wait in the stream, and none arrive.
var errStalled = errors.New("archiver pull stalled")

// stalled reports whether the consumer has records it has not delivered.
// A pull request parked on a consumer leader that died is lost without a
// word, and the client notices missing heartbeats only while one Next call
// lasts two heartbeats, which the archiver's short polls never do.
func (a *Archiver) stalled(ctx context.Context) bool {
	cons := a.consumer.Load()
	if cons == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := (*cons).Info(ctx)
	return err == nil && info.NumPending > 0
}

// collect gathers one batch: it waits for a first message, then takes more
// until the batch is full or as old as MaxAge.
func (a *Archiver) collect(ctx context.Context, it jetstream.MessagesContext) (*batch, error) {
	b := &batch{}
	var deadline time.Time
	idle := time.Now()
	for b.rows < a.cfg.Batch.MaxRows && b.bytes < a.cfg.Batch.MaxBytes {
		wait := time.Second // poll, so that a stop is noticed within a second
		if b.len() > 0 {
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			wait = min(wait, left)
		}
		if ctx.Err() != nil {
			return b, ctx.Err()
		}
		msg, err := it.Next(jetstream.NextMaxWait(wait))
		if errors.Is(err, nats.ErrTimeout) {
			if b.len() == 0 && time.Since(idle) > stallAfter {
				idle = time.Now()
				if a.stalled(ctx) {
					return b, errStalled
				}
			}
			continue
		}
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return b, err
			}
			a.log.Warn("archiver pull failed", "error", err)
			continue
		}
		if b.len() == 0 {
			deadline = time.Now().Add(a.cfg.Batch.MaxAge)
		}
		if _, delivered := b.add(msg); delivered > 1 {
			a.stats.redelivered.Add(1)
		}
	}
	return b, nil
}

// flush stores a batch and acknowledges its messages, retrying while
// ClickHouse is unavailable. Messages are acknowledged only after
// ClickHouse accepted them (or took them into rejected_records).
func (a *Archiver) flush(ctx context.Context, b *batch) error {
	start := time.Now()
	var stored int
	err := a.retry(ctx, "insert", func(ctx context.Context) error {
		// An attempt under way is not cut by a stop (that would leave
		// ClickHouse with rows whose messages were never acknowledged);
		// the stop is noticed between attempts. The query timeout
		// bounds each attempt.
		ctx = context.WithoutCancel(ctx)
		b.keepAlive(a.cfg.AckWait)
		if err := a.w.reject(ctx, b.rejects); err != nil {
			return err
		}
		a.stats.rejected.Add(uint64(len(b.rejects)))
		b.rejects = nil
		n, err := a.w.store(ctx, b.parsed)
		if err == nil {
			stored = len(b.parsed) - n
			a.stats.rejected.Add(uint64(n))
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, m := range b.msgs {
		if err := m.Ack(); err != nil {
			a.log.Warn("ack failed; the record will be redelivered and collapse in FINAL", "error", err)
		}
	}
	a.stats.rows.Add(uint64(stored))
	a.stats.batches.Add(1)
	took := time.Since(start)
	a.stats.lastInsert.Store(int64(took))
	a.metrics.batchRows.Observe(float64(b.len()))
	a.metrics.insertTime.Observe(took.Seconds())
	now := time.Now()
	for i := range b.parsed {
		a.metrics.visibility.Observe(now.Sub(b.parsed[i].rec.ReceivedAt).Seconds())
	}
	return nil
}

// retry runs f until it succeeds or ctx ends, with exponential backoff.
// An outage is logged once when it starts and once when it ends.
func (a *Archiver) retry(ctx context.Context, what string, f func(context.Context) error) error {
	backoff := a.cfg.RetryMin
	var since time.Time
	for attempt := 0; ; attempt++ {
		err := f(ctx)
		if err == nil {
			if attempt > 0 {
				a.log.Info("clickhouse is back; archiving resumed", "outage", time.Since(since).Round(time.Millisecond), "attempts", attempt+1)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.stats.retries.Add(1)
		if attempt == 0 {
			since = time.Now()
			a.log.Warn("clickhouse unavailable; records wait in JetStream, retrying with backoff", "step", what, "error", err)
		} else {
			a.log.Debug("clickhouse still unavailable", "step", what, "attempt", attempt+1, "error", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, a.cfg.RetryMax)
	}
}
