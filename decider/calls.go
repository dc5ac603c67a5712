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

// maxBatch bounds the calls a writer takes from its queue at once, and
// the deferred counts it writes before looking at its queue again.
const maxBatch = 256

// callCounter counts connected calls in the session store after the
// answer. The call path only puts the call in a bounded queue, never
// waiting (a full queue drops the call's count, and counts the drop).
// Each writer has a queue of its own, chosen by the session's id, so
// that one session's calls are written by one writer of the process, in
// order. A writer takes what waits in its queue and writes each session's
// calls in one write (session.Store.RecordCalls), bounded by a timeout.
//
// Calls of a session whose lifecycle turns on them (maxCalls, an idle
// expiry: Session.CountsMatter) are written at once. The others' only
// effect is the callCount and lastCallAt that readers see, so they wait
// up to delay, merged with the session's later calls meanwhile, and a
// session called again and again within delay costs one write, not one
// a call. A burst on one session, or a store slower than the calls, thus
// costs fewer writes instead of a longer queue.
type callCounter struct {
	sessions Sessions
	queues   []chan connected
	timeout  time.Duration
	delay    time.Duration // <= 0: every call written at once
	log      *slog.Logger
	recorded prometheus.Counter
	notFound prometheus.Counter
	failed   prometheus.Counter
	dropped  prometheus.Counter
	deferred prometheus.Gauge

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
		delay:    cfg.CountDelay,
		log:      cfg.Logger,
		recorded: u.WithLabelValues(updateRecorded),
		notFound: u.WithLabelValues(updateNotFound),
		failed:   u.WithLabelValues(updateFailed),
		dropped:  u.WithLabelValues(updateDropped),
		deferred: cfg.Metrics.deferred,
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
	n   int64
	at  time.Time // the latest
	due time.Time // deferred: when it is to be written
}

// merge adds q's calls to p's.
func (p *pending) merge(q pending) {
	p.n += q.n
	if q.at.After(p.at) {
		p.at = q.at
	}
}

// writer is one writer's state: calls to write at once, and the
// deferred ones with the order they fall due in.
type writer struct {
	now   map[string]pending
	later map[string]pending
	// due holds the sessions of later in the order they fall due (first
	// call first); an id whose entry was written meanwhile, or deferred
	// again later, is skipped when its turn comes.
	due  []dueCount
	head int
}

type dueCount struct {
	id string
	at time.Time
}

// run writes q until stop, then what is left in q and the deferred
// counts.
func (c *callCounter) run(q chan connected) {
	defer c.writers.Done()
	wr := &writer{now: make(map[string]pending), later: make(map[string]pending)}
	w := newWriteCtx(c.ctx)
	defer w.close()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if next, ok := wr.next(); ok {
			timer.Reset(time.Until(next))
		} else {
			timer.Stop()
		}
		select {
		case k := <-q:
			c.take(wr, k, q)
			c.flush(w, wr.now)
		case <-timer.C:
		case <-c.quit:
			for {
				select {
				case k := <-q:
					c.take(wr, k, q)
					c.flush(w, wr.now)
					continue
				default:
				}
				break
			}
			for len(wr.later) > 0 {
				c.writeDue(w, wr, time.Time{}) // all of them, now
			}
			return
		}
		c.writeDue(w, wr, time.Now())
	}
}

// next returns when wr's first deferred count falls due.
func (wr *writer) next() (time.Time, bool) {
	for wr.head < len(wr.due) {
		d := wr.due[wr.head]
		if p, ok := wr.later[d.id]; ok && p.due.Equal(d.at) {
			return d.at, true
		}
		wr.pop()
	}
	return time.Time{}, false
}

func (wr *writer) pop() {
	wr.due[wr.head] = dueCount{}
	wr.head++
	if wr.head == len(wr.due) {
		wr.due, wr.head = wr.due[:0], 0
	} else if wr.head > 1024 && wr.head > len(wr.due)/2 {
		wr.due = append(wr.due[:0], wr.due[wr.head:]...)
		wr.head = 0
	}
}

// take adds k, and what else waits in q (up to maxBatch calls), to wr:
// to its calls to write at once, or to its deferred ones.
func (c *callCounter) take(wr *writer, k connected, q chan connected) {
	for i := 0; ; i++ {
		c.sort(wr, k)
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

// sort puts call k with the calls of its session to write at once, or
// with its deferred ones.
func (c *callCounter) sort(wr *writer, k connected) {
	call := pending{n: 1, at: k.at}
	if p, ok := wr.later[k.session]; ok {
		p.merge(call)
		wr.later[k.session] = p
		if !c.sessions.CountsMatter(k.session) {
			return
		}
		// The session's lifecycle turns on its calls now (maxCalls
		// was set): its deferred calls go with this one.
		delete(wr.later, k.session)
		c.deferred.Sub(1)
		call = p
	} else if c.delay > 0 && !c.sessions.CountsMatter(k.session) {
		call.due = time.Now().Add(c.delay)
		wr.later[k.session] = call
		wr.due = append(wr.due, dueCount{k.session, call.due})
		c.deferred.Add(1)
		return
	}
	p := wr.now[k.session]
	p.merge(call)
	wr.now[k.session] = p
}

// writeDue writes up to maxBatch of wr's deferred counts due by now (all
// up to maxBatch when now is zero), oldest first.
func (c *callCounter) writeDue(w *writeCtx, wr *writer, now time.Time) {
	for range maxBatch {
		at, ok := wr.next()
		if !ok || (!now.IsZero() && at.After(now)) {
			return
		}
		id := wr.due[wr.head].id
		p := wr.later[id]
		delete(wr.later, id)
		wr.pop()
		c.deferred.Sub(1)
		c.write(w, id, p)
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
