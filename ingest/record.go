package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callflow/callflow/ingest/spool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrSpooled means JetStream did not acknowledge a record in time and
	// the record was kept in the on-disk spool instead, to be republished.
	ErrSpooled = errors.New("record spooled: JetStream did not acknowledge it in time")
	// ErrNotRecorded means a record could be kept neither in JetStream nor
	// in the spool (full, or the disk failed).
	ErrNotRecorded = errors.New("record not stored")
)

// Reasons a record went to the spool (label of callflow_spool_appended_total).
const (
	SpoolTimeout      = "timeout"      // published, not acknowledged within the record budget
	SpoolError        = "error"        // the publish failed
	SpoolDisconnected = "disconnected" // no NATS connection: not published
	SpoolDegraded     = "degraded"     // JetStream failed recently: not published until a replay gets through
)

// Replay pacing: the first retry after a failure, the longest wait, the
// records sent before waiting for their acks, and how long an ack of a
// replayed record may take: nobody waits on the line for those, so a
// JetStream slower than the record budget still drains the spool.
const (
	replayMinWait    = 250 * time.Millisecond
	replayMaxWait    = 5 * time.Second
	replayChunk      = 128
	replayAckTimeout = 30 * time.Second
)

// recorder makes each record durable before its call is answered: in
// JetStream when it acknowledges within the record budget, otherwise in the
// on-disk spool, which a background loop republishes once JetStream is
// back. Publishes are asynchronous so that concurrent calls share the
// connection without waiting on each other's round trips; each call waits
// only for its own ack.
//
// After a publish fails the recorder is degraded: records go straight to the
// spool, without making callers wait for a JetStream that is not answering,
// until the replay loop gets a spooled record acknowledged.
type recorder struct {
	nc       *nats.Conn
	replayJS jetstream.JetStream // the same connection, with replayAckTimeout
	log      *slog.Logger
	spool    *spool.Spool
	metrics  *Metrics
	degraded atomic.Bool

	timeout time.Duration // the record budget: how long a call waits for the ack
	msgs    sync.Pool     // *nats.Msg with a Nats-Msg-Id header, reused after an ack
	spooled atomic.Uint64 // records that went to the spool
	lost    atomic.Uint64 // records kept nowhere
	last    atomic.Int64  // unix nanos of the last failure log line

	kick chan struct{} // wakes the replay loop
	stop context.CancelFunc
	done chan struct{}
}

// newRecorder opens the spool under cfg.DataDir, moving into it what an
// older version left in the unacknowledged-records file, and starts the
// replay loop.
func newRecorder(nc *nats.Conn, cfg *Config, log *slog.Logger) (*recorder, error) {
	sp, err := spool.Open(spool.Config{
		Dir:      filepath.Join(cfg.DataDir, "spool"),
		MaxBytes: cfg.SpoolMaxBytes,
		Logger:   log.With("subsystem", "spool"), // log already says component=ingest
	})
	if err != nil {
		return nil, err
	}
	legacy := filepath.Join(cfg.DataDir, "unacked", "records.log")
	if n, err := sp.ImportUnacked(legacy); err != nil {
		log.Error("records of the unacknowledged-records file not all moved to the spool", "moved", n, "file", legacy, "error", err)
	} else if n > 0 {
		log.Info("records of the unacknowledged-records file moved to the spool", "records", n, "file", legacy)
	}
	replayJS, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(replayAckTimeout))
	if err != nil {
		_ = sp.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	r := &recorder{
		nc:       nc,
		timeout:  cfg.RecordTimeout,
		replayJS: replayJS,
		log:      log,
		spool:    sp,
		metrics:  cfg.Metrics,
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	r.msgs.New = func() any { return &nats.Msg{Header: nats.Header{nats.MsgIdHdr: []string{""}}} }
	r.metrics.registerSpool(sp)
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go r.replayLoop(ctx)
	return r, nil
}

// record publishes data on subject with id as its Nats-Msg-Id (so JetStream
// stores a webhook sent twice once) and waits for the ack. When the ack
// does not come within the budget, or JetStream is known to be away, the
// record is appended to the spool and an error wrapping ErrSpooled is
// returned; when the spool cannot keep it either, one wrapping
// ErrNotRecorded. data must not be modified until record returns, nor
// reused after an error: an unacknowledged publish may still be resent
// from it by the client.
func (r *recorder) record(subject, id string, data []byte) error {
	reason := SpoolDegraded
	var err error
	switch {
	case r.degraded.Load():
	case !r.nc.IsConnected():
		reason = SpoolDisconnected
	default:
		msg := r.msgs.Get().(*nats.Msg)
		msg.Subject, msg.Data = subject, data
		msg.Header[nats.MsgIdHdr][0] = id
		start := time.Now()
		if err = r.publish(msg); err == nil {
			r.metrics.publishTime.Observe(time.Since(start).Seconds())
			msg.Data = nil
			r.msgs.Put(msg) // acknowledged: the client holds it no more
			return nil
		}
		reason = SpoolError
		if errors.Is(err, nats.ErrTimeout) {
			reason = SpoolTimeout
		}
		r.metrics.publishFailed.WithLabelValues(reason).Inc()
		if !r.degraded.Swap(true) {
			r.log.Warn("JetStream did not acknowledge a record; records go to the spool until it does again",
				"error", err, "spool", r.spool.Dir())
		}
	}
	if serr := r.spool.Append(spool.Entry{Subject: subject, ID: id, Data: data}); serr != nil {
		r.lost.Add(1)
		lostReason := "spool_error"
		if errors.Is(serr, spool.ErrFull) {
			lostReason = "spool_full"
		}
		r.metrics.recordsLost.WithLabelValues(lostReason).Inc()
		if err != nil {
			err = fmt.Errorf("%w: JetStream: %w; spool: %w", ErrNotRecorded, err, serr)
		} else {
			err = fmt.Errorf("%w: JetStream %s; spool: %w", ErrNotRecorded, reason, serr)
		}
		r.logFailure(err)
		return err
	}
	r.spooled.Add(1)
	r.metrics.spooled.WithLabelValues(reason).Inc()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSpooled, err)
	}
	return fmt.Errorf("%w (%s)", ErrSpooled, reason)
}

// publish sends msg as a request and waits for JetStream's acknowledgement
// for at most the record budget. The calls of the ingestor share one
// connection: each publish is pipelined behind the others, and each waits
// only for its own answer, through the client's request multiplexer (one
// wildcard inbox) rather than JetStream's async publisher, whose futures
// and decoded acknowledgements cost more allocations and CPU on the hot
// path (BENCHMARKS.md, "Acknowledgements through the request mux").
func (r *recorder) publish(msg *nats.Msg) error {
	ack, err := r.nc.RequestMsg(msg, r.timeout)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("%w: %w", jetstream.ErrNoStreamResponse, err)
		}
		return err
	}
	return checkPubAck(ack.Data)
}

// checkPubAck reports the error of a JetStream publish acknowledgement,
// nil for a record stored (or found already stored: a duplicate). Only an
// answer that says "error", or none that looks like an acknowledgement,
// is one.
func checkPubAck(data []byte) error {
	if bytes.Contains(data, []byte(`"error"`)) {
		var e struct {
			Error jetstream.APIError `json:"error"`
		}
		if err := json.Unmarshal(data, &e); err == nil && e.Error.Code != 0 {
			return &e.Error
		}
		return fmt.Errorf("%w: %q", errBadPubAck, data)
	}
	if !bytes.Contains(data, []byte(`"seq"`)) {
		return fmt.Errorf("%w: %q", errBadPubAck, data)
	}
	return nil
}

// errBadPubAck: JetStream's answer to a record is not an acknowledgement.
var errBadPubAck = errors.New("not a JetStream acknowledgement")

// send republishes spooled records with their original Nats-Msg-Id and
// reports how many, from the first, JetStream acknowledged.
func (r *recorder) send(ctx context.Context, entries []spool.Entry) (int, error) {
	futs := make([]jetstream.PubAckFuture, 0, len(entries))
	var perr error
	for _, e := range entries {
		msg := &nats.Msg{Subject: e.Subject, Data: e.Data, Header: nats.Header{nats.MsgIdHdr: []string{e.ID}}}
		f, err := r.replayJS.PublishMsgAsync(msg)
		if err != nil {
			perr = err
			break
		}
		futs = append(futs, f)
	}
	for i, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return i, err
		case <-ctx.Done():
			return i, ctx.Err()
		}
	}
	return len(futs), perr
}

// replayLoop republishes the spool whenever it holds records and NATS is
// connected, backing off while JetStream keeps failing.
func (r *recorder) replayLoop(ctx context.Context) {
	defer close(r.done)
	wait := replayMinWait
	for {
		if r.spool.Len() == 0 {
			r.degraded.Store(false)
			wait = replayMinWait
			select {
			case <-ctx.Done():
				return
			case <-r.kick:
			}
		}
		// Spooled records wait a little: a burst of failures is sent
		// together, and a JetStream that just failed gets time.
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if !r.nc.IsConnected() {
			continue
		}
		n, err := r.replay(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && n == 0:
			wait = min(2*wait, replayMaxWait)
		default:
			wait = replayMinWait // done, or progressing
		}
	}
}

// replay sends what the spool holds once and says how many records went;
// any record acknowledged ends the degraded state.
func (r *recorder) replay(ctx context.Context) (int, error) {
	n, err := r.spool.Replay(ctx, replayChunk, r.send)
	if n > 0 && r.degraded.Swap(false) {
		r.log.Info("JetStream acknowledges records again; new records are published directly")
	}
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("spool replay interrupted; retrying", "replayed", n, "waiting", r.spool.Len(), "error", err)
		}
		return n, err
	}
	if n > 0 {
		r.log.Info("spool replayed to JetStream", "records", n, "waiting", r.spool.Len())
	}
	return n, nil
}

// spoolReadyRoom is the room the spool must keep for the ingestor to be
// ready while JetStream is away: a twentieth of its bound, at least 1 MiB.
func spoolReadyRoom(limit int64) int64 { return max(limit/20, 1<<20) }

// check reports an error when new records would be lost: JetStream is not
// taking them and the spool is (nearly) full.
func (r *recorder) check() error {
	if !r.degraded.Load() && r.nc.IsConnected() {
		return nil
	}
	used, limit := r.spool.Stats().Bytes, r.spool.MaxBytes()
	if limit-used >= spoolReadyRoom(limit) {
		return nil
	}
	return fmt.Errorf("JetStream is not acknowledging records and the spool is nearly full (%d of %d bytes): records of new calls would be lost", used, limit)
}

// logFailure logs at most one line a second; the count says how many.
func (r *recorder) logFailure(err error) {
	now := time.Now().UnixNano()
	last := r.last.Load()
	if now-last < int64(time.Second) || !r.last.CompareAndSwap(last, now) {
		return
	}
	r.log.Error("records lost: neither JetStream nor the spool could keep them",
		"error", err, "lost_total", r.lost.Load(), "spool", r.spool.Dir())
}

// close stops the replay loop (the calls in flight, each waiting for its
// own ack, are done: Shutdown holds them off), sends what the
// spool still holds if NATS is connected, and closes the spool; all within
// ctx. Whatever is left stays on disk for the next start.
func (r *recorder) close(ctx context.Context) error {
	var errs []error
	r.stop()
	<-r.done
	if r.spool.Len() > 0 && r.nc.IsConnected() && ctx.Err() == nil {
		if _, err := r.replay(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flushing the spool: %w", err))
		}
	}
	if n := r.spool.Len(); n > 0 {
		r.log.Warn("records remain in the spool; they are sent at the next start", "records", n, "spool", r.spool.Dir())
	}
	if err := r.spool.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
