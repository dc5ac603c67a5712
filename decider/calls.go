package decider

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callflow/callflow/internal/session"
	"github.com/prometheus/client_golang/prometheus"
)

// Results of counting a connected call in its session
// (callflow_session_updates_total counts calls, not writes).
const (
	updateRecorded = "recorded"  // written
	updateNotFound = "not_found" // the session was deleted meanwhile
	updateFailed   = "failed"    // a storage error or the write's timeout
	updateDropped  = "dropped"   // the queue was full, or Stop's bound passed
)

var updateResults = []string{updateRecorded, updateNotFound, updateFailed, updateDropped}

// connected is a call to count in its session.
type connected struct {
	session string
	at      time.Time
}

// maxBatch bounds the calls a writer takes from its queue at once.
const maxBatch = 256

// callCounter counts connected calls in the session store after the
// answer. The call path only puts the call in a bounded queue, never
// waiting (a full queue drops the call's count, and counts the drop).
// Each writer has a queue of its own, chosen by the session's id, so
// that one session's calls are written by one writer of the process, in
// order; a writer takes what waits in its queue and writes each session's
// calls in one write (session.Store.RecordCalls), bounded by a timeout. A
// burst on one session, or a store slower than the calls, thus costs
// fewer writes instead of a longer queue.
type callCounter struct {
	sessions Sessions
	queues   []chan connected
	timeout  time.Duration
	log      *slog.Logger
	recorded prometheus.Counter
	notFound prometheus.Counter
	failed   prometheus.Counter
	dropped  prometheus.Counter

	// mu is held for reading by add and for writing by stop, so that no
	// call enters a queue once stop has begun draining them.
	mu       sync.RWMutex
	stopping bool
	quit     chan struct{} // closed by stop: drain the queues, then end
	ctx      context.Context
	cancel   context.CancelFunc // at stop's bound: writes still running end
	writers  sync.WaitGroup
	stopOnce sync.Once

	// Warnings about failed or dropped counts, at most one per warnEvery.
	lastWarn atomic.Int64 // unix nanoseconds
	unwarned atomic.Int64 // calls failed or dropped since the last warning
}

// warnEvery spaces the warnings about counts that failed or were dropped:
// never one log line per call.
const warnEvery = 10 * time.Second

func newCallCounter(sessions Sessions, cfg *Config) *callCounter {
	ctx, cancel := context.WithCancel(context.Background())
	u := cfg.Metrics.updates
	c := &callCounter{
		sessions: sessions,
		queues:   make([]chan connected, cfg.CallWriters),
		timeout:  cfg.CallWriteTimeout,
		log:      cfg.Logger,
		recorded: u.WithLabelValues(updateRecorded),
		notFound: u.WithLabelValues(updateNotFound),
		failed:   u.WithLabelValues(updateFailed),
		dropped:  u.WithLabelValues(updateDropped),
		quit:     make(chan struct{}),
		ctx:      ctx,
		cancel:   cancel,
	}
	per := (cfg.CallQueue + cfg.CallWriters - 1) / cfg.CallWriters
	c.writers.Add(cfg.CallWriters)
	for i := range c.queues {
		c.queues[i] = make(chan connected, per)
		go c.run(c.queues[i])
	}
	return c
}

// add queues a call connected in session id at `at`, without waiting.
func (c *callCounter) add(id string, at time.Time) {
	q := c.queues[shard(id, len(c.queues))]
	c.mu.RLock()
	queued := false
	if !c.stopping {
		select {
		case q <- connected{id, at}:
			queued = true
		default:
		}
	}
	c.mu.RUnlock()
	if !queued {
		c.dropped.Inc()
		c.warn("calls not counted in their session: a write queue is full, or the decider is stopping", 1, nil)
	}
}

// shard picks the writer of session id among n (FNV-1a).
func shard(id string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// pending are the calls of one session taken from a queue.
type pending struct {
	n  int64
	at time.Time // the latest
}

// run writes q until stop, then what is left in q.
func (c *callCounter) run(q chan connected) {
	defer c.writers.Done()
	batch := make(map[string]pending)
	w := newWriteCtx(c.ctx)
	defer w.close()
	for {
		select {
		case k := <-q:
			c.take(batch, k, q)
			c.flush(w, batch)
		case <-c.quit:
			for {
				select {
				case k := <-q:
					c.take(batch, k, q)
					c.flush(w, batch)
				default:
					return
				}
			}
		}
	}
}

// take adds k, and what else waits in q (up to maxBatch calls), to batch.
func (c *callCounter) take(batch map[string]pending, k connected, q chan connected) {
	for i := 0; ; i++ {
		p := batch[k.session]
		p.n++
		if k.at.After(p.at) {
			p.at = k.at
		}
		batch[k.session] = p
		if i == maxBatch-1 {
			return
		}
		select {
		case k = <-q:
		default:
			return
		}
	}
}

// flush writes batch's calls, one write a session, and empties it.
func (c *callCounter) flush(w *writeCtx, batch map[string]pending) {
	for id, p := range batch {
		delete(batch, id)
		c.write(w, id, p)
	}
}

// write counts p's calls in session id, within w (the writer's context,
// bounded by the timeout for this write).
func (c *callCounter) write(w *writeCtx, id string, p pending) {
	if c.ctx.Err() != nil { // past stop's bound
		c.dropped.Add(float64(p.n))
		c.warn("calls not counted in their session: the decider stopped first", p.n, nil)
		return
	}
	w.begin(c.timeout)
	_, err := c.sessions.RecordCalls(w, id, p.n, p.at)
	w.finish()
	switch {
	case err == nil:
		c.recorded.Add(float64(p.n))
	case errors.Is(err, session.ErrNotFound):
		c.notFound.Add(float64(p.n))
	default:
		c.failed.Add(float64(p.n))
		c.warn("calls not counted in their session", p.n, err)
	}
}

// warn logs calls not counted, unless a warning was logged less than
// warnEvery ago; the next one says how many calls went unlogged.
func (c *callCounter) warn(msg string, n int64, err error) {
	c.unwarned.Add(n)
	now := time.Now().UnixNano()
	last := c.lastWarn.Load()
	if now-last < int64(warnEvery) || !c.lastWarn.CompareAndSwap(last, now) {
		return
	}
	attrs := []any{"calls", c.unwarned.Swap(0)}
	if err != nil {
		attrs = append(attrs, "error", err)
	}
	c.log.Warn(msg, attrs...)
}

// stop refuses new calls, writes those queued within bound, and returns by
// then (plus a moment for a write that does not end with its context):
// calls still queued at the bound are dropped, and counted.
func (c *callCounter) stop(bound time.Duration) {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.stopping = true
		c.mu.Unlock()
		close(c.quit)
		done := make(chan struct{})
		go func() { c.writers.Wait(); close(done) }()
		t := time.NewTimer(bound)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			c.cancel()
			t.Reset(time.Second)
			select {
			case <-done:
			case <-t.C:
				c.log.Warn("session writes still running after the decider stopped")
			}
		}
		c.cancel()
	})
}
