package archiver

import (
	"fmt"
	"strings"
	"time"

	"github.com/callflow/callflow/wire"
)

// eventColumns are the columns of call_events in insert order; row.values
// returns the values in the same order.
var eventColumns = []string{
	"event_id", "event_type", "namespace", "call_id", "session_id", "sub_account_id",
	"call_status", "call_direction", "call_type", "source", "destination",
	"source_country_code", "destination_country_code", "destination_ref_id",
	"call_duration", "sip_code", "client_action_id",
	"session_status", "start_time", "end_time", "last_action", "call_count", "error_code", "error_message",
	"event_time", "received_at", "instance",
	"decision_source", "decision_outcome", "fallback_reason", "decision_latency_us",
	"callflow", "raw", "record_version", "stream_sequence",
}

// row is one call_events row.
type row struct {
	rec  *wire.Record
	ev   *wire.Event
	seq  uint64
	data []byte
}

// newRow turns a stream message into a row. The error, when not nil, means
// the message is not a record this archiver can store: it is set aside.
func newRow(data []byte, seq uint64) (row, error) {
	rec, err := wire.ParseRecord(data)
	if err != nil {
		return row{}, err
	}
	ev, err := wire.ParseEvent(rec.Event)
	if err != nil {
		return row{}, fmt.Errorf("record %s: event: %w", rec.ID, err)
	}
	return row{rec: rec, ev: ev, seq: seq, data: data}, nil
}

// The range DateTime can hold; times outside it are clamped.
var (
	minDateTime = time.Unix(0, 0).UTC()
	maxDateTime = time.Date(2105, 12, 31, 23, 59, 59, 0, time.UTC)
)

func dateTime(t time.Time) time.Time {
	switch {
	case t.IsZero() || t.Before(minDateTime):
		return minDateTime
	case t.After(maxDateTime):
		return maxDateTime
	}
	return t.UTC()
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func (r *row) values() []any {
	p := r.ev.Payload
	var src, outcome, reason, callflow string
	var latency uint32
	if d := r.rec.Decision; d != nil {
		src, outcome, reason, callflow = d.Source, d.Outcome, d.FallbackReason, string(d.Callflow)
		latency = uint32(min(max(d.LatencyMicros, 0), 1<<32-1))
	}
	var errCode, errMsg string
	if e := p.ErrorDetails; e != nil {
		errCode, errMsg = string(e.ErrorCode), e.ErrorMsg
	}
	return []any{
		r.rec.ID, r.ev.EventType, r.ev.Namespace, p.CallID, p.SessionID, p.SubAccountID,
		p.CallStatus, p.CallDirection, p.CallType, p.Source, p.Destination,
		p.SourceCountryCode, p.DestinationCountryCode, p.DestinationRefID,
		uint32(p.CallDuration), uint16(p.SipCode), p.ClientActionID,
		p.SessionStatus, dateTime(parseTime(p.StartTime)), dateTime(parseTime(p.EndTime)), p.LastAction,
		uint32(p.CallCount), errCode, errMsg,
		dateTime(r.ev.Time()), dateTime(r.rec.ReceivedAt), r.rec.Instance,
		src, outcome, reason, latency,
		callflow, string(r.rec.Event), uint8(r.rec.Version), r.seq,
	}
}

func insertEvents(database string) string {
	return "INSERT INTO " + database + ".call_events (" + strings.Join(eventColumns, ", ") + ")"
}

func insertRejected(database string) string {
	return "INSERT INTO " + database + ".rejected_records (rejected_at, stream_sequence, subject, record_id, reason, data)"
}
