package decider

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWriteCtx(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newWriteCtx(parent)
	defer w.close()

	// A write that outlasts its timeout ends with DeadlineExceeded.
	before := time.Now()
	w.begin(20 * time.Millisecond)
	if d, ok := w.Deadline(); !ok || d.Before(before.Add(20*time.Millisecond)) || d.After(time.Now().Add(20*time.Millisecond)) {
		t.Errorf("Deadline %v, %v: want begin + 20ms", d, ok)
	}
	select {
	case <-w.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed past the deadline")
	}
	if err := w.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Err %v, want DeadlineExceeded", err)
	}
	w.finish()

	// The next write starts afresh.
	w.begin(time.Hour)
	if err := w.Err(); err != nil {
		t.Fatalf("Err %v after begin, want nil", err)
	}
	select {
	case <-w.Done():
		t.Fatal("Done closed at the start of a write")
	default:
	}
	w.finish()

	// A timer of an earlier write that fires late does not end a later one.
	w.begin(time.Millisecond)
	w.finish()
	w.begin(time.Hour)
	time.Sleep(20 * time.Millisecond)
	if err := w.Err(); err != nil {
		t.Fatalf("Err %v: a finished write's timer ended the next", err)
	}
	w.finish()

	// Reused, a write costs no allocation.
	if n := testing.AllocsPerRun(100, func() { w.begin(time.Hour); w.finish() }); n != 0 {
		t.Errorf("%v allocations a write, want 0", n)
	}

	// The parent ending ends the write under way, and every later one.
	w.begin(time.Hour)
	done := w.Done()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed when the parent ended")
	}
	if err := w.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("Err %v, want Canceled", err)
	}
	w.finish()
	w.begin(time.Hour)
	if err := w.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("Err %v after the parent ended, want Canceled", err)
	}
	w.finish()
}

func TestWriteCtxValue(t *testing.T) {
	type key struct{}
	w := newWriteCtx(context.WithValue(context.Background(), key{}, "v"))
	defer w.close()
	if v := w.Value(key{}); v != "v" {
		t.Errorf("Value %v, want the parent's", v)
	}
}
