package archiver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReplayConfig says which records to archive again.
type ReplayConfig struct {
	// Since replays records stored at or after this time.
	Since time.Time
	// StartSeq replays from this stream sequence (when Since is zero).
	StartSeq uint64
	// Progress, when set, is called after each batch with the records done
	// and the total to do.
	Progress func(done, total uint64)
}

// ErrNothingToReplay means the stream holds no record in the range asked.
var ErrNothingToReplay = errors.New("no records to replay")

// Replay archives the records of the stream from a time or a sequence up to
// the last record present when it started, with an ordered consumer of its
// own (the durable consumer is untouched), which it deletes when done. The
// table is idempotent, so a replay never doubles what analysts read
// through FINAL.
func (a *Archiver) Replay(ctx context.Context, rc ReplayConfig) (uint64, error) {
	if err := a.applySchema(ctx); err != nil {
		return 0, err
	}
	stream, err := a.js.Stream(ctx, a.cfg.Stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", a.cfg.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", a.cfg.Stream, err)
	}
	last := info.State.LastSeq
	occ := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: replayInactive}
	first := info.State.FirstSeq
	switch {
	case !rc.Since.IsZero():
		t := rc.Since
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	case rc.StartSeq > 0:
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, rc.StartSeq
		first = max(first, rc.StartSeq)
	}
	if info.State.Msgs == 0 || first > last {
		return 0, ErrNothingToReplay
	}
	cons, err := stream.OrderedConsumer(ctx, occ)
	if err != nil {
		return 0, fmt.Errorf("replay consumer: %w", err)
	}
	defer a.removeConsumer(cons)
	it, err := cons.Messages(jetstream.PullMaxMessages(min(a.cfg.Batch.MaxRows, 5000)))
	if err != nil {
		return 0, fmt.Errorf("replay consume: %w", err)
	}
	defer it.Stop()

	// Batches are stored by Config.Inserts inserts at once while the next
	// one is read; done counts the records of the batches stored.
	var (
		mu     sync.Mutex // guards done, total and failed
		done   uint64
		total  = last - first + 1
		failed error
	)
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := startInserts(ictx, a.cfg.Inserts, func(ctx context.Context, b *batch) {
		err := a.retry(ctx, "replay insert", func(ctx context.Context) error {
			if err := a.w.reject(ctx, b.rejects); err != nil {
				return err
			}
			b.rejects = nil
			_, err := a.w.store(ctx, b.parsed)
			return err
		})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed = cmp.Or(failed, err)
			cancel()
			return
		}
		done += uint64(b.len())
		if rc.Progress != nil {
			rc.Progress(done, max(total, done))
		}
	})
	read := func() error {
		for reached, first := false, true; !reached; {
			mu.Lock()
			b := newBatch(int(min(uint64(a.cfg.Batch.MaxRows), total-min(total, done))))
			mu.Unlock()
			for b.rows < a.cfg.Batch.MaxRows && b.bytes < a.cfg.Batch.MaxBytes && !reached {
				msg, err := it.Next(jetstream.NextMaxWait(5 * time.Second))
				if errors.Is(err, nats.ErrTimeout) {
					// With nothing in hand: nothing more at or after the
					// start (records expired, or the start time is past
					// the last one). Else store what is in hand first.
					reached = b.len() == 0
					break
				}
				if err != nil {
					return fmt.Errorf("replay read: %w", err)
				}
				if seq, _ := b.add(msg); seq > 0 {
					if rc.Since.IsZero() && first {
						mu.Lock()
						total = last - seq + 1
						mu.Unlock()
					}
					first = false
					reached = seq >= last
				}
			}
			if b.len() > 0 && !in.put(ictx, b, 0) {
				return ictx.Err()
			}
		}
		return nil
	}
	rerr := read()
	in.close()
	mu.Lock()
	defer mu.Unlock()
	if err := cmp.Or(failed, rerr, ctx.Err()); err != nil {
		return done, err
	}
	return done, nil
}

// replayInactive is how long the server keeps a replay's consumer that
// nobody pulls from: a replay killed before deleting it leaves it that
// long (Replay waits 5 s at most between pulls).
const replayInactive = time.Minute

// removeConsumer deletes the replay's consumer once its messages are
// stopped: left to its inactivity threshold it would be listed meanwhile
// with every record after the replayed range as pending. The consumers an
// ordered consumer replaced are deleted by the client as it replaces them.
func (a *Archiver) removeConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.js.DeleteConsumer(ctx, a.cfg.Stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		a.log.Warn("replay consumer not deleted; the server removes it after its inactivity threshold",
			"consumer", info.Name, "inactive_threshold", replayInactive, "error", err)
	}
}
