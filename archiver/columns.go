package archiver

import (
	"slices"
	"sync"
	"time"
	"unsafe"

	chcolumn "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/callflow/callflow/wire"
)

// eventColumns are the columns of call_events in insert order, each with
// how a row fills it: the one place that maps a record to the table.
// Inserts append them a column at a time (a typed slice per column), the
// way the fastest clickhouse-go insert does (TestInsertBaseline). Measured
// against row-wise Append, this saved no client CPU that the benchmark
// could tell from its noise: most of an insert's client CPU is the growth
// of clickhouse-go's own column buffers, which both ways pay.
var eventColumns = []eventColumn{
	col("event_id", func(r *row) string { return r.rec.ID }),
	col("event_type", func(r *row) string { return r.ev.EventType }),
	col("namespace", func(r *row) string { return r.ev.Namespace }),
	col("call_id", func(r *row) string { return r.ev.Payload.CallID }),
	col("session_id", func(r *row) string { return r.ev.Payload.SessionID }),
	col("sub_account_id", func(r *row) string { return r.ev.Payload.SubAccountID }),
	col("call_status", func(r *row) string { return r.ev.Payload.CallStatus }),
	col("call_direction", func(r *row) string { return r.ev.Payload.CallDirection }),
	col("call_type", func(r *row) string { return r.ev.Payload.CallType }),
	col("source", func(r *row) string { return r.ev.Payload.Source }),
	col("destination", func(r *row) string { return r.ev.Payload.Destination }),
	col("source_country_code", func(r *row) string { return r.ev.Payload.SourceCountryCode }),
	col("destination_country_code", func(r *row) string { return r.ev.Payload.DestinationCountryCode }),
	col("destination_ref_id", func(r *row) string { return r.ev.Payload.DestinationRefID }),
	col("call_duration", func(r *row) uint32 { return uint32(r.ev.Payload.CallDuration) }),
	col("sip_code", func(r *row) uint16 { return uint16(r.ev.Payload.SipCode) }),
	col("client_action_id", func(r *row) string { return r.ev.Payload.ClientActionID }),
	col("session_status", func(r *row) string { return r.ev.Payload.SessionStatus }),
	col("start_time", func(r *row) time.Time { return dateTime(parseTime(r.ev.Payload.StartTime)) }),
	col("end_time", func(r *row) time.Time { return dateTime(parseTime(r.ev.Payload.EndTime)) }),
	col("last_action", func(r *row) string { return r.ev.Payload.LastAction }),
	col("call_count", func(r *row) uint32 { return uint32(r.ev.Payload.CallCount) }),
	col("error_code", func(r *row) string { return string(r.errorDetails().ErrorCode) }),
	col("error_message", func(r *row) string { return r.errorDetails().ErrorMsg }),
	col("event_time", func(r *row) time.Time { return dateTime(r.ev.Time()) }),
	col("received_at", func(r *row) time.Time { return dateTime(r.rec.ReceivedAt) }),
	col("instance", func(r *row) string { return r.rec.Instance }),
	col("decision_source", func(r *row) string { return r.decision().Source }),
	col("decision_outcome", func(r *row) string { return r.decision().Outcome }),
	col("fallback_reason", func(r *row) string { return r.decision().FallbackReason }),
	col("decision_latency_us", func(r *row) uint32 { return uint32(min(max(r.decision().LatencyMicros, 0), 1<<32-1)) }),
	col("callflow", func(r *row) string { return unsafeString(r.decision().Callflow) }),
	col("raw", func(r *row) string { return unsafeString(r.rec.Event) }),
	col("record_version", func(r *row) uint8 { return uint8(r.rec.Version) }),
	col("stream_sequence", func(r *row) uint64 { return r.seq }),
	col("masking_session_id", func(r *row) string { return r.maskingSession }),
	col("virtual_number", func(r *row) string { return r.virtualNumber }),
	col("out_of_session_policy", func(r *row) string { return r.decision().Policy }),
	col("connected_to", func(r *row) string { return r.connectedTo }),
	col("event_dtmf", func(r *row) string { return r.ev.Payload.DTMF }),
	col("event_asr", func(r *row) string { return r.ev.Payload.ASR }),
	col("flow_id", func(r *row) string { return r.decision().Flow }),
	col("flow_version", func(r *row) uint64 { return r.decision().FlowVersion }),
	col("flow_step", func(r *row) string { return r.decision().FlowStep }),
	col("digits", func(r *row) string { return r.decision().Digits }),
}

// unsafeString is b as a string without a copy, for the two long columns
// (raw and callflow): b is a part of a record's message, never changed, and
// the string lives only until the insert of its batch is done. A []byte
// column would cost a copy per row twice (clickhouse-go converts each to a
// string before copying it into its block).
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// noDecision and noErrorDetails stand for what a record lacks: their
// fields are the columns' empty values.
var (
	noDecision     wire.Decision
	noErrorDetails wire.ErrorDetails
)

func (r *row) decision() *wire.Decision {
	if r.rec.Decision != nil {
		return r.rec.Decision
	}
	return &noDecision
}

func (r *row) errorDetails() *wire.ErrorDetails {
	if e := r.ev.Payload.ErrorDetails; e != nil {
		return e
	}
	return &noErrorDetails
}

// values returns the row's call_events values in eventColumns order, for
// a row-wise Append.
func (r *row) values() []any {
	v := make([]any, len(eventColumns))
	for i, c := range eventColumns {
		v[i] = c.value(r)
	}
	return v
}

// eventColumn is one column of call_events.
type eventColumn interface {
	name() string
	value(r *row) any
	values() columnValues
}

// columnValues gathers one column's values for a columnar append.
type columnValues interface {
	add(r *row)
	grow(n int)
	reserve(c chcolumn.Interface)
	appendTo(c driver.BatchColumn) error
	reset()
}

type column[T any] struct {
	n   string
	get func(*row) T
}

func col[T any](name string, get func(*row) T) eventColumn { return column[T]{n: name, get: get} }

func (c column[T]) name() string         { return c.n }
func (c column[T]) value(r *row) any     { return c.get(r) }
func (c column[T]) values() columnValues { return &typedValues[T]{get: c.get} }

type typedValues[T any] struct {
	get func(*row) T
	v   []T
}

func (t *typedValues[T]) add(r *row)                          { t.v = append(t.v, t.get(r)) }
func (t *typedValues[T]) grow(n int)                          { t.v = slices.Grow(t.v, n) }
func (t *typedValues[T]) appendTo(c driver.BatchColumn) error { return c.Append(t.v) }

// reserve gives a String column the room for all of t's bytes at once.
// clickhouse-go's String column starts every batch empty and grows its
// buffer a string at a time, by a quarter each time once it is large: the
// raw column of 20,000 realistic rows (14 MB) was copied about five times
// over as it grew, the largest part of an insert's client CPU
// (TestArchiveThroughput's profiles). Appending one placeholder string of
// the whole length and resetting the column (which keeps its buffer's
// capacity) costs one copy instead. Nothing of the placeholder is sent.
func (t *typedValues[T]) reserve(c chcolumn.Interface) {
	v, ok := any(t.v).([]string)
	if !ok || c.Type() != "String" || c.Rows() != 0 {
		return // only a plain String column keeps nothing of what Reset drops
	}
	n := 0
	for _, s := range v {
		n += len(s)
	}
	if n < reserveMin {
		return
	}
	if _, err := c.Append([]string{placeholder(n)}); err == nil {
		c.Reset()
	}
}

// reserveMin is the column size below which growing as it goes costs
// less than a placeholder's copy.
const reserveMin = 64 << 10

// room is the memory placeholders are made of: zeros, never written once
// made, grown to the largest column reserved.
var room struct {
	sync.Mutex
	b []byte
}

// placeholder returns a string of n zero bytes without allocating it each
// time.
func placeholder(n int) string {
	room.Lock()
	defer room.Unlock()
	if len(room.b) < n {
		room.b = make([]byte, n)
	}
	return unsafeString(room.b[:n])
}

// reset empties the values, dropping what they refer to (the messages of
// the batch) but keeping the room for the next batch.
func (t *typedValues[T]) reset() { clear(t.v); t.v = t.v[:0] }

// eventBlock is rows of call_events as columns, in eventColumns order.
type eventBlock []columnValues

// blocks keeps the column slices of finished inserts for the next ones:
// a batch of 20,000 rows is about 12 MB of slices.
var blocks = sync.Pool{New: func() any {
	b := make(eventBlock, len(eventColumns))
	for i, c := range eventColumns {
		b[i] = c.values()
	}
	return b
}}

// newEventBlock returns rows as columns; release it after the insert.
func newEventBlock(rows []row) eventBlock {
	b := blocks.Get().(eventBlock)
	for _, c := range b {
		c.grow(len(rows))
		for i := range rows {
			c.add(&rows[i])
		}
	}
	return b
}

// appendTo appends every column to batch.
func (b eventBlock) appendTo(batch driver.Batch) error {
	cols := batch.Columns()
	for i, c := range b {
		if i < len(cols) {
			c.reserve(cols[i])
		}
		if err := c.appendTo(batch.Column(i)); err != nil {
			return err
		}
	}
	return nil
}

func (b eventBlock) release() {
	for _, c := range b {
		c.reset()
	}
	blocks.Put(b)
}
