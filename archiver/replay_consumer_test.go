package archiver

import (
	"context"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/chtest"
)

// TestReplayLeavesNoConsumer: after a replay, done or with nothing to do,
// and with records stored after its range, the stream's consumers are the
// durable archiver's alone.
func TestReplayLeavesNoConsumer(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	e.publish(t, 0, 30)
	a, err := Open(e.js, e.config(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	consumers := func() []string {
		t.Helper()
		stream, err := e.js.Stream(ctx, "CALLS")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		lister := stream.ConsumerNames(ctx)
		for name := range lister.Name() {
			names = append(names, name)
		}
		if err := lister.Err(); err != nil {
			t.Fatal(err)
		}
		return names
	}
	before := consumers()
	if n, err := a.Replay(ctx, ReplayConfig{StartSeq: 11}); err != nil || n != 20 {
		t.Fatalf("replay from seq 11: %d %v", n, err)
	}
	e.publish(t, 30, 60) // records after the replayed range
	if got := consumers(); len(got) != len(before) {
		t.Errorf("consumers after a replay: %q, before it %q", got, before)
	}
	if _, err := a.Replay(ctx, ReplayConfig{StartSeq: 1000}); err != ErrNothingToReplay {
		t.Errorf("replay past the end: %v", err)
	}
	if n, err := a.Replay(ctx, ReplayConfig{Since: time.Now().Add(-time.Hour)}); err != nil || n != 60 {
		t.Fatalf("replay since an hour ago: %d %v", n, err)
	}
	if got := consumers(); len(got) != len(before) {
		t.Errorf("consumers after two replays: %q, before them %q", got, before)
	}
}
