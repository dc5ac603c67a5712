package decider

import (
	"context"
	"sync"
	"time"
)

// writeCtx is a call writer's context for its writes, one write at a
// time, reused from one write to the next: a context.WithTimeout for each
// write cost a context, a timer, a channel and an entry in the parent's
// children every time (five allocations a write; BenchmarkCallCount). Each
// write ends at its own deadline (begin's timeout) or when the parent
// ends (the counter's context, cancelled at stop's bound), whichever
// comes first, as a context.WithTimeout of the parent would.
//
// Nothing may use it between finish and the next begin (Done may then
// return another channel): a writer passes it to one session.Store call at
// a time, which keeps nothing of it once it returns.
type writeCtx struct {
	parent context.Context
	timer  *time.Timer
	stop   func() bool // unregisters from parent

	mu       sync.Mutex
	deadline time.Time
	done     chan struct{}
	err      error
}

var _ context.Context = (*writeCtx)(nil)

func newWriteCtx(parent context.Context) *writeCtx {
	w := &writeCtx{parent: parent, done: make(chan struct{})}
	w.timer = time.AfterFunc(time.Hour, w.expire)
	w.timer.Stop()
	w.stop = context.AfterFunc(parent, func() { w.end(parent.Err()) })
	return w
}

// begin starts a write that may take up to timeout.
func (w *writeCtx) begin(timeout time.Duration) {
	w.mu.Lock()
	if w.err != nil && w.parent.Err() == nil {
		// The last write ran out of time: a fresh channel for this one.
		w.done = make(chan struct{})
		w.err = nil
	}
	w.deadline = time.Now().Add(timeout)
	w.mu.Unlock()
	w.timer.Reset(timeout)
}

// finish ends the write begun last. Its timer, should it fire all the
// same, either ends the idle context, which the next begin starts afresh,
// or finds the next write's later deadline and does nothing.
func (w *writeCtx) finish() { w.timer.Stop() }

// close releases the timer and the parent's callback; w is not used again.
func (w *writeCtx) close() {
	w.timer.Stop()
	w.stop()
}

// expire ends the write when its deadline has passed (the timer may fire
// late, for an earlier write: then the deadline is in the future).
func (w *writeCtx) expire() {
	w.mu.Lock()
	if !time.Now().Before(w.deadline) {
		w.endLocked(context.DeadlineExceeded)
	}
	w.mu.Unlock()
}

func (w *writeCtx) end(err error) {
	w.mu.Lock()
	w.endLocked(err)
	w.mu.Unlock()
}

func (w *writeCtx) endLocked(err error) {
	if w.err == nil {
		w.err = err
		close(w.done)
	}
}

func (w *writeCtx) Deadline() (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.deadline, true
}

func (w *writeCtx) Done() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.done
}

func (w *writeCtx) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *writeCtx) Value(key any) any { return w.parent.Value(key) }
