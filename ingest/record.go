package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotAcknowledged means JetStream did not acknowledge a record in time;
// the record was kept in the unacknowledged file instead.
var ErrNotAcknowledged = errors.New("record not acknowledged by JetStream")

// recorder writes records to JetStream and waits, within a budget, for
// each acknowledgement. Publishes are asynchronous so that concurrent calls
// share the connection without waiting on each other's round trips; each
// call waits only for its own ack.
type recorder struct {
	js      jetstream.JetStream
	timeout time.Duration
	log     *slog.Logger
	unacked *unackedFile
	metrics *Metrics

	msgs   sync.Pool     // *nats.Msg with a Nats-Msg-Id header, reused after an ack
	failed atomic.Uint64 // records that went to the unacked file
	last   atomic.Int64  // unix nanos of the last failure log line
}

func newRecorder(js jetstream.JetStream, cfg *Config, log *slog.Logger) *recorder {
	r := &recorder{
		js:      js,
		timeout: cfg.RecordTimeout,
		log:     log,
		unacked: &unackedFile{path: filepath.Join(cfg.DataDir, "unacked", "records.log")},
		metrics: cfg.Metrics,
	}
	r.msgs.New = func() any { return &nats.Msg{Header: nats.Header{nats.MsgIdHdr: []string{""}}} }
	return r
}

// record publishes data on subject with id as its Nats-Msg-Id (so JetStream
// stores a webhook sent twice once) and waits for the ack. When the ack
// does not come within the budget the record is appended to the unacked
// file, so that it can be recovered, and ErrNotAcknowledged is returned.
// data must not be modified until record returns.
func (r *recorder) record(subject, id string, data []byte) error {
	msg := r.msgs.Get().(*nats.Msg)
	msg.Subject, msg.Data = subject, data
	msg.Header[nats.MsgIdHdr][0] = id
	start := time.Now()
	err := r.publish(msg)
	if err == nil {
		r.metrics.publishTime.Observe(time.Since(start).Seconds())
		msg.Data = nil
		r.msgs.Put(msg) // acknowledged: the client holds it no more
		return nil
	}
	reason := "error"
	if errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
		reason = "timeout"
	}
	r.metrics.publishFailed.WithLabelValues(reason).Inc()
	r.failed.Add(1)
	if ferr := r.unacked.append(subject, id, data); ferr != nil {
		err = fmt.Errorf("%w: %w; and keeping it failed: %w", ErrNotAcknowledged, err, ferr)
	} else {
		r.metrics.spool.Inc()
		err = fmt.Errorf("%w: %w", ErrNotAcknowledged, err)
	}
	r.logFailure(err)
	return err
}

// publish waits for the ack; the JetStream context fails the future after
// the record timeout (jetstream.WithPublishAsyncTimeout, see New), which
// also drops it from the client's pending acks.
func (r *recorder) publish(msg *nats.Msg) error {
	fut, err := r.js.PublishMsgAsync(msg)
	if err != nil {
		return err
	}
	select {
	case <-fut.Ok():
		return nil
	case err := <-fut.Err():
		return err
	}
}

// logFailure logs at most one line a second; the count says how many.
func (r *recorder) logFailure(err error) {
	now := time.Now().UnixNano()
	last := r.last.Load()
	if now-last < int64(time.Second) || !r.last.CompareAndSwap(last, now) {
		return
	}
	r.log.Error("records not acknowledged by JetStream; kept in the unacked file",
		"error", err, "failed_total", r.failed.Load(), "file", r.unacked.path)
}

// flush waits until every publish in flight is acknowledged or ctx ends.
func (r *recorder) flush(ctx context.Context) error {
	select {
	case <-r.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for JetStream acks: %w", ctx.Err())
	}
}

// unackedFile keeps records JetStream did not acknowledge. Each entry is a
// header line "subject msg-id length" followed by the record bytes and a
// newline, so records may contain newlines. Entries are fsynced: the caller
// was answered on the strength of it.
type unackedFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func (u *unackedFile) append(subject, id string, data []byte) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.f == nil {
		if err := os.MkdirAll(filepath.Dir(u.path), 0o750); err != nil {
			return err
		}
		f, err := os.OpenFile(u.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return err
		}
		u.f = f
	}
	buf := make([]byte, 0, len(subject)+len(id)+len(data)+32)
	buf = append(buf, subject...)
	buf = append(buf, ' ')
	buf = append(buf, id...)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, int64(len(data)), 10)
	buf = append(buf, '\n')
	buf = append(buf, data...)
	buf = append(buf, '\n')
	if _, err := u.f.Write(buf); err != nil {
		return err
	}
	return u.f.Sync()
}

func (u *unackedFile) close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.f == nil {
		return nil
	}
	err := u.f.Close()
	u.f = nil
	return err
}
