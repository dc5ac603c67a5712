package archiver

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/internal/natstest"
)

// TestInsertsAtOnce: put hands batches to n stores running at once, and
// close waits for the ones taken.
func TestInsertsAtOnce(t *testing.T) {
	var running, most, stored atomic.Int32
	release := make(chan struct{})
	in := startInserts(context.Background(), 3, func(ctx context.Context, b *batch) {
		n := running.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		stored.Add(1)
	})
	for range 3 {
		if !in.put(context.Background(), &batch{}, 0) {
			t.Fatal("put refused")
		}
	}
	natstest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if n := running.Load(); n != 3 {
			return fmt.Errorf("%d stores running, want 3", n)
		}
		return nil
	})
	// A fourth waits for a free store, until its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if in.put(ctx, &batch{}, 0) {
		t.Fatal("a fourth batch was taken while three were being stored")
	}
	close(release)
	in.close()
	if stored.Load() != 3 || most.Load() != 3 {
		t.Fatalf("stored %d, at most %d at once; want 3 and 3", stored.Load(), most.Load())
	}
}

// TestInsertsInFlightOutage: with several inserts in flight and small
// batches, ClickHouse stopped in the middle of a backlog and started
// again, then the archiver stopped with batches in flight and started
// again: every record is archived once under FINAL, no message is
// acknowledged before its row is stored, and none is left unacknowledged.
func TestInsertsInFlightOutage(t *testing.T) {
	srv := chtest.StartServer(t)
	e := newEnv(t, srv.Addr)
	cfg := e.config(t)
	cfg.Batch.MaxRows, cfg.Inserts = 50, 4
	const total = 3000
	e.publish(t, 0, total)

	a, stop := e.run(t, cfg)
	natstest.CheckFor(t, 30*time.Second, 5*time.Millisecond, func() error {
		if a.Stats().Batches < 5 {
			return fmt.Errorf("%d batches stored", a.Stats().Batches)
		}
		return nil
	})
	srv.Stop(t)
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if a.Stats().Retries < 4 {
			return fmt.Errorf("%d retries", a.Stats().Retries)
		}
		return nil
	})
	srv.Start(t)
	e.ch = chtest.Conn(t, srv.Addr)
	// Stop while the backlog is still being archived.
	natstest.CheckFor(t, 30*time.Second, 5*time.Millisecond, func() error {
		if n := a.Stats().Rows; n < total/2 {
			return fmt.Errorf("%d rows", n)
		}
		return nil
	})
	stop()
	acked := total - e.unacked(t)
	got := e.count(t, "SELECT count() FROM DB.call_events FINAL")
	if got < uint64(acked) {
		t.Fatalf("%d messages acknowledged, only %d rows stored", acked, got)
	}
	t.Logf("stopped with %d of %d records stored, %d acknowledged", got, total, acked)

	e.run(t, cfg)
	e.waitRows(t, "SELECT count() FROM DB.call_events FINAL", total)
	e.waitRows(t, "SELECT uniqExact(event_id) FROM DB.call_events", total)
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := e.unacked(t); n != 0 {
			return fmt.Errorf("%d messages not acknowledged", n)
		}
		return nil
	})
}

// unacked is how many messages of the stream the durable consumer has not
// had acknowledged (not delivered yet, or delivered and waiting).
func (e *env) unacked(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := e.js.Consumer(ctx, "CALLS", DefaultDurable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return int(info.NumPending) + info.NumAckPending
}
