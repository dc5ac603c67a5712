package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strings"
	"time"
)

// Event types 8x8 sends to the webhook. Others are accepted and recorded.
const (
	EventCallAction          = "CALL_ACTION"
	EventCallStatus          = "CALL_STATUS"
	EventSessionSummary      = "SESSION_SUMMARY"
	EventVirtualNumberUpdate = "VIRTUAL_NUMBER_UPDATE"
)

// Event is the envelope 8x8 POSTs for every voice webhook.
type Event struct {
	Namespace   string   `json:"namespace"`
	EventType   string   `json:"eventType"`
	Description string   `json:"description"`
	Payload     *Payload `json:"payload"`
}

// Payload holds the fields of every voice event type that callflow reads.
// Fields it does not know stay in the raw body, which is recorded whole.
type Payload struct {
	EventID                string `json:"eventId"`
	CallID                 string `json:"callId"`
	SessionID              string `json:"sessionId"`
	SubAccountID           string `json:"subAccountId"`
	CallStatus             string `json:"callStatus"`
	CallDirection          string `json:"callDirection"`
	CallType               string `json:"callType"`
	Source                 string `json:"source"`
	Destination            string `json:"destination"`
	SourceFormat           string `json:"sourceFormat"`
	DestinationFormat      string `json:"destinationFormat"`
	SourceCountryCode      string `json:"sourceCountryCode"`
	DestinationCountryCode string `json:"destinationCountryCode"`
	DestinationRefID       string `json:"destinationRefId"`
	CallDuration           Int    `json:"callDuration"`
	SipCode                Int    `json:"sipCode"`
	Timestamp              string `json:"timestamp"`

	// ClientActionID is echoed by 8x8 on a CALL_ACTION that follows an
	// action of ours (callStatus ACTION_COMPLETED).
	ClientActionID string `json:"clientActionId"`

	// DTMF and ASR are payload.eventData's dtmf (the digits a
	// sayAndCapture collected) and asrCaptured (recognised speech), sent
	// on a CALL_ACTION that follows an action (callStatus
	// ACTION_COMPLETED); "" when absent or null. eventData is an object,
	// or null; a string (what an older 8x8 sent) is accepted and ignored;
	// another type is the wrong type. Given twice, the last eventData
	// counts, whole.
	DTMF string `json:"-"`
	ASR  string `json:"-"`

	// Session summary fields.
	SessionStatus string        `json:"sessionStatus"`
	StartTime     string        `json:"startTime"`
	EndTime       string        `json:"endTime"`
	LastAction    string        `json:"lastAction"`
	CallCount     Int           `json:"callCount"`
	ErrorDetails  *ErrorDetails `json:"errorDetails"`
}

// ErrorDetails is the optional error block of a session summary.
type ErrorDetails struct {
	ErrorMsg  string    `json:"errorMsg"`
	ErrorCode FlexiCode `json:"errorCode"`
}

// FlexiCode is an error code 8x8 may send as a JSON string or number; it is
// kept as text either way.
type FlexiCode string

// Int is an integer field of an event. It accepts a JSON number whose exact
// value is a whole number, also when written as 200.0, 2e2 or 20000e-2; a
// fraction (however small: 200.00000000000000001), a string or a value beyond
// int64 is the wrong type. See wholeNumber.
type Int int64

// Ranges of the integer fields: a value outside them is the wrong type.
var intRanges = []struct {
	field    string
	get      func(*Payload) Int
	min, max int64
}{
	{"payload.callDuration", func(p *Payload) Int { return p.CallDuration }, 0, math.MaxInt32},
	{"payload.sipCode", func(p *Payload) Int { return p.SipCode }, 0, 699},
	{"payload.callCount", func(p *Payload) Int { return p.CallCount }, 0, math.MaxInt32},
}

// ParseEvent parses and validates a webhook body. The error, when not nil, is
// a *FieldError matching ErrInvalidEvent that names the offending field.
//
// Only what makes a body not an 8x8 event is refused: malformed JSON, a
// missing or non-object payload, a missing namespace or eventType, a field of
// the wrong JSON type (an integer field holding a fraction or a value outside
// its range counts), and a missing id that the event type needs. Unknown
// event types, fields and enum values are accepted. Keys match exactly (the
// JSON's "timestamp", not the seed table's "Timestamp"); nesting deeper than
// 64 levels is refused.
//
// Of a key given twice in one object, at any level, the last wins, and an
// object given twice is the last one whole: the body means what a generic
// JSON reader (JSON.parse, encoding/json into a map) makes of it. Such a
// body is valid JSON and still an 8x8 event, so it is accepted like unknown
// fields are; every reader of the recorded body parses it with ParseEvent
// and reads the same event. (Replies from deciders, which are forwarded to
// 8x8, are held to more: CheckCallflow refuses a key given twice.)
//
// The body is copied once; the event's strings share that copy, so the
// event stays valid after body is reused.
func ParseEvent(body []byte) (*Event, error) {
	return parseEvent(string(body))
}

// ParseEventShared is ParseEvent without the copy: the event's strings
// share body's memory, so body must never be modified while the event is
// in use (the archiver's case: it owns the message the body is part of).
func ParseEventShared(body []byte) (*Event, error) {
	return parseEvent(sharedString(body))
}

func parseEvent(body string) (*Event, error) {
	// One allocation for the event and its payload.
	a := &struct {
		ev Event
		p  Payload
	}{}
	if err := parseEventInto(&a.ev, &a.p, body); err != nil {
		return nil, err
	}
	return &a.ev, nil
}

// ParseEventInto is ParseEvent into storage the caller owns (and may
// reuse): ev is overwritten, and its Payload points to payload.
func ParseEventInto(ev *Event, payload *Payload, body []byte) error {
	return parseEventInto(ev, payload, string(body))
}

func parseEventInto(ev *Event, payload *Payload, body string) error {
	*ev = Event{}
	d := scanner{s: body}
	if d.eof() {
		return fieldErr("body", "empty; expected a JSON object")
	}
	switch d.peek() {
	case '{':
	default:
		if err := d.skip(); err != nil {
			return err
		}
		return fieldErr("body", "must be a JSON object")
	}
	err := d.object("", func(key string) (err error) {
		switch key {
		case "namespace":
			ev.Namespace, err = d.str("", "namespace")
		case "eventType":
			ev.EventType, err = d.str("", "eventType")
		case "description":
			ev.Description, err = d.str("", "description")
		case "payload":
			switch c := d.peek(); c {
			case 'n':
				ev.Payload = nil
				return d.literal("null")
			case '{':
				*payload = Payload{}
				ev.Payload = payload
				return d.object("payload", func(key string) error { return parsePayloadField(&d, payload, key) })
			default:
				if err := d.skip(); err != nil {
					return err
				}
				return fieldErr("payload", "must be an object, got %s", kind(c))
			}
		default:
			err = d.skip()
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := d.end(); err != nil {
		return err
	}
	if ev.Payload == nil {
		return fieldErr("payload", "required")
	}
	if ev.Namespace == "" {
		return fieldErr("namespace", "required")
	}
	if ev.EventType == "" {
		return fieldErr("eventType", "required")
	}
	for _, r := range intRanges {
		if v := int64(r.get(ev.Payload)); v < r.min || v > r.max {
			return fieldErr(r.field, "must be an integer from %d to %d", r.min, r.max)
		}
	}
	for _, f := range requiredIDs(ev.EventType) {
		if strings.TrimSpace(*f.value(ev.Payload)) == "" {
			return fieldErr("payload."+f.name, "required for %s", ev.EventType)
		}
	}
	return nil
}

// parsePayloadField reads the value of one payload member into p.
func parsePayloadField(d *scanner, p *Payload, key string) error {
	var dst *string
	switch key {
	case "eventId":
		dst = &p.EventID
	case "callId":
		dst = &p.CallID
	case "sessionId":
		dst = &p.SessionID
	case "subAccountId":
		dst = &p.SubAccountID
	case "callStatus":
		dst = &p.CallStatus
	case "callDirection":
		dst = &p.CallDirection
	case "callType":
		dst = &p.CallType
	case "source":
		dst = &p.Source
	case "destination":
		dst = &p.Destination
	case "sourceFormat":
		dst = &p.SourceFormat
	case "destinationFormat":
		dst = &p.DestinationFormat
	case "sourceCountryCode":
		dst = &p.SourceCountryCode
	case "destinationCountryCode":
		dst = &p.DestinationCountryCode
	case "destinationRefId":
		dst = &p.DestinationRefID
	case "timestamp":
		dst = &p.Timestamp
	case "clientActionId":
		dst = &p.ClientActionID
	case "sessionStatus":
		dst = &p.SessionStatus
	case "startTime":
		dst = &p.StartTime
	case "endTime":
		dst = &p.EndTime
	case "lastAction":
		dst = &p.LastAction
	case "callDuration", "sipCode", "callCount":
		n, err := d.integer("payload", key)
		switch key {
		case "callDuration":
			p.CallDuration = Int(n)
		case "sipCode":
			p.SipCode = Int(n)
		default:
			p.CallCount = Int(n)
		}
		return err
	case "eventData":
		return parseEventData(d, p)
	case "errorDetails":
		switch c := d.peek(); c {
		case 'n':
			p.ErrorDetails = nil
			return d.literal("null")
		case '{':
			e := &ErrorDetails{}
			p.ErrorDetails = e
			return d.object("payload.errorDetails", func(key string) (err error) {
				switch key {
				case "errorMsg":
					e.ErrorMsg, err = d.str("payload.errorDetails", "errorMsg")
				case "errorCode":
					var code string
					code, err = d.textOrNumber("payload.errorDetails", "errorCode")
					e.ErrorCode = FlexiCode(code)
				default:
					err = d.skip()
				}
				return err
			})
		default:
			if err := d.skip(); err != nil {
				return err
			}
			return fieldErr("payload.errorDetails", "must be an object, got %s", kind(c))
		}
	default:
		return d.skip()
	}
	v, err := d.str("payload", key)
	*dst = v
	return err
}

// parseEventData reads payload.eventData into p.DTMF and p.ASR.
func parseEventData(d *scanner, p *Payload) error {
	const path = "payload.eventData"
	p.DTMF, p.ASR = "", ""
	switch c := d.peek(); c {
	case 'n':
		return d.literal("null")
	case '"':
		return d.skip() // an older 8x8's eventData: ignored
	case '{':
		return d.object(path, func(key string) (err error) {
			switch key {
			case "dtmf":
				p.DTMF, err = d.str(path, key)
			case "asrCaptured":
				p.ASR, err = d.str(path, key)
			default:
				err = d.skip()
			}
			return err
		})
	default:
		if err := d.skip(); err != nil {
			return err
		}
		return fieldErr(path, "must be an object, got %s", kind(c))
	}
}

type idField struct {
	name  string
	value func(*Payload) *string
}

var (
	fEventID      = idField{"eventId", func(p *Payload) *string { return &p.EventID }}
	fCallID       = idField{"callId", func(p *Payload) *string { return &p.CallID }}
	fSessionID    = idField{"sessionId", func(p *Payload) *string { return &p.SessionID }}
	fSubAccountID = idField{"subAccountId", func(p *Payload) *string { return &p.SubAccountID }}
	fSource       = idField{"source", func(p *Payload) *string { return &p.Source }}
	fDestination  = idField{"destination", func(p *Payload) *string { return &p.Destination }}

	required = map[string][]idField{
		EventCallAction:     {fEventID, fCallID, fSessionID, fSubAccountID, fSource, fDestination},
		EventCallStatus:     {fEventID, fCallID, fSessionID},
		EventSessionSummary: {fSessionID},
	}
)

func requiredIDs(eventType string) []idField { return required[eventType] }

// RecordID is the id under which the event is recorded: the 8x8 eventId
// when there is one, otherwise a deterministic hash of the event type, the
// ids the event carries and the body, so that a webhook sent twice gets the
// same id either way. It serves as Nats-Msg-Id and as event_id in ClickHouse.
//
// An eventId that is not a plain token (1 to 128 printable ASCII bytes, no
// spaces) is replaced by a hash of itself, so that ids can travel in NATS
// headers and line-oriented files unchanged; 8x8's ids are UUIDs.
func (e *Event) RecordID(body []byte) string {
	if id := e.Payload.EventID; id != "" {
		if plainToken(id) {
			return id
		}
		sum := sha256.Sum256([]byte(id))
		return "h-" + hex.EncodeToString(sum[:16])
	}
	h := sha256.New()
	for _, s := range []string{e.EventType, e.Payload.SessionID, e.Payload.CallID, e.Payload.SubAccountID} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(body)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

func plainToken(s string) bool {
	if len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// Time is the event's own timestamp (timestamp, else startTime), or the zero
// time when it carries none that parses as RFC 3339.
func (e *Event) Time() time.Time {
	for _, s := range []string{e.Payload.Timestamp, e.Payload.StartTime} {
		if s == "" {
			continue // without the error time.Parse would allocate
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// DecideRequest builds the question a decider answers for a CALL_ACTION.
func (e *Event) DecideRequest() DecideRequest {
	p := e.Payload
	return DecideRequest{
		EventID:        p.EventID,
		CallID:         p.CallID,
		SessionID:      p.SessionID,
		SubAccountID:   p.SubAccountID,
		CallStatus:     p.CallStatus,
		Source:         p.Source,
		Destination:    p.Destination,
		ClientActionID: p.ClientActionID,
		DTMF:           p.DTMF,
	}
}
