package archiver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/callflow/callflow/wire"
)

// numberColumns are the columns of number_status in insert order.
var numberColumns = []string{
	"sub_account_id", "msisdn", "updated_at", "event_id", "operational_status",
	"country_code", "reference_id", "update_event_type", "received_at",
}

// row is one call_events row, and the number_status rows of a
// VIRTUAL_NUMBER_UPDATE.
type row struct {
	rec  *wire.Record
	ev   *wire.Event
	seq  uint64
	data []byte

	// What the record says beyond the event's fields: see masking.
	maskingSession, virtualNumber, connectedTo string
	numbers                                    []numberStatus
	updateKind                                 string // SNAPSHOT or UPDATES
}

// newRow turns a stream message into a row. The error, when not nil, means
// the message is not a record this archiver can store: it is set aside.
func newRow(data []byte, seq uint64) (row, error) {
	rec, err := wire.ParseRecordShared(data) // the message is ours and never modified
	if err != nil {
		return row{}, err
	}
	ev, err := wire.ParseEventShared(rec.Event) // rec.Event is part of the message, ours and never modified
	if err != nil {
		return row{}, fmt.Errorf("record %s: event: %w", rec.ID, err)
	}
	r := row{rec: rec, ev: ev, seq: seq, data: data}
	r.masking()
	return r, nil
}

// masking fills the number-masking columns. For a CALL_ACTION: the masking
// session and the number dialled come from the decision; connected_to is
// the destination of the answer's makeCall. A record written before the
// decision carried the session (a replay of an old stream) gets it from
// the answer's clientActionId, which named the session then too, and the
// number from the event's destination. For an audit record: its session
// and number. For a number update: its numbers.
func (r *row) masking() {
	p := r.ev.Payload
	switch r.ev.EventType {
	case wire.EventCallAction:
		var actionID string
		if d := r.rec.Decision; d != nil {
			r.maskingSession, r.virtualNumber = d.MaskingSessionID, d.VirtualNumber
			actionID, r.connectedTo = makeCallDestination(d.Callflow)
			if r.maskingSession == "" && d.Outcome == wire.OutcomeConnect && r.connectedTo != "" {
				r.maskingSession = wire.ClassifyClientAction(actionID, true).MaskingSessionID
			}
		}
		if r.virtualNumber == "" {
			r.virtualNumber, _ = wire.NormalizeNumber(p.Destination)
		}
	case wire.EventSessionAudit:
		r.maskingSession = p.SessionID
		var a struct {
			Payload struct {
				VirtualNumber string `json:"virtualNumber"`
			} `json:"payload"`
		}
		if json.Unmarshal(r.rec.Event, &a) == nil {
			r.virtualNumber = a.Payload.VirtualNumber
		}
	case wire.EventVirtualNumberUpdate:
		r.numbers, r.updateKind = numberStatuses(r.rec.Event, r.ev)
	}
}

// makeCallDestination returns a callflow's clientActionId and the
// destination of its first makeCall ("" when it has none), as +digits when
// it is a number. Callflows without a makeCall (most out-of-session and
// fallback answers) are not decoded at all.
func makeCallDestination(callflow []byte) (actionID, destination string) {
	if !bytes.Contains(callflow, []byte(wire.ActionMakeCall)) {
		return "", ""
	}
	// The callflows callflow answers pass wire's strict reader, which
	// costs a tenth of encoding/json (a third of the archiver's parsing
	// of realistic records went to encoding/json here).
	if resp, err := wire.ParseResponse(callflow); err == nil {
		for _, a := range resp.Callflow {
			if a.Action == wire.ActionMakeCall && a.Params != nil && a.Params.Destination != "" {
				return resp.ClientActionID, normalized(a.Params.Destination)
			}
		}
		return resp.ClientActionID, ""
	}
	// Decoded loosely: a callflow in a record was accepted by the ingestor
	// (strict JSON, no key twice); only these fields matter here.
	var cf struct {
		ClientActionID string `json:"clientActionId"`
		Callflow       []struct {
			Action string `json:"action"`
			Params struct {
				Destination string `json:"destination"`
			} `json:"params"`
		} `json:"callflow"`
	}
	if json.Unmarshal(callflow, &cf) != nil {
		return "", ""
	}
	for _, a := range cf.Callflow {
		if a.Action == wire.ActionMakeCall && a.Params.Destination != "" {
			return cf.ClientActionID, normalized(a.Params.Destination)
		}
	}
	return cf.ClientActionID, ""
}

// normalized is s as +digits when it is a number, else s unchanged.
func normalized(s string) string {
	if n, err := wire.NormalizeNumber(s); err == nil {
		return n
	}
	return s
}

// numberStatus is one number_status row.
type numberStatus struct {
	msisdn, status, country, reference string
	updatedAt                          time.Time
}

// numberStatuses reads the numbers of a VIRTUAL_NUMBER_UPDATE and its
// updateEventType. 8x8 adds fields and the ingestor checks none of these,
// so the reading is lenient: a number without a msisdn is skipped, other
// fields of the wrong type read as empty, and a body whose virtualNumbers
// is not a list of objects gives no numbers (the record is still archived
// in call_events).
func numberStatuses(body []byte, ev *wire.Event) ([]numberStatus, string) {
	var vnu struct {
		Payload struct {
			UpdateEventType json.RawMessage              `json:"updateEventType"`
			VirtualNumbers  []map[string]json.RawMessage `json:"virtualNumbers"`
		} `json:"payload"`
	}
	if json.Unmarshal(body, &vnu) != nil {
		return nil, ""
	}
	out := make([]numberStatus, 0, len(vnu.Payload.VirtualNumbers))
	for _, n := range vnu.Payload.VirtualNumbers {
		msisdn := jsonString(n["msisdn"])
		if msisdn == "" {
			continue
		}
		updated := jsonTime(n["updatedTimestamp"])
		if updated.IsZero() {
			updated = ev.Time()
		}
		out = append(out, numberStatus{
			msisdn:    normalized(msisdn),
			status:    jsonString(n["operationalStatus"]),
			country:   jsonString(n["countryCode"]),
			reference: jsonString(n["referenceId"]),
			updatedAt: updated,
		})
	}
	return out, jsonString(vnu.Payload.UpdateEventType)
}

// jsonString is a JSON string's value, a number's text, or "".
func jsonString(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(v, &n) == nil {
		return n.String()
	}
	return ""
}

// jsonTime reads a timestamp given as RFC 3339 text or as epoch
// milliseconds (8x8 documents the field only as "Timestamp"); anything else
// is the zero time.
func jsonTime(v json.RawMessage) time.Time {
	s := jsonString(v)
	if t := parseTime(s); !t.IsZero() {
		return t
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms > 0 {
		return time.UnixMilli(ms).UTC()
	}
	return time.Time{}
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
	if s == "" {
		return time.Time{} // without the error time.Parse would allocate
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// numberValues returns the values of number i's number_status row, in
// numberColumns order.
func (r *row) numberValues(i int) []any {
	n := r.numbers[i]
	return []any{
		r.ev.Payload.SubAccountID, n.msisdn, dateTime(n.updatedAt), r.rec.ID, n.status,
		n.country, n.reference, r.updateKind, dateTime(r.rec.ReceivedAt),
	}
}

func insertEvents(database string) string {
	names := make([]string, len(eventColumns))
	for i, c := range eventColumns {
		names[i] = c.name()
	}
	return "INSERT INTO " + database + ".call_events (" + strings.Join(names, ", ") + ")"
}

func insertNumbers(database string) string {
	return "INSERT INTO " + database + ".number_status (" + strings.Join(numberColumns, ", ") + ")"
}

func insertRejected(database string) string {
	return "INSERT INTO " + database + ".rejected_records (rejected_at, stream_sequence, subject, record_id, reason, data)"
}
