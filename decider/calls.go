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

// Results of a call count's write (callflow_session_updates_total).
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

// callCounter counts connected calls in the session store after the
// answer: the call path only puts the call in a bounded queue (never
// waiting: a full queue drops it, and counts the drop), and a few workers
// write the queue, each write bounded by a timeout.
type callCounter struct {
	sessions Sessions
	queue    chan connected
	timeout  time.Duration
	log      *slog.Logger
	results  map[string]prometheus.Counter

	// mu is held for reading by add and for writing by stop, so that no
	// call enters the queue once stop has begun draining it.
	mu       sync.RWMutex
	stopping bool
	quit     chan struct{} // closed by stop: drain the queue, then end
	ctx      context.Context
	cancel   context.CancelFunc // at stop's bound: writes still running end
	workers  sync.WaitGroup
	stopOnce sync.Once

	// Warnings about failed or dropped writes, at most one per warnEvery.
	lastWarn atomic.Int64 // unix nanoseconds
	unwarned atomic.Int64 // failures and drops since the last warning
}

// warnEvery spaces the warnings about writes that failed or were dropped:
// never one log line per call.
const warnEvery = 10 * time.Second

func newCallCounter(sessions Sessions, cfg *Config) *callCounter {
	ctx, cancel := context.WithCancel(context.Background())
	c := &callCounter{
		sessions: sessions,
		queue:    make(chan connected, cfg.CallQueue),
		timeout:  cfg.CallWriteTimeout,
		log:      cfg.Logger,
		results:  make(map[string]prometheus.Counter, len(updateResults)),
		quit:     make(chan struct{}),
		ctx:      ctx,
		cancel:   cancel,
	}
	for _, r := range updateResults {
		c.results[r] = cfg.Metrics.updates.WithLabelValues(r)
	}
	c.workers.Add(cfg.CallWriters)
	for range cfg.CallWriters {
		go c.run()
	}
	return c
}

// add queues a call connected in session id at `at`, without waiting.
func (c *callCounter) add(id string, at time.Time) {
	c.mu.RLock()
	queued := false
	if !c.stopping {
		select {
		case c.queue <- connected{id, at}:
			queued = true
		default:
		}
	}
	c.mu.RUnlock()
	if !queued {
		c.results[updateDropped].Inc()
		c.warn("call not counted in its session: the write queue is full or the decider is stopping", nil)
	}
}

func (c *callCounter) run() {
	defer c.workers.Done()
	for {
		select {
		case k := <-c.queue:
			c.write(k)
		case <-c.quit:
			for {
				select {
				case k := <-c.queue:
					c.write(k)
				default:
					return
				}
			}
		}
	}
}

func (c *callCounter) write(k connected) {
	if c.ctx.Err() != nil { // past stop's bound
		c.results[updateDropped].Inc()
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.timeout)
	_, err := c.sessions.RecordCall(ctx, k.session, k.at)
	cancel()
	switch {
	case err == nil:
		c.results[updateRecorded].Inc()
	case errors.Is(err, session.ErrNotFound):
		c.results[updateNotFound].Inc()
	default:
		c.results[updateFailed].Inc()
		c.warn("call not counted in its session", err)
	}
}

// warn logs a failed or dropped write, unless one was logged less than
// warnEvery ago; the next line says how many went unlogged.
func (c *callCounter) warn(msg string, err error) {
	c.unwarned.Add(1)
	now := time.Now().UnixNano()
	last := c.lastWarn.Load()
	if now-last < int64(warnEvery) || !c.lastWarn.CompareAndSwap(last, now) {
		return
	}
	n := c.unwarned.Swap(0)
	if err != nil {
		c.log.Warn(msg, "calls", n, "error", err)
	} else {
		c.log.Warn(msg, "calls", n)
	}
}

// stop refuses new calls, writes those queued within bound, and returns by
// then (plus a moment for writes that do not end with their context):
// calls still queued at the bound are dropped, and counted.
func (c *callCounter) stop(bound time.Duration) {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.stopping = true
		c.mu.Unlock()
		close(c.quit)
		done := make(chan struct{})
		go func() { c.workers.Wait(); close(done) }()
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
