package archiver

import (
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// batch is the messages of one insert: those that are records (parsed) and
// those that are not (rejects), all acknowledged together.
type batch struct {
	msgs     []jetstream.Msg
	parsed   []row
	rejects  []rejected
	rows     int
	bytes    int
	progress time.Time
}

func (b *batch) len() int { return len(b.msgs) }

// newBatch returns a batch with room for n messages: a replay's batches
// are full, and growing 20,000 rows as they come copied them about five
// times over.
func newBatch(n int) *batch {
	return &batch{msgs: make([]jetstream.Msg, 0, n), parsed: make([]row, 0, n)}
}

// add takes m into the batch and returns its stream sequence (0 when its
// metadata cannot be read) and how many times JetStream has delivered it.
func (b *batch) add(m jetstream.Msg) (seq, delivered uint64) {
	if md, err := m.Metadata(); err == nil {
		seq, delivered = md.Sequence.Stream, md.NumDelivered
	}
	if len(b.msgs) == 0 {
		b.progress = time.Now() // JetStream's AckWait runs from the delivery
	}
	b.msgs = append(b.msgs, m)
	b.rows++
	b.bytes += len(m.Data())
	r, err := newRow(m.Data(), seq)
	if err != nil {
		b.rejects = append(b.rejects, rejected{seq: seq, subject: m.Subject(), id: m.Headers().Get("Nats-Msg-Id"), reason: err.Error(), data: m.Data()})
		return seq, delivered
	}
	b.parsed = append(b.parsed, r)
	return seq, delivered
}

// keepAlive tells JetStream the batch is still being worked on, so that a
// long outage does not get its messages redelivered to another archiver.
func (b *batch) keepAlive(ackWait time.Duration) {
	if time.Since(b.progress) < ackWait/3 {
		return
	}
	for _, m := range b.msgs {
		_ = m.InProgress()
	}
	b.progress = time.Now()
}

// Stats counts what an archiver did since it started.
type Stats struct {
	// Rows is rows inserted into call_events.
	Rows uint64
	// Batches is inserts sent.
	Batches uint64
	// Rejected is records set aside in rejected_records.
	Rejected uint64
	// Retries is failed attempts retried (an outage).
	Retries uint64
	// LastInsert is how long the last batch took to store.
	LastInsert time.Duration
}

type stats struct {
	rows, batches, rejected, retries, redelivered atomic.Uint64
	lastInsert                                    atomic.Int64
}

func (s *stats) snapshot() Stats {
	return Stats{Rows: s.rows.Load(), Batches: s.batches.Load(), Rejected: s.rejected.Load(),
		Retries: s.retries.Load(), LastInsert: time.Duration(s.lastInsert.Load())}
}
