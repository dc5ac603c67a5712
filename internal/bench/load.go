package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// LoadSpec is one load run against one URL.
type LoadSpec struct {
	// Name labels the result ("system", "baseline").
	Name string
	URL  string
	// Rate > 0 runs open loop at that many requests a second; 0 runs
	// closed loop.
	Rate        float64
	Duration    time.Duration
	Connections int
	Timeout     time.Duration
	Drain       time.Duration
	// ReportEvery calls OnProgress at that interval (0: never).
	ReportEvery time.Duration
	OnProgress  func(Progress)
	// TrackAnswered keeps the index of every request answered 200, for
	// the audit.
	TrackAnswered bool
	// CheckAnswers counts answers that contradict the request (an
	// in-session call not connected, a stranger connected): off for a
	// baseline that answers the same callflow to everything.
	CheckAnswers bool
}

// Progress is the state of a run at a progress tick.
type Progress struct {
	Elapsed time.Duration
	// Sent counts requests done (answered or failed), Answered those
	// answered 200.
	Sent     uint64
	Answered uint64
	// Rate is answers per second over the last interval.
	Rate float64
	// P99 is over the last interval; TotalP99 and Max since the start.
	P99, TotalP99, Max time.Duration
	Errors             uint64
	Fallbacks          uint64
	Wrong              uint64
}

// shard holds the figures of some workers; workers lock only their own
// shard, the progress ticker locks each in turn.
type shard struct {
	mu        sync.Mutex
	lat       *Histogram // from the scheduled send (open loop) or the send
	svc       *Histogram // open loop: from the actual send
	lag       *Histogram // open loop: actual send minus scheduled send
	sent      [numKinds]uint64
	answered  uint64
	answers   [numAnswers]uint64
	errs      map[string]uint64
	errSample map[string]string
	wrong     [2]uint64 // in-session not connected, stranger connected
	lastDone  time.Time
}

const maxShards = 16

// answeredSet is a growable bitset of request indexes, safe for concurrent
// use: chunks of 64Ki bits are allocated when first touched.
type answeredSet struct {
	chunks [1 << 16]atomic.Pointer[[1024]uint64]
	mu     sync.Mutex
}

func (s *answeredSet) add(n uint64) {
	ci := n >> 16
	if ci >= uint64(len(s.chunks)) {
		return // beyond 2^32 requests: not tracked
	}
	c := s.chunks[ci].Load()
	if c == nil {
		s.mu.Lock()
		if c = s.chunks[ci].Load(); c == nil {
			c = new([1024]uint64)
			s.chunks[ci].Store(c)
		}
		s.mu.Unlock()
	}
	atomic.OrUint64(&c[(n>>6)&1023], 1<<(n&63))
}

func (s *answeredSet) has(n uint64) bool {
	ci := n >> 16
	if ci >= uint64(len(s.chunks)) {
		return false
	}
	c := s.chunks[ci].Load()
	return c != nil && atomic.LoadUint64(&c[(n>>6)&1023])&(1<<(n&63)) != 0
}

// runner is one load run in progress.
type runner struct {
	spec     LoadSpec
	traffic  *Traffic
	client   *fasthttp.HostClient
	url      string
	shards   []*shard
	next     atomic.Uint64
	stopped  atomic.Bool
	stopCh   chan struct{}
	answered *answeredSet
	start    time.Time
	end      time.Time // no new request after this (closed loop)
	hard     time.Time // nothing at all after this
	total    uint64    // open loop: requests scheduled
	interval float64   // open loop: nanoseconds between requests
}

// Load runs spec with traffic and returns the result, and the set of
// requests answered 200 when spec.TrackAnswered. It returns by
// Duration + Drain (plus at most one Timeout when Drain is shorter),
// sooner when ctx ends.
func Load(ctx context.Context, spec LoadSpec, traffic *Traffic) (*Result, *answeredSet, error) {
	u, err := url.Parse(spec.URL)
	if err != nil {
		return nil, nil, err
	}
	if spec.Connections < 1 || spec.Duration <= 0 || spec.Timeout <= 0 || spec.Rate < 0 {
		return nil, nil, errors.New("bench: load needs connections >= 1, duration > 0, timeout > 0 and rate >= 0")
	}
	dialer := &net.Dialer{Timeout: spec.Timeout, KeepAlive: 30 * time.Second}
	r := &runner{
		spec:    spec,
		traffic: traffic,
		url:     spec.URL,
		stopCh:  make(chan struct{}),
		client: &fasthttp.HostClient{
			Addr:                      hostAddr(u),
			IsTLS:                     u.Scheme == "https",
			Name:                      "callflow-bench",
			MaxConns:                  spec.Connections,
			MaxConnWaitTimeout:        spec.Timeout,
			MaxIdleConnDuration:       time.Minute,
			MaxIdemponentCallAttempts: 1,
			// A webhook is not idempotent for the report: a silent retry
			// would hide a failure and send an id twice.
			RetryIf:             func(*fasthttp.Request) bool { return false },
			MaxResponseBodySize: 1 << 20,
			Dial:                func(addr string) (net.Conn, error) { return dialer.Dial("tcp", addr) },
		},
	}
	if spec.TrackAnswered {
		r.answered = new(answeredSet)
	}
	ns := min(spec.Connections, maxShards)
	for range ns {
		sh := &shard{lat: NewHistogram(), errs: map[string]uint64{}, errSample: map[string]string{}}
		if spec.Rate > 0 {
			sh.svc, sh.lag = NewHistogram(), NewHistogram()
		}
		r.shards = append(r.shards, sh)
	}
	if spec.Rate > 0 {
		r.interval = 1e9 / spec.Rate
		r.total = uint64(math.Floor(spec.Duration.Seconds() * spec.Rate))
	}

	cpu0 := cpuTime()
	r.start = time.Now()
	r.end = r.start.Add(spec.Duration)
	r.hard = r.end.Add(spec.Drain)
	done := make(chan struct{})
	var interruptedAt time.Time
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-ctx.Done():
			interruptedAt = time.Now()
			r.stop()
		case <-done:
		}
	}()
	var wg sync.WaitGroup
	for w := range spec.Connections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(r.shards[w%ns])
		}()
	}
	progressed := make(chan struct{})
	if spec.ReportEvery > 0 && spec.OnProgress != nil {
		go func() {
			defer close(progressed)
			r.progress(done)
		}()
	} else {
		close(progressed)
	}
	wg.Wait()
	close(done)
	<-watched
	<-progressed
	r.client.CloseIdleConnections()
	res := r.result(interruptedAt)
	if wall := time.Since(r.start); wall > 0 {
		res.BenchCPU = round3(float64(cpuTime()-cpu0) / float64(wall))
	}
	return res, r.answered, nil
}

func (r *runner) stop() {
	if r.stopped.CompareAndSwap(false, true) {
		close(r.stopCh)
	}
}

type worker struct {
	sh    *shard
	cls   *classifier
	req   *fasthttp.Request
	resp  *fasthttp.Response
	buf   []byte
	timer *time.Timer
}

func (r *runner) work(sh *shard) {
	w := &worker{sh: sh, cls: newClassifier(), req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse(), buf: make([]byte, 0, 2048)}
	defer fasthttp.ReleaseRequest(w.req)
	defer fasthttp.ReleaseResponse(w.resp)
	w.req.SetRequestURI(r.url)
	w.req.Header.SetMethod(fasthttp.MethodPost)
	w.req.Header.SetContentType("application/json")
	if r.spec.Rate > 0 {
		w.timer = time.NewTimer(time.Hour)
		w.timer.Stop()
		r.openLoop(w)
		return
	}
	r.closedLoop(w)
}

// closedLoop sends the next request as soon as the previous one is
// answered, until the run's end.
func (r *runner) closedLoop(w *worker) {
	for !r.stopped.Load() {
		t0 := time.Now()
		if !t0.Before(r.end) {
			return
		}
		n := r.next.Add(1) - 1
		kind, err := r.send(w, n, t0)
		t1 := time.Now()
		r.record(w, n, kind, err, t1.Sub(t0), -1, -1, t1)
	}
}

// openLoop sends request n at start + n/rate. Latency counts from that
// scheduled time whenever the worker was busy then (the system had not
// answered earlier requests yet: the wait is the system's, and hiding it
// would be coordinated omission). A worker that was idle and only woke up
// late counts from its actual send: that lateness is the load generator's
// timer, reported as send lag.
func (r *runner) openLoop(w *worker) {
	for !r.stopped.Load() {
		n := r.next.Add(1) - 1
		if n >= r.total {
			return
		}
		sched := r.start.Add(time.Duration(float64(n) * r.interval))
		picked := time.Now()
		if picked.After(r.hard) {
			return // the rest is counted as not sent
		}
		idle := picked.Before(sched)
		if idle {
			w.timer.Reset(sched.Sub(picked))
			select {
			case <-w.timer.C:
			case <-r.stopCh:
				w.timer.Stop()
				return
			}
		}
		t0 := time.Now()
		from := sched
		if idle {
			from = t0
		}
		kind, err := r.send(w, n, t0)
		t1 := time.Now()
		r.record(w, n, kind, err, t1.Sub(from), t1.Sub(t0), t0.Sub(sched), t1)
	}
}

// errDrainCut is a request still unanswered when Duration + Drain ran
// out, before its own timeout.
var errDrainCut = errors.New("no answer by --duration + --drain (before the request's own --timeout)")

// send posts request n; the answer is left in w.resp.
func (r *runner) send(w *worker, n uint64, t0 time.Time) (Kind, error) {
	var kind Kind
	w.buf, kind = r.traffic.Append(w.buf[:0], n)
	w.req.SetBodyRaw(w.buf)
	deadline, cut := t0.Add(r.spec.Timeout), false
	if r.hard.Before(deadline) {
		deadline, cut = r.hard, true
	}
	w.resp.Reset()
	err := r.client.DoDeadline(w.req, w.resp, deadline)
	if err != nil && cut && errorKind(err) == "timeout" {
		err = errDrainCut
	}
	return kind, err
}

// record books request n. svc and lag are negative in closed loop.
func (r *runner) record(w *worker, n uint64, kind Kind, err error, lat, svc, lag time.Duration, done time.Time) {
	status := 0
	if err == nil {
		status = w.resp.StatusCode()
	}
	var ans Answer = numAnswers
	if status == fasthttp.StatusOK {
		ans = w.cls.classify(kind, w.resp.Body())
		if r.answered != nil {
			r.answered.add(n)
		}
	}
	var errKind, errMsg string
	if err != nil {
		errKind, errMsg = errorKind(err), err.Error()
	} else if status != fasthttp.StatusOK {
		errKind = "http_" + strconv.Itoa(status)
		errMsg = string(w.resp.Body())
	}
	sh := w.sh
	sh.mu.Lock()
	sh.sent[kind]++
	if status != 0 {
		// Only answered requests have a latency; timeouts and
		// connection failures are counted as errors.
		sh.lat.Record(lat)
		if svc >= 0 {
			sh.svc.Record(svc)
		}
	}
	if lag >= 0 {
		sh.lag.Record(lag)
	}
	if ans < numAnswers {
		sh.answered++
		sh.answers[ans]++
		if r.spec.CheckAnswers {
			if kind == KindInSession && ans == AnswerOutOfSession {
				sh.wrong[0]++
			}
			if kind == KindOutOfSession && ans == AnswerConnect {
				sh.wrong[1]++
			}
		}
	}
	if errKind != "" {
		sh.errs[errKind]++
		if _, ok := sh.errSample[errKind]; !ok {
			if len(errMsg) > 200 {
				errMsg = errMsg[:200]
			}
			sh.errSample[errKind] = errMsg
		}
	}
	if done.After(sh.lastDone) {
		sh.lastDone = done
	}
	sh.mu.Unlock()
}

// errorKind names a transport error: "timeout" when no answer came in
// time, "drain_cut" when the run's end cut the wait short, "connection"
// when the connection failed (refused, reset, closed by the server),
// "other" for anything else (a malformed answer).
func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, errDrainCut):
		return "drain_cut"
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, fasthttp.ErrNoFreeConns), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return "connection"
	}
	return "other"
}

// snapshot merges the shards.
type snapshot struct {
	lat, svc, lag *Histogram
	sent          [numKinds]uint64
	answered      uint64
	answers       [numAnswers]uint64
	errs          map[string]uint64
	errSample     map[string]string
	wrong         [2]uint64
	lastDone      time.Time
}

func (r *runner) snapshot() *snapshot {
	s := &snapshot{lat: NewHistogram(), errs: map[string]uint64{}, errSample: map[string]string{}}
	if r.spec.Rate > 0 {
		s.svc, s.lag = NewHistogram(), NewHistogram()
	}
	for _, sh := range r.shards {
		sh.mu.Lock()
		s.lat.Merge(sh.lat)
		if sh.svc != nil {
			s.svc.Merge(sh.svc)
			s.lag.Merge(sh.lag)
		}
		for k := range sh.sent {
			s.sent[k] += sh.sent[k]
		}
		s.answered += sh.answered
		for a := range sh.answers {
			s.answers[a] += sh.answers[a]
		}
		for k, v := range sh.errs {
			s.errs[k] += v
			if _, ok := s.errSample[k]; !ok {
				s.errSample[k] = sh.errSample[k]
			}
		}
		s.wrong[0] += sh.wrong[0]
		s.wrong[1] += sh.wrong[1]
		if sh.lastDone.After(s.lastDone) {
			s.lastDone = sh.lastDone
		}
		sh.mu.Unlock()
	}
	return s
}

func (s *snapshot) sentTotal() uint64 {
	var n uint64
	for _, v := range s.sent {
		n += v
	}
	return n
}

func (s *snapshot) errTotal() uint64 {
	var n uint64
	for _, v := range s.errs {
		n += v
	}
	return n
}

func (r *runner) progress(done <-chan struct{}) {
	t := time.NewTicker(r.spec.ReportEvery)
	defer t.Stop()
	prev := NewHistogram()
	var prevAnswered uint64
	prevAt := r.start
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			s := r.snapshot()
			iv := s.lat.Since(prev)
			p := Progress{
				Elapsed:   now.Sub(r.start),
				Sent:      s.sentTotal(),
				Answered:  s.answered,
				Rate:      float64(s.answered-prevAnswered) / now.Sub(prevAt).Seconds(),
				P99:       iv.Percentile(99),
				TotalP99:  s.lat.Percentile(99),
				Max:       s.lat.Max(),
				Errors:    s.errTotal(),
				Fallbacks: s.answers[AnswerFallback],
				Wrong:     s.wrong[0] + s.wrong[1],
			}
			prev, prevAnswered, prevAt = s.lat, s.answered, now
			r.spec.OnProgress(p)
		}
	}
}

// result is the run's figures; interruptedAt is when ctx ended the run
// (zero when it ran its course).
func (r *runner) result(interruptedAt time.Time) *Result {
	interrupted := !interruptedAt.IsZero() && interruptedAt.Before(r.hard)
	s := r.snapshot()
	res := &Result{
		Name:        r.spec.Name,
		URL:         r.spec.URL,
		Mode:        "closed",
		Connections: r.spec.Connections,
		Duration:    r.spec.Duration.Seconds(),
		Requests:    s.sentTotal(),
		Answered:    s.answered,
		Latency:     s.lat.Summary(),
		Errors:      s.errs,
		Answers:     map[string]uint64{},
		SentByKind:  map[string]uint64{},
		Interrupted: interrupted,
		latency:     s.lat,
		indexes:     r.next.Load(),
	}
	if len(s.errSample) > 0 {
		res.ErrorSamples = s.errSample
	}
	for k, v := range s.sent {
		res.SentByKind[Kind(k).String()] = v
	}
	for a, v := range s.answers {
		res.Answers[Answer(a).String()] = v
	}
	if r.spec.CheckAnswers {
		res.Wrong = map[string]uint64{"in_session_not_connected": s.wrong[0], "out_of_session_connected": s.wrong[1]}
	}
	if r.spec.Rate > 0 {
		res.Mode = "open"
		res.Rate = r.spec.Rate
		scheduled := r.total
		if interrupted {
			// Only what was due before the interruption counts.
			scheduled = min(r.total, uint64(math.Max(0, float64(interruptedAt.Sub(r.start))/r.interval)))
		}
		res.Scheduled = scheduled
		res.indexes = min(res.indexes, r.total)
		if res.Requests < scheduled {
			res.Errors["not_sent"] = scheduled - res.Requests
			res.ErrorSamples = withSample(res.ErrorSamples, "not_sent",
				fmt.Sprintf("scheduled but not sent by --duration + --drain (%s): the system (or the load generator) fell behind", r.spec.Drain))
		}
		svc, lag := s.svc.Summary(), s.lag.Summary()
		res.ServiceTime, res.SendLag = &svc, &lag
	}
	if !s.lastDone.IsZero() {
		res.Elapsed = s.lastDone.Sub(r.start).Seconds()
		if res.Elapsed > 0 {
			res.Throughput = float64(res.Answered) / res.Elapsed
		}
	}
	return res
}

// cpuTime is the CPU (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func withSample(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}
