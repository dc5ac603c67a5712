package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// AuditResult says whether every event answered 200 was stored exactly
// once.
type AuditResult struct {
	// Expected is the number of events answered 200.
	Expected   uint64      `json:"expected"`
	Stream     *StoreAudit `json:"stream"`
	ClickHouse *StoreAudit `json:"clickhouse,omitempty"`
}

// StoreAudit is the audit of one store.
type StoreAudit struct {
	// Where names what was read.
	Where string `json:"where"`
	// Records of this run read (all copies).
	Records uint64 `json:"records"`
	// Found: answered events present; Missing: answered events absent.
	Found   uint64 `json:"found"`
	Missing uint64 `json:"missing"`
	// Duplicates: events of the run present more than once.
	Duplicates uint64 `json:"duplicates"`
	// Extra: events of the run present that got no 200 (a timeout on our
	// side after the system recorded it): not an error.
	Extra uint64 `json:"extra"`
	// Waited is how long the audit waited for the store to catch up.
	Waited          float64  `json:"waited_s"`
	MissingSample   []string `json:"missing_sample,omitempty"`
	DuplicateSample []string `json:"duplicate_sample,omitempty"`
	Error           string   `json:"error,omitempty"`
}

// OK reports a store holding every answered event exactly once.
func (s *StoreAudit) OK() bool {
	return s != nil && s.Error == "" && s.Missing == 0 && s.Duplicates == 0
}

// auditSet maps the record ids of a run to request indexes and counts
// what a store holds.
type auditSet struct {
	traffic  *Traffic
	prefix   string
	indexes  uint64
	answered *answeredSet
	expected uint64
	// summaries maps the record ids of summaries (a hash of the body,
	// computed by the ingestor) to their request index.
	summaries map[string]uint64
	seen      []uint8
}

func newAuditSet(t *Traffic, indexes uint64, answered *answeredSet) (*auditSet, error) {
	a := &auditSet{traffic: t, prefix: t.IDPrefix(), indexes: indexes, answered: answered,
		summaries: map[string]uint64{}, seen: make([]uint8, indexes)}
	var buf []byte
	for n := range indexes {
		if answered.has(n) {
			a.expected++
		}
		if t.Kind(n) != KindSummary {
			continue
		}
		var kind Kind
		buf, kind = t.Append(buf[:0], n)
		_ = kind
		ev, err := wire.ParseEvent(buf)
		if err != nil {
			return nil, fmt.Errorf("bench: summary %d does not parse: %v", n, err)
		}
		a.summaries[ev.RecordID(buf)] = n
	}
	return a, nil
}

// index returns the request index of a record id of this run.
func (a *auditSet) index(id string) (uint64, bool) {
	if rest, ok := strings.CutPrefix(id, a.prefix); ok {
		n, err := strconv.ParseUint(rest, 10, 64)
		if err != nil || n >= a.indexes {
			return 0, false // probes and foreign ids
		}
		return n, true
	}
	n, ok := a.summaries[id]
	return n, ok
}

func (a *auditSet) reset() { clear(a.seen) }

// add counts copies of a record id; it reports whether the id is the
// run's.
func (a *auditSet) add(id string, copies uint64) bool {
	n, ok := a.index(id)
	if !ok {
		return false
	}
	v := uint64(a.seen[n]) + copies
	a.seen[n] = uint8(min(v, 255))
	return true
}

func (a *auditSet) tally(where string, waited time.Duration) *StoreAudit {
	s := &StoreAudit{Where: where, Waited: waited.Round(time.Millisecond).Seconds()}
	for n := range a.indexes {
		c := a.seen[n]
		s.Records += uint64(c)
		ans := a.answered.has(n)
		switch {
		case ans && c > 0:
			s.Found++
		case ans:
			s.Missing++
			if len(s.MissingSample) < 5 {
				s.MissingSample = append(s.MissingSample, a.describe(n))
			}
		case c > 0:
			s.Extra++
		}
		if c > 1 {
			s.Duplicates++
			if len(s.DuplicateSample) < 5 {
				s.DuplicateSample = append(s.DuplicateSample, a.describe(n))
			}
		}
	}
	return s
}

func (a *auditSet) missing() uint64 {
	var m uint64
	for n := range a.indexes {
		if a.seen[n] == 0 && a.answered.has(n) {
			m++
		}
	}
	return m
}

func (a *auditSet) describe(n uint64) string {
	id := string(a.traffic.AppendID(nil, n))
	if a.traffic.Kind(n) == KindSummary {
		return id + " (a session summary: sessionId)"
	}
	return id
}

// auditSpec is what the audit reads.
type auditSpec struct {
	natsURL, stream    string
	chAddr, chDB       string
	chUser, chPassword string
	wait               time.Duration
	since              time.Time
	log                io.Writer
}

// Audit checks that every request answered 200 is in the stream, and in
// ClickHouse when an address is given, exactly once, waiting up to
// spec.wait for each to catch up.
func runAudit(ctx context.Context, spec auditSpec, t *Traffic, indexes uint64, answered *answeredSet) (*AuditResult, error) {
	set, err := newAuditSet(t, indexes, answered)
	if err != nil {
		return nil, err
	}
	res := &AuditResult{Expected: set.expected}
	res.Stream = auditStream(ctx, spec, set)
	if spec.chAddr != "" {
		set.reset()
		res.ClickHouse = auditClickHouse(ctx, spec, set)
	}
	return res, nil
}

// auditStream reads the stream from the run's start with an ordered
// consumer (headers only) and counts the Nats-Msg-Id of each message.
func auditStream(ctx context.Context, spec auditSpec, set *auditSet) *StoreAudit {
	where := "stream " + spec.stream
	start := time.Now()
	fail := func(err error) *StoreAudit {
		s := set.tally(where, time.Since(start))
		s.Error = err.Error()
		return s
	}
	nc, err := nats.Connect(spec.natsURL, nats.Name("callflow-bench-audit"), nats.Timeout(5*time.Second))
	if err != nil {
		return fail(fmt.Errorf("connect to %s: %w", spec.natsURL, err))
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, spec.wait+30*time.Second)
	defer cancel()
	deadline := start.Add(spec.wait)
	// A node restarted a moment ago, or a leaf node reconnecting, may not
	// answer JetStream requests for a moment (no responders, or none in
	// time): that is waited out, within the audit's wait, at every request.
	transient := func(err error) bool {
		return (errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout)) && time.Now().Before(deadline)
	}
	var stream jetstream.Stream
	for {
		stream, err = js.Stream(ctx, spec.stream)
		if err == nil {
			break
		}
		if !transient(err) {
			return fail(fmt.Errorf("stream %s: %w", spec.stream, err))
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return fail(fmt.Errorf("stream %s: %w", spec.stream, err))
		}
	}
	since := spec.since
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &since,
		HeadersOnly:   true,
	})
	if err != nil {
		return fail(fmt.Errorf("ordered consumer on %s: %w", spec.stream, err))
	}
	// remaining is how many messages are known to be there to read: the
	// consumer's pending count at first, then what the stream gained.
	// Fetching exactly that many means no fetch waits for messages that
	// do not exist.
	remaining := cons.CachedInfo().NumPending
	var lastSeq uint64
	for {
		for remaining > 0 {
			batch, err := cons.Fetch(int(min(remaining, 10000)), jetstream.FetchMaxWait(2*time.Second))
			if transient(err) {
				time.Sleep(250 * time.Millisecond) // the ordered consumer resumes after the last message read
				continue
			}
			if err != nil {
				return fail(err)
			}
			got := uint64(0)
			for msg := range batch.Messages() {
				got++
				if md, err := msg.Metadata(); err == nil {
					lastSeq = md.Sequence.Stream
				}
				set.add(msg.Headers().Get(nats.MsgIdHdr), 1)
			}
			if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !transient(err) {
				return fail(err)
			}
			if got == 0 {
				break // fewer than announced (messages removed meanwhile)
			}
			remaining -= min(got, remaining)
			if ctx.Err() != nil {
				return fail(ctx.Err())
			}
		}
		if set.missing() == 0 || time.Now().After(deadline) {
			break
		}
		// Records spooled by the ingestor reach the stream later.
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return fail(ctx.Err())
		}
		info, err := stream.Info(ctx)
		if transient(err) {
			continue
		}
		if err != nil {
			return fail(err)
		}
		if info.State.LastSeq > lastSeq {
			remaining = info.State.LastSeq - lastSeq
		}
	}
	return set.tally(where, time.Since(start))
}

// auditClickHouse counts each event id of the run in call_events through
// FINAL, waiting for the archive to catch up.
func auditClickHouse(ctx context.Context, spec auditSpec, set *auditSet) *StoreAudit {
	table := spec.chDB + ".call_events"
	where := "clickhouse " + table + " FINAL"
	start := time.Now()
	fail := func(err error) *StoreAudit {
		s := set.tally(where, time.Since(start))
		s.Error = err.Error()
		return s
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        strings.Split(spec.chAddr, ","),
		Auth:        clickhouse.Auth{Username: spec.chUser, Password: spec.chPassword},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	// Summaries have no eventId: their record id is a hash, found by
	// their sessionId, which carries the run's prefix.
	cond := fmt.Sprintf("event_id LIKE '%[1]s%%' OR session_id LIKE '%[1]s%%'", set.prefix)
	countQ := "SELECT count() FROM " + table + " FINAL WHERE " + cond
	idsQ := "SELECT event_id, count() FROM " + table + " FINAL WHERE " + cond + " GROUP BY event_id"
	deadline := start.Add(spec.wait)
	for {
		qctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		var rows uint64
		err := conn.QueryRow(qctx, countQ).Scan(&rows)
		cancel()
		if err != nil && time.Now().After(deadline) {
			return fail(fmt.Errorf("%s: %w", countQ, err))
		}
		if err == nil && (rows >= set.expected || time.Now().After(deadline)) {
			set.reset()
			if err := chCount(ctx, conn, idsQ, set); err != nil {
				return fail(err)
			}
			if set.missing() == 0 || time.Now().After(deadline) {
				break
			}
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	return set.tally(where, time.Since(start))
}

func chCount(ctx context.Context, conn clickhouse.Conn, q string, set *auditSet) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var c uint64
		if err := rows.Scan(&id, &c); err != nil {
			return err
		}
		set.add(id, c)
	}
	return rows.Err()
}

func (a *AuditResult) writeText(w io.Writer) {
	fmt.Fprintf(w, "\naudit (%d events answered 200)\n", a.Expected)
	for _, s := range []*StoreAudit{a.Stream, a.ClickHouse} {
		if s == nil {
			continue
		}
		verdict := "OK"
		if !s.OK() {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "  %-40s %s: %d found, %d missing, %d duplicates, %d extra (unanswered but stored), %d records read, waited %.1fs\n",
			s.Where, verdict, s.Found, s.Missing, s.Duplicates, s.Extra, s.Records, s.Waited)
		if s.Error != "" {
			fmt.Fprintf(w, "      error: %s\n", s.Error)
		}
		if len(s.MissingSample) > 0 {
			fmt.Fprintf(w, "      missing e.g. %s\n", strings.Join(s.MissingSample, ", "))
		}
		if len(s.DuplicateSample) > 0 {
			fmt.Fprintf(w, "      duplicated e.g. %s\n", strings.Join(s.DuplicateSample, ", "))
		}
	}
}
