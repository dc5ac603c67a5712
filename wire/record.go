package wire

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// RecordVersion is the version of the record format written by this build.
// Readers accept every version up to their own and refuse newer ones.
const RecordVersion = 1

// SubjectPrefix is the first token of every record subject; the stream
// captures SubjectPrefix + ".>".
const SubjectPrefix = "calls"

// Record is the message written to JetStream for every accepted webhook:
// the original body, the decision taken for it, and ingest metadata. It is
// written by the ingestor and read by the archiver.
type Record struct {
	// Version is the record format version (RecordVersion when written).
	Version int `json:"v"`
	// ID is the event's record id (see Event.RecordID), also its Nats-Msg-Id.
	ID string `json:"id"`
	// EventType is the event's eventType, as sent.
	EventType string `json:"eventType"`
	// ReceivedAt is when the ingestor received the webhook.
	ReceivedAt time.Time `json:"receivedAt"`
	// Instance names the ingestor that received it.
	Instance string `json:"instance"`
	// Decision is set for events that needed one (CALL_ACTION).
	Decision *Decision `json:"decision,omitempty"`
	// Event is the webhook body exactly as received.
	Event json.RawMessage `json:"event"`
}

// Decision is how a CALL_ACTION was answered.
type Decision struct {
	// Source is "decider" or "fallback".
	Source string `json:"source"`
	// Outcome is one of the Outcome constants.
	Outcome string `json:"outcome"`
	// FallbackReason says why the fallback was played: breaker_open,
	// timeout, no_responders, bad_reply, decider_error or unavailable.
	FallbackReason string `json:"fallbackReason,omitempty"`
	// LatencyMicros is how long getting the decision took.
	LatencyMicros int64 `json:"latencyUs"`
	// MaskingSessionID is the session a connected call was routed to
	// (callflow's session id, not 8x8's sessionId).
	MaskingSessionID string `json:"maskingSessionId,omitempty"`
	// VirtualNumber is the number dialled, as +digits, when usable.
	VirtualNumber string `json:"virtualNumber,omitempty"`
	// Policy says whose out-of-session policy answered (PolicyNumber,
	// PolicySubAccount or PolicyDefault), for out_of_session and forward.
	Policy string `json:"policy,omitempty"`
	// Flow, FlowVersion and FlowStep say where in a flow the caller is
	// after this answer (the Verdict's FlowID, FlowVersion and FlowStep):
	// set when a flow answered.
	Flow        string `json:"flow,omitempty"`
	FlowVersion uint64 `json:"flowVersion,omitempty"`
	FlowStep    string `json:"flowStep,omitempty"`
	// Digits is what the caller pressed in answer to the previous step
	// (the event's eventData.dtmf), when 8x8 sent any.
	Digits string `json:"digits,omitempty"`
	// Callflow is the JSON answered to 8x8.
	Callflow json.RawMessage `json:"callflow"`
}

// Decision sources.
const (
	SourceDecider  = "decider"
	SourceFallback = "fallback"
)

// AppendJSON appends the record as JSON. Event and Decision.Callflow must
// already be valid JSON; they are copied verbatim.
func (r *Record) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(r.Version), 10)
	dst = appendField(dst, false, "id", r.ID)
	dst = appendField(dst, false, "eventType", r.EventType)
	dst = append(dst, `,"receivedAt":"`...)
	dst = r.ReceivedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	dst = appendField(dst, false, "instance", r.Instance)
	if d := r.Decision; d != nil {
		dst = append(dst, `,"decision":{`...)
		dst = appendField(dst, true, "source", d.Source)
		dst = appendField(dst, false, "outcome", d.Outcome)
		if d.FallbackReason != "" {
			dst = appendField(dst, false, "fallbackReason", d.FallbackReason)
		}
		dst = appendIntField(dst, "latencyUs", d.LatencyMicros)
		if d.MaskingSessionID != "" {
			dst = appendField(dst, false, "maskingSessionId", d.MaskingSessionID)
		}
		if d.VirtualNumber != "" {
			dst = appendField(dst, false, "virtualNumber", d.VirtualNumber)
		}
		if d.Policy != "" {
			dst = appendField(dst, false, "policy", d.Policy)
		}
		if d.Flow != "" {
			dst = appendField(dst, false, "flow", d.Flow)
		}
		if d.FlowVersion != 0 {
			dst = append(dst, `,"flowVersion":`...)
			dst = strconv.AppendUint(dst, d.FlowVersion, 10)
		}
		if d.FlowStep != "" {
			dst = appendField(dst, false, "flowStep", d.FlowStep)
		}
		if d.Digits != "" {
			dst = appendField(dst, false, "digits", d.Digits)
		}
		dst = append(dst, `,"callflow":`...)
		dst = append(dst, d.Callflow...)
		dst = append(dst, '}')
	}
	dst = append(dst, `,"event":`...)
	dst = append(dst, r.Event...)
	return append(dst, '}')
}

// ParseRecord decodes a record written by any version up to RecordVersion.
// Unknown keys are skipped, so that a record from a newer minor change is
// still read. Event and Decision.Callflow share data's memory; the
// strings are copied.
func ParseRecord(data []byte) (*Record, error) {
	return parseRecord(data, string(data))
}

// ParseRecordShared is ParseRecord without the copy: the record's strings
// share data's memory too, so data must never be modified while the
// record is in use. For a reader that owns data, as the archiver owns a
// message it has received, it saves a copy of every record.
func ParseRecordShared(data []byte) (*Record, error) {
	return parseRecord(data, sharedString(data))
}

func parseRecord(data []byte, s string) (*Record, error) {
	var r Record
	// The record's own object does not count toward the nesting limit, so
	// that every event ParseEvent accepted is readable inside its record.
	d := scanner{s: s, depth: -1}
	if d.peek() != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrInvalidRecord)
	}
	raw := func() (json.RawMessage, error) {
		start := d.i
		if err := d.skip(); err != nil {
			return nil, err
		}
		return json.RawMessage(data[start:d.i]), nil
	}
	err := d.object("", func(key string) (err error) {
		switch key {
		case "v":
			var v int64
			v, err = d.integer("", "v")
			r.Version = int(v)
		case "id":
			r.ID, err = d.str("", "id")
		case "eventType":
			r.EventType, err = d.str("", "eventType")
		case "instance":
			r.Instance, err = d.str("", "instance")
		case "receivedAt":
			var ts string
			if ts, err = d.str("", "receivedAt"); err == nil && ts != "" {
				r.ReceivedAt, err = time.Parse(time.RFC3339Nano, ts)
			}
		case "event":
			if d.peek() == 'n' {
				return d.literal("null")
			}
			r.Event, err = raw()
		case "decision":
			if d.peek() == 'n' {
				return d.literal("null")
			}
			dec := &Decision{}
			r.Decision = dec
			err = d.object("decision", func(key string) (err error) {
				switch key {
				case "source":
					dec.Source, err = d.str("decision", key)
				case "outcome":
					dec.Outcome, err = d.str("decision", key)
				case "fallbackReason":
					dec.FallbackReason, err = d.str("decision", key)
				case "latencyUs":
					dec.LatencyMicros, err = d.integer("decision", key)
				case "maskingSessionId":
					dec.MaskingSessionID, err = d.str("decision", key)
				case "virtualNumber":
					dec.VirtualNumber, err = d.str("decision", key)
				case "policy":
					dec.Policy, err = d.str("decision", key)
				case "flow":
					dec.Flow, err = d.str("decision", key)
				case "flowVersion":
					var v int64
					if v, err = d.integer("decision", key); err == nil && v < 0 {
						err = fieldErr("decision.flowVersion", "must not be negative")
					}
					dec.FlowVersion = uint64(v)
				case "flowStep":
					dec.FlowStep, err = d.str("decision", key)
				case "digits":
					dec.Digits, err = d.str("decision", key)
				case "callflow":
					dec.Callflow, err = raw()
				default:
					err = d.skip()
				}
				return err
			})
		default:
			err = d.skip()
		}
		return err
	})
	if err == nil {
		err = d.end()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	}
	switch {
	case r.Version < 1 || r.Version > RecordVersion:
		return nil, fmt.Errorf("%w: version %d, this build reads 1 to %d", ErrInvalidRecord, r.Version, RecordVersion)
	case r.ID == "":
		return nil, fmt.Errorf("%w: no id", ErrInvalidRecord)
	case len(r.Event) == 0:
		return nil, fmt.Errorf("%w: no event", ErrInvalidRecord)
	}
	return &r, nil
}

// Subject is the subject a record is published on:
// calls.<event type>.<sub-account>, each token sanitized with SubjectToken.
func Subject(eventType, subAccountID string) string {
	return SubjectPrefix + "." + SubjectToken(eventType) + "." + SubjectToken(subAccountID)
}

// SubjectToken makes s safe as one NATS subject token: '.', '*', '>',
// whitespace, control characters and anything outside ASCII become '_', and
// an empty token becomes "_". Tokens are capped at 128 bytes.
func SubjectToken(s string) string {
	if s == "" {
		return "_"
	}
	if len(s) > 128 {
		s = s[:128]
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if !tokenByteOK(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			_, size := utf8.DecodeRuneInString(s[i:])
			b.WriteByte('_')
			i += size
			continue
		}
		if tokenByteOK(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
		i++
	}
	return b.String()
}

func tokenByteOK(c byte) bool {
	return c > ' ' && c < 0x7f && c != '.' && c != '*' && c != '>'
}
