package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readFixture returns the content of testdata/name.
func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// editEvent decodes body as a generic JSON object, lets f change the envelope
// and its payload (nil when the payload is not an object) and encodes it again.
// Numbers are kept as written (json.Number).
func editEvent(tb testing.TB, body []byte, f func(env, payload map[string]any)) []byte {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var env map[string]any
	if err := dec.Decode(&env); err != nil {
		tb.Fatalf("editEvent: %v", err)
	}
	payload, _ := env["payload"].(map[string]any)
	f(env, payload)
	out, err := json.Marshal(env)
	if err != nil {
		tb.Fatalf("editEvent: %v", err)
	}
	return out
}

// setPayload returns the seed example with payload[key] replaced by the raw
// JSON value raw (or removed when raw is "").
func setPayload(tb testing.TB, key, raw string) []byte {
	tb.Helper()
	return editEvent(tb, readFixture(tb, "call_action.json"), func(_, p map[string]any) {
		if raw == "" {
			delete(p, key)
			return
		}
		p[key] = json.RawMessage(raw)
	})
}

// setEnvelope is setPayload for the envelope.
func setEnvelope(tb testing.TB, key, raw string) []byte {
	tb.Helper()
	return editEvent(tb, readFixture(tb, "call_action.json"), func(env, _ map[string]any) {
		if raw == "" {
			delete(env, key)
			return
		}
		env[key] = json.RawMessage(raw)
	})
}

// seedPayload is the payload of the seed's example webhook
// (testdata/call_action.json), field by field.
var seedPayload = Payload{
	EventID:                "eb0fc709-9693-11ea-454d-1705dde98182",
	CallID:                 "a1d6a5e3-efec-11e9-b999-7d370b5f90d1",
	SessionID:              "a1d6a5e2-efec-11e9-b999-efc71013a78f",
	SubAccountID:           "your_subaccount_id",
	CallStatus:             "CALL_RECEIVED",
	CallDirection:          "INBOUND",
	CallType:               "PSTN",
	Source:                 "+65123456789",
	Destination:            "+65987654321",
	SourceFormat:           "MSISDN",
	DestinationFormat:      "MSISDN",
	SourceCountryCode:      "SG",
	DestinationCountryCode: "SG",
	DestinationRefID:       "vn-ref-1",
	CallDuration:           0,
	SipCode:                200,
	Timestamp:              "2019-10-16T08:12:01Z",
}

func TestParseEventSeedExample(t *testing.T) {
	ev, err := ParseEvent(readFixture(t, "call_action.json"))
	if err != nil {
		t.Fatalf("ParseEvent(seed example): %v", err)
	}
	if ev.Namespace != "VOICE" || ev.EventType != EventCallAction || ev.Description != "Action request of a call" {
		t.Errorf("envelope = %q %q %q", ev.Namespace, ev.EventType, ev.Description)
	}
	if !reflect.DeepEqual(*ev.Payload, seedPayload) {
		t.Errorf("payload =\n%+v\nwant\n%+v", *ev.Payload, seedPayload)
	}
	if want := time.Date(2019, 10, 16, 8, 12, 1, 0, time.UTC); !ev.Time().Equal(want) {
		t.Errorf("Time() = %v, want %v", ev.Time(), want)
	}
}

func TestParseEventFixtures(t *testing.T) {
	tests := []struct {
		file      string
		eventType string
		check     func(t *testing.T, ev *Event)
	}{
		{"call_action.json", EventCallAction, func(t *testing.T, ev *Event) {
			if ev.Payload.ClientActionID != "" || ev.Payload.ErrorDetails != nil {
				t.Errorf("unexpected fields: %+v", ev.Payload)
			}
		}},
		{"call_action_completed.json", EventCallAction, func(t *testing.T, ev *Event) {
			p := ev.Payload
			if p.CallStatus != "ACTION_COMPLETED" || p.ClientActionID != "NumberMaskingId1" || p.CallDuration != 12 || p.DTMF != "1234#" || p.ASR != "" {
				t.Errorf("payload = %+v", p)
			}
			if want := time.Date(2019, 10, 16, 8, 12, 13, 250_000_000, time.UTC); !ev.Time().Equal(want) {
				t.Errorf("Time() = %v, want %v", ev.Time(), want)
			}
		}},
		{"call_status.json", EventCallStatus, func(t *testing.T, ev *Event) {
			p := ev.Payload
			if p.CallStatus != "CALL_DISCONNECTED" || p.CallDirection != "OUTBOUND" || p.CallDuration != 37 || p.SipCode != 200 {
				t.Errorf("payload = %+v", p)
			}
		}},
		{"session_summary.json", EventSessionSummary, func(t *testing.T, ev *Event) {
			p := ev.Payload
			if p.EventID != "" || p.CallID != "" {
				t.Errorf("summary carries no eventId/callId, got %q %q", p.EventID, p.CallID)
			}
			if p.SessionID != "a1d6a5e2-efec-11e9-b999-efc71013a78f" || p.SubAccountID != "your_subaccount_id" {
				t.Errorf("ids = %q %q", p.SessionID, p.SubAccountID)
			}
			if p.SessionStatus != "ERROR" || p.LastAction != "makeCall" || p.CallCount != 2 ||
				p.StartTime != "2019-10-16T08:12:01Z" || p.EndTime != "2019-10-16T08:12:40Z" {
				t.Errorf("summary fields = %+v", p)
			}
			want := &ErrorDetails{ErrorMsg: "Destination unreachable", ErrorCode: "4003"}
			if !reflect.DeepEqual(p.ErrorDetails, want) {
				t.Errorf("errorDetails = %+v, want %+v", p.ErrorDetails, want)
			}
			// No timestamp: Time falls back to startTime.
			if want := time.Date(2019, 10, 16, 8, 12, 1, 0, time.UTC); !ev.Time().Equal(want) {
				t.Errorf("Time() = %v, want %v", ev.Time(), want)
			}
		}},
		{"virtual_number_update.json", EventVirtualNumberUpdate, func(t *testing.T, ev *Event) {
			if ev.Payload.SubAccountID != "your_subaccount_id" || ev.Payload.EventID != "" {
				t.Errorf("payload = %+v", ev.Payload)
			}
			if !ev.Time().IsZero() {
				t.Errorf("Time() = %v, want zero", ev.Time())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := readFixture(t, tt.file)
			ev, err := ParseEvent(body)
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			if ev.Namespace != "VOICE" || ev.EventType != tt.eventType {
				t.Errorf("envelope = %q %q, want VOICE %q", ev.Namespace, ev.EventType, tt.eventType)
			}
			if id := ev.RecordID(body); id == "" {
				t.Error("RecordID is empty")
			} else if ev.Payload.EventID != "" && id != ev.Payload.EventID {
				t.Errorf("RecordID = %q, want eventId %q", id, ev.Payload.EventID)
			}
			tt.check(t, ev)
		})
	}
}

// checkInvalidEvent asserts that err is the FieldError ParseEvent must return
// for an unacceptable body, naming field.
func checkInvalidEvent(t *testing.T, ev *Event, err error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("ParseEvent accepted the body, want an error naming %q", field)
	}
	if ev != nil {
		t.Errorf("ParseEvent returned an event with its error: %+v", ev)
	}
	if !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("errors.Is(%v, ErrInvalidEvent) = false", err)
	}
	if errors.Is(err, ErrInvalidResponse) || errors.Is(err, ErrInvalidRecord) || errors.Is(err, ErrInvalidNumber) {
		t.Errorf("error %v matches an unrelated sentinel", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %T %v is not a *FieldError", err, err)
	}
	if fe.Field != field {
		t.Errorf("FieldError.Field = %q, want %q (error: %v)", fe.Field, field, err)
	}
	if fe.Problem == "" {
		t.Errorf("FieldError.Problem is empty")
	}
	if !strings.HasPrefix(err.Error(), field+": ") {
		t.Errorf("error %q does not start with the field %q", err, field)
	}
}

func TestParseEventInvalid(t *testing.T) {
	seed := readFixture(t, "call_action.json")
	tests := []struct {
		name  string
		body  []byte
		field string
	}{
		// Not JSON, or not a JSON object.
		{"nil body", nil, "body"},
		{"empty body", []byte(""), "body"},
		{"whitespace body", []byte(" \r\n\t "), "body"},
		{"truncated object", []byte(`{"namespace":"VOICE"`), "body"},
		{"trailing comma", []byte(`{"namespace":"VOICE","eventType":"CALL_ACTION","payload":{},}`), "body"},
		{"seed with comment", []byte(`{"namespace":"VOICE", // comment` + "\n" + `"eventType":"X","payload":{}}`), "body"},
		{"single quotes", []byte(`{'namespace':'VOICE'}`), "body"},
		{"not JSON", []byte("namespace=VOICE&eventType=CALL_ACTION"), "body"},
		{"trailing garbage", append(slices.Clone(seed), 'x'), "body"},
		{"two objects", append(slices.Clone(seed), seed...), "body"},
		{"top-level empty array", []byte(`[]`), "body"},
		{"top-level array of events", append(append([]byte("["), seed...), ']'), "body"},
		{"top-level string", []byte(`"CALL_ACTION"`), "body"},
		{"top-level number", []byte(`42`), "body"},
		{"top-level bool", []byte(`true`), "body"},

		// The payload.
		{"top-level null", []byte(`null`), "body"},
		{"empty object", []byte(`{}`), "payload"},
		{"missing payload", setEnvelope(t, "payload", ""), "payload"},
		{"null payload", setEnvelope(t, "payload", `null`), "payload"},
		{"string payload", setEnvelope(t, "payload", `"{}"`), "payload"},
		{"number payload", setEnvelope(t, "payload", `1`), "payload"},
		{"bool payload", setEnvelope(t, "payload", `false`), "payload"},
		{"array payload", setEnvelope(t, "payload", `[]`), "payload"},
		{"array of objects payload", setEnvelope(t, "payload", `[{"eventId":"x"}]`), "payload"},

		// The envelope's strings.
		{"missing namespace", setEnvelope(t, "namespace", ""), "namespace"},
		{"empty namespace", setEnvelope(t, "namespace", `""`), "namespace"},
		{"null namespace", setEnvelope(t, "namespace", `null`), "namespace"},
		{"number namespace", setEnvelope(t, "namespace", `7`), "namespace"},
		{"object namespace", setEnvelope(t, "namespace", `{"name":"VOICE"}`), "namespace"},
		{"array namespace", setEnvelope(t, "namespace", `["VOICE"]`), "namespace"},
		{"bool namespace", setEnvelope(t, "namespace", `true`), "namespace"},
		{"missing eventType", setEnvelope(t, "eventType", ""), "eventType"},
		{"empty eventType", setEnvelope(t, "eventType", `""`), "eventType"},
		{"null eventType", setEnvelope(t, "eventType", `null`), "eventType"},
		{"number eventType", setEnvelope(t, "eventType", `1`), "eventType"},
		{"array eventType", setEnvelope(t, "eventType", `["CALL_ACTION"]`), "eventType"},
		{"number description", setEnvelope(t, "description", `3.5`), "description"},
		{"object description", setEnvelope(t, "description", `{}`), "description"},

		// Integer fields: the wrong JSON type, fractions, out of range.
		{"sipCode fraction", setPayload(t, "sipCode", `1.5`), "payload.sipCode"},
		{"sipCode 200.5", setPayload(t, "sipCode", `200.5`), "payload.sipCode"},
		{"sipCode 1e40", setPayload(t, "sipCode", `1e40`), "payload.sipCode"},
		{"sipCode -1e40", setPayload(t, "sipCode", `-1e40`), "payload.sipCode"},
		{"sipCode beyond int64", setPayload(t, "sipCode", `9223372036854775808`), "payload.sipCode"},
		{"sipCode 700", setPayload(t, "sipCode", `700`), "payload.sipCode"},
		{"sipCode 99999", setPayload(t, "sipCode", `99999`), "payload.sipCode"},
		{"sipCode -1", setPayload(t, "sipCode", `-1`), "payload.sipCode"},
		{"sipCode string", setPayload(t, "sipCode", `"200"`), "payload.sipCode"},
		{"sipCode bool", setPayload(t, "sipCode", `true`), "payload.sipCode"},
		{"sipCode object", setPayload(t, "sipCode", `{"code":200}`), "payload.sipCode"},
		{"callDuration -1", setPayload(t, "callDuration", `-1`), "payload.callDuration"},
		{"callDuration fraction", setPayload(t, "callDuration", `0.5`), "payload.callDuration"},
		{"callDuration 1e40", setPayload(t, "callDuration", `1e40`), "payload.callDuration"},
		{"callDuration above int32", setPayload(t, "callDuration", strconv.FormatInt(math.MaxInt32+1, 10)), "payload.callDuration"},
		{"callDuration max int64", setPayload(t, "callDuration", strconv.FormatInt(math.MaxInt64, 10)), "payload.callDuration"},
		{"callDuration min int64", setPayload(t, "callDuration", strconv.FormatInt(math.MinInt64, 10)), "payload.callDuration"},
		{"callDuration string", setPayload(t, "callDuration", `"0"`), "payload.callDuration"},
		{"callDuration array", setPayload(t, "callDuration", `[0]`), "payload.callDuration"},
		{"callCount -1", setPayload(t, "callCount", `-1`), "payload.callCount"},
		{"callCount fraction", setPayload(t, "callCount", `2.25`), "payload.callCount"},
		{"callCount above int32", setPayload(t, "callCount", strconv.FormatInt(math.MaxInt32+1, 10)), "payload.callCount"},
		{"callCount string", setPayload(t, "callCount", `"2"`), "payload.callCount"},

		// The error block of a session summary.
		{"errorDetails string", setPayload(t, "errorDetails", `"boom"`), "payload.errorDetails"},
		{"errorDetails number", setPayload(t, "errorDetails", `500`), "payload.errorDetails"},
		{"errorDetails array", setPayload(t, "errorDetails", `[]`), "payload.errorDetails"},
		{"errorMsg number", setPayload(t, "errorDetails", `{"errorMsg":5,"errorCode":1}`), "payload.errorDetails.errorMsg"},
		{"errorCode object", setPayload(t, "errorDetails", `{"errorMsg":"x","errorCode":{"code":1}}`), "payload.errorDetails.errorCode"},
		{"errorCode array", setPayload(t, "errorDetails", `{"errorMsg":"x","errorCode":[1]}`), "payload.errorDetails.errorCode"},
		{"errorCode bool", setPayload(t, "errorDetails", `{"errorMsg":"x","errorCode":true}`), "payload.errorDetails.errorCode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseEvent(tt.body)
			checkInvalidEvent(t, ev, err, tt.field)
		})
	}
}

// payloadFields lists the JSON names of Payload's fields of the given kind.
func payloadFields(kind reflect.Kind) []string {
	var names []string
	typ := reflect.TypeFor[Payload]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		// "-": read from a nested object (payload.eventData), see
		// TestParseEventData.
		if name := strings.Split(f.Tag.Get("json"), ",")[0]; f.Type.Kind() == kind && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

func TestParseEventWrongTypeForEveryStringField(t *testing.T) {
	fields := payloadFields(reflect.String)
	for _, must := range []string{"eventId", "callId", "sessionId", "subAccountId", "source", "destination", "callStatus", "timestamp", "clientActionId", "sessionStatus"} {
		if !slices.Contains(fields, must) {
			t.Fatalf("string fields %v lack %q", fields, must)
		}
	}
	wrong := []struct{ name, raw string }{
		{"integer", `123`},
		{"fraction", `1.5`},
		{"bool", `false`},
		{"object", `{"value":"x"}`},
		{"array", `["x"]`},
	}
	for _, field := range fields {
		for _, w := range wrong {
			t.Run(field+"/"+w.name, func(t *testing.T) {
				ev, err := ParseEvent(setPayload(t, field, w.raw))
				checkInvalidEvent(t, ev, err, "payload."+field)
			})
		}
	}
}

func TestParseEventWrongTypeForEveryIntegerField(t *testing.T) {
	fields := payloadFields(reflect.Int64)
	if want := []string{"callDuration", "sipCode", "callCount"}; !reflect.DeepEqual(fields, want) {
		t.Fatalf("integer fields = %v, want %v", fields, want)
	}
	wrong := []struct{ name, raw string }{
		{"string", `"1"`},
		{"fraction", `1.5`},
		{"negative fraction", `-0.5`},
		{"huge exponent", `1e40`},
		{"beyond uint64", `18446744073709551616`},
		{"negative", `-1`},
		{"bool", `true`},
		{"object", `{}`},
		{"array", `[1]`},
	}
	for _, field := range fields {
		for _, w := range wrong {
			t.Run(field+"/"+w.name, func(t *testing.T) {
				ev, err := ParseEvent(setPayload(t, field, w.raw))
				checkInvalidEvent(t, ev, err, "payload."+field)
			})
		}
	}
}

func TestParseEventIntegerRanges(t *testing.T) {
	tests := []struct {
		field string
		raw   string
		want  int64
	}{
		{"sipCode", `0`, 0},
		{"sipCode", `-0`, 0},
		{"sipCode", `100`, 100},
		{"sipCode", `486`, 486},
		{"sipCode", `699`, 699},
		{"sipCode", `null`, 0},
		{"callDuration", `0`, 0},
		{"callDuration", `3600`, 3600},
		{"callDuration", strconv.FormatInt(math.MaxInt32, 10), math.MaxInt32},
		{"callCount", `0`, 0},
		{"callCount", `2`, 2},
		{"callCount", strconv.FormatInt(math.MaxInt32, 10), math.MaxInt32},
	}
	for _, tt := range tests {
		t.Run(tt.field+"="+tt.raw, func(t *testing.T) {
			ev, err := ParseEvent(setPayload(t, tt.field, tt.raw))
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			got := reflect.ValueOf(ev.Payload).Elem().FieldByNameFunc(func(n string) bool {
				return strings.EqualFold(n, tt.field)
			}).Int()
			if got != tt.want {
				t.Errorf("%s = %d, want %d", tt.field, got, tt.want)
			}
		})
	}
}

// requiredByType is DECISIONS.md's list of the ids each event type needs.
var requiredByType = map[string][]string{
	EventCallAction:     {"eventId", "callId", "sessionId", "subAccountId", "source", "destination"},
	EventCallStatus:     {"eventId", "callId", "sessionId"},
	EventSessionSummary: {"sessionId"},
}

var allIDs = []string{"eventId", "callId", "sessionId", "subAccountId", "source", "destination"}

// withType is the seed example with eventType replaced.
func withType(tb testing.TB, eventType string) []byte {
	tb.Helper()
	return editEvent(tb, readFixture(tb, "call_action.json"), func(env, _ map[string]any) {
		env["eventType"] = eventType
	})
}

func TestParseEventRequiredIDs(t *testing.T) {
	for eventType, ids := range requiredByType {
		base := withType(t, eventType)
		for _, id := range ids {
			for _, mode := range []struct{ name, raw string }{
				{"missing", ""},
				{"empty", `""`},
				{"null", `null`},
			} {
				t.Run(eventType+"/"+id+"/"+mode.name, func(t *testing.T) {
					body := editEvent(t, base, func(_, p map[string]any) {
						if mode.raw == "" {
							delete(p, id)
						} else {
							p[id] = json.RawMessage(mode.raw)
						}
					})
					ev, err := ParseEvent(body)
					checkInvalidEvent(t, ev, err, "payload."+id)
					if err != nil && !strings.Contains(err.Error(), eventType) {
						t.Errorf("error %q does not name the event type %s", err, eventType)
					}
				})
			}
		}
	}
}

func TestParseEventOptionalIDs(t *testing.T) {
	types := []string{
		EventCallAction, EventCallStatus, EventSessionSummary, EventVirtualNumberUpdate,
		"RECORDING_UPLOADED", "SOME_FUTURE_EVENT", "call_action", // event types are case-sensitive
	}
	for _, eventType := range types {
		t.Run(eventType, func(t *testing.T) {
			needed := requiredByType[eventType]
			body := editEvent(t, withType(t, eventType), func(_, p map[string]any) {
				for _, id := range allIDs {
					if !slices.Contains(needed, id) {
						delete(p, id)
					}
				}
			})
			ev, err := ParseEvent(body)
			if err != nil {
				t.Fatalf("ParseEvent without the ids %s does not need: %v", eventType, err)
			}
			if ev.EventType != eventType {
				t.Errorf("eventType = %q", ev.EventType)
			}
			if ev.RecordID(body) == "" {
				t.Error("empty RecordID")
			}
		})
	}
}

func TestParseEventAccepts(t *testing.T) {
	seed := readFixture(t, "call_action.json")
	tests := []struct {
		name  string
		body  []byte
		check func(t *testing.T, ev *Event)
	}{
		{"minimal unknown event", []byte(`{"namespace":"VOICE","eventType":"FUTURE_EVENT","payload":{}}`), func(t *testing.T, ev *Event) {
			if ev.EventType != "FUTURE_EVENT" || !reflect.DeepEqual(*ev.Payload, Payload{}) {
				t.Errorf("event = %+v %+v", ev, ev.Payload)
			}
		}},
		{"surrounding whitespace", append(append([]byte("\n\t  "), seed...), " \r\n"...), nil},
		{"other namespace", setEnvelope(t, "namespace", `"MESSAGING"`), func(t *testing.T, ev *Event) {
			if ev.Namespace != "MESSAGING" {
				t.Errorf("namespace = %q", ev.Namespace)
			}
		}},
		{"missing description", setEnvelope(t, "description", ""), nil},
		{"null description", setEnvelope(t, "description", `null`), nil},
		{"unknown envelope fields", editEvent(t, seed, func(env, _ map[string]any) {
			env["version"] = 2
			env["meta"] = map[string]any{"region": "ap-southeast-1", "tags": []any{"a", 1, nil, true}}
		}), nil},
		{"unknown payload fields", editEvent(t, seed, func(_, p map[string]any) {
			p["callerInfo"] = map[string]any{"dtmf": "12#"}
			p["rentalPrice"] = json.Number("2.5")
			p["hugeNumber"] = json.Number("1e400")
			p["negative"] = json.Number("-12")
			p["list"] = []any{map[string]any{"x": 1}}
			p["flag"] = true
			p["nothing"] = nil
		}), func(t *testing.T, ev *Event) {
			if !reflect.DeepEqual(*ev.Payload, seedPayload) {
				t.Errorf("payload = %+v", ev.Payload)
			}
		}},
		{"unknown callStatus", setPayload(t, "callStatus", `"CALL_TELEPORTED"`), func(t *testing.T, ev *Event) {
			if ev.Payload.CallStatus != "CALL_TELEPORTED" {
				t.Errorf("callStatus = %q", ev.Payload.CallStatus)
			}
		}},
		{"ACTION_COMPLETED callStatus", setPayload(t, "callStatus", `"ACTION_COMPLETED"`), nil},
		{"unknown callDirection", setPayload(t, "callDirection", `"SIDEWAYS"`), nil},
		{"unknown callType", setPayload(t, "callType", `"WEBRTC"`), nil},
		{"unknown sourceFormat", setPayload(t, "sourceFormat", `"SIP_URI"`), nil},
		{"unknown sessionStatus", setPayload(t, "sessionStatus", `"COMPLETED_UNSUBSCRIBED"`), nil},
		{"null optional strings", editEvent(t, seed, func(_, p map[string]any) {
			for _, k := range []string{"callStatus", "callDirection", "callType", "sourceFormat", "timestamp", "destinationRefId"} {
				p[k] = nil
			}
		}), func(t *testing.T, ev *Event) {
			if ev.Payload.CallStatus != "" || ev.Payload.Timestamp != "" {
				t.Errorf("payload = %+v", ev.Payload)
			}
			if !ev.Time().IsZero() {
				t.Errorf("Time() = %v, want zero", ev.Time())
			}
		}},
		{"null integers", editEvent(t, seed, func(_, p map[string]any) {
			p["sipCode"], p["callDuration"], p["callCount"] = nil, nil, nil
		}), nil},
		{"null errorDetails", setPayload(t, "errorDetails", `null`), func(t *testing.T, ev *Event) {
			if ev.Payload.ErrorDetails != nil {
				t.Errorf("errorDetails = %+v", ev.Payload.ErrorDetails)
			}
		}},
		{"empty errorDetails", setPayload(t, "errorDetails", `{}`), func(t *testing.T, ev *Event) {
			if ev.Payload.ErrorDetails == nil || *ev.Payload.ErrorDetails != (ErrorDetails{}) {
				t.Errorf("errorDetails = %+v", ev.Payload.ErrorDetails)
			}
		}},
		{"seed table spelling Timestamp", editEvent(t, seed, func(_, p map[string]any) {
			delete(p, "timestamp")
			p["Timestamp"] = "2019-10-16T08:12:01Z"
		}), nil},
		{"unusable numbers still parse", editEvent(t, seed, func(_, p map[string]any) {
			p["source"] = "anonymous"
			p["destination"] = "0"
		}), func(t *testing.T, ev *Event) {
			if ev.Payload.Source != "anonymous" || ev.Payload.Destination != "0" {
				t.Errorf("numbers = %q %q", ev.Payload.Source, ev.Payload.Destination)
			}
		}},
		{"unicode and escapes in strings", setPayload(t, "subAccountId", `"caf\u00e9 \"☎\" \n 日本"`), func(t *testing.T, ev *Event) {
			if want := "café \"☎\" \n 日本"; ev.Payload.SubAccountID != want {
				t.Errorf("subAccountId = %q, want %q", ev.Payload.SubAccountID, want)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseEvent(tt.body)
			if err != nil {
				t.Fatalf("ParseEvent: %v\nbody: %s", err, tt.body)
			}
			if ev == nil || ev.Payload == nil {
				t.Fatal("ParseEvent returned no event or no payload")
			}
			if tt.check != nil {
				tt.check(t, ev)
			}
		})
	}
}

func TestParseEventErrorCode(t *testing.T) {
	tests := []struct {
		name string
		raw  string // the errorDetails object
		want FlexiCode
	}{
		{"number", `{"errorMsg":"m","errorCode":4003}`, "4003"},
		{"string", `{"errorMsg":"m","errorCode":"4003"}`, "4003"},
		{"alphanumeric string", `{"errorMsg":"m","errorCode":"E_DEST-UNREACHABLE"}`, "E_DEST-UNREACHABLE"},
		{"negative number", `{"errorCode":-1}`, "-1"},
		{"zero", `{"errorCode":0}`, "0"},
		{"fraction kept as text", `{"errorCode":1.5}`, "1.5"},
		{"exponent kept as text", `{"errorCode":1e3}`, "1e3"},
		{"beyond int64 kept as text", `{"errorCode":123456789012345678901234567890}`, "123456789012345678901234567890"},
		{"empty string", `{"errorCode":""}`, ""},
		{"null", `{"errorMsg":"m","errorCode":null}`, ""},
		{"missing", `{"errorMsg":"m"}`, ""},
		{"escaped string", `{"errorCode":"a\"b\u00e9"}`, "a\"bé"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseEvent(setPayload(t, "errorDetails", tt.raw))
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			if ev.Payload.ErrorDetails == nil {
				t.Fatal("errorDetails is nil")
			}
			if got := ev.Payload.ErrorDetails.ErrorCode; got != tt.want {
				t.Errorf("errorCode = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFieldError(t *testing.T) {
	err := error(&FieldError{Field: "payload.callId", Problem: "required for CALL_ACTION"})
	if got, want := err.Error(), "payload.callId: required for CALL_ACTION"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrInvalidEvent) {
		t.Error("FieldError does not match ErrInvalidEvent")
	}
	wrapped := errors.Join(errors.New("ingest"), err)
	if !errors.Is(wrapped, ErrInvalidEvent) {
		t.Error("wrapped FieldError does not match ErrInvalidEvent")
	}
	for _, other := range []error{ErrInvalidResponse, ErrInvalidRecord, ErrInvalidNumber} {
		if errors.Is(err, other) {
			t.Errorf("FieldError matches %v", other)
		}
	}
}

func TestRecordID(t *testing.T) {
	summary := readFixture(t, "session_summary.json")
	vnu := readFixture(t, "virtual_number_update.json")
	parse := func(t *testing.T, body []byte) *Event {
		t.Helper()
		ev, err := ParseEvent(body)
		if err != nil {
			t.Fatalf("ParseEvent: %v", err)
		}
		return ev
	}

	t.Run("eventId when present", func(t *testing.T) {
		for _, file := range []string{"call_action.json", "call_action_completed.json", "call_status.json"} {
			body := readFixture(t, file)
			ev := parse(t, body)
			if got := ev.RecordID(body); got != ev.Payload.EventID {
				t.Errorf("%s: RecordID = %q, want eventId %q", file, got, ev.Payload.EventID)
			}
			// A resend that differs in anything but the eventId keeps the id.
			other := editEvent(t, body, func(_, p map[string]any) { p["timestamp"] = "2030-01-01T00:00:00Z" })
			if got := parse(t, other).RecordID(other); got != ev.Payload.EventID {
				t.Errorf("%s: changed body: RecordID = %q, want %q", file, got, ev.Payload.EventID)
			}
		}
	})

	t.Run("eventId on an unknown type", func(t *testing.T) {
		body := []byte(`{"namespace":"VOICE","eventType":"NEW","payload":{"eventId":"e-1"}}`)
		if got := parse(t, body).RecordID(body); got != "e-1" {
			t.Errorf("RecordID = %q, want e-1", got)
		}
	})

	t.Run("hash format", func(t *testing.T) {
		for _, body := range [][]byte{summary, vnu} {
			id := parse(t, body).RecordID(body)
			if len(id) != 32 {
				t.Errorf("RecordID %q has length %d, want 32", id, len(id))
			}
			if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
				t.Errorf("RecordID %q is not lower-case hex", id)
			}
		}
	})

	t.Run("golden", func(t *testing.T) {
		// Resends after a deploy must get the id earlier builds gave them:
		// changing the hash breaks de-duplication in JetStream and ClickHouse.
		body := []byte(`{"namespace":"VOICE","eventType":"SESSION_SUMMARY","payload":{"sessionId":"s-1","subAccountId":"acct"}}`)
		const want = "b47c4e0e0115d165347be657b3aa8f1f"
		if got := parse(t, body).RecordID(body); got != want {
			t.Errorf("RecordID = %s, want %s", got, want)
		}
		// The same value, recomputed from the documented recipe: sha256 over
		// the event type, session, call and sub-account ids (each followed by
		// a zero byte) and the body; the first 16 bytes in hex.
		var in []byte
		for _, s := range []string{"SESSION_SUMMARY", "s-1", "", "acct"} {
			in = append(append(in, s...), 0)
		}
		sum := sha256.Sum256(append(in, body...))
		if got := hex.EncodeToString(sum[:16]); got != want {
			t.Errorf("recipe gives %s, want %s", got, want)
		}
	})

	t.Run("same body same id", func(t *testing.T) {
		for _, body := range [][]byte{summary, vnu} {
			a := parse(t, body).RecordID(body)
			copyBody := slices.Clone(body)
			b := parse(t, copyBody).RecordID(copyBody)
			if a != b {
				t.Errorf("RecordID differs for identical bodies: %s vs %s", a, b)
			}
			if c := parse(t, body).RecordID(body); c != a {
				t.Errorf("RecordID not deterministic: %s vs %s", a, c)
			}
		}
	})

	t.Run("different body different id", func(t *testing.T) {
		variants := map[string][]byte{
			"summary":         summary,
			"vnu":             vnu,
			"other endTime":   editEvent(t, summary, func(_, p map[string]any) { p["endTime"] = "2019-10-16T08:12:41Z" }),
			"other session":   editEvent(t, summary, func(_, p map[string]any) { p["sessionId"] = "other" }),
			"other status":    editEvent(t, summary, func(_, p map[string]any) { p["sessionStatus"] = "COMPLETED" }),
			"other vn status": bytes.Replace(vnu, []byte(`"Unhealthy"`), []byte(`"Active"`), 1),
			"other vn type":   bytes.Replace(vnu, []byte(`"SNAPSHOT"`), []byte(`"UPDATES"`), 1),
			"re-encoded":      editEvent(t, summary, func(_, _ map[string]any) {}),
			"other type":      editEvent(t, summary, func(env, _ map[string]any) { env["eventType"] = "SESSION_SUMMARY_V2" }),
		}
		seen := map[string]string{}
		for name, body := range variants {
			id := parse(t, body).RecordID(body)
			if prev, dup := seen[id]; dup {
				t.Errorf("%s and %s share RecordID %s", name, prev, id)
			}
			seen[id] = name
		}
	})

	t.Run("ids are part of the hash", func(t *testing.T) {
		// Same body bytes, different parsed ids: the ids must change the id.
		body := []byte(`{}`)
		a := (&Event{EventType: "X", Payload: &Payload{SessionID: "ab", CallID: "c"}}).RecordID(body)
		b := (&Event{EventType: "X", Payload: &Payload{SessionID: "a", CallID: "bc"}}).RecordID(body)
		c := (&Event{EventType: "Y", Payload: &Payload{SessionID: "ab", CallID: "c"}}).RecordID(body)
		if a == b || a == c || b == c {
			t.Errorf("ids collide: %s %s %s", a, b, c)
		}
	})
}

func TestEventTime(t *testing.T) {
	tests := []struct {
		name      string
		timestamp string
		startTime string
		want      time.Time
	}{
		{"timestamp", "2019-10-16T08:12:01Z", "", time.Date(2019, 10, 16, 8, 12, 1, 0, time.UTC)},
		{"timestamp with nanoseconds", "2019-10-16T08:12:01.123456789Z", "", time.Date(2019, 10, 16, 8, 12, 1, 123456789, time.UTC)},
		{"timestamp with offset", "2019-10-16T16:12:01+08:00", "", time.Date(2019, 10, 16, 8, 12, 1, 0, time.UTC)},
		{"timestamp wins over startTime", "2019-10-16T08:12:01Z", "2000-01-01T00:00:00Z", time.Date(2019, 10, 16, 8, 12, 1, 0, time.UTC)},
		{"startTime when no timestamp", "", "2019-10-16T08:12:01Z", time.Date(2019, 10, 16, 8, 12, 1, 0, time.UTC)},
		{"startTime when timestamp does not parse", "yesterday", "2019-10-16T08:12:01Z", time.Date(2019, 10, 16, 8, 12, 1, 0, time.UTC)},
		{"neither parses", "2019-10-16 08:12:01", "16/10/2019", time.Time{}},
		{"none", "", "", time.Time{}},
		{"epoch seconds are not RFC 3339", "1571213521", "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &Event{EventType: "X", Payload: &Payload{Timestamp: tt.timestamp, StartTime: tt.startTime}}
			got := ev.Time()
			if !got.Equal(tt.want) || got.IsZero() != tt.want.IsZero() {
				t.Errorf("Time() = %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParseEvent(f *testing.F) {
	for _, file := range []string{"call_action.json", "call_action_completed.json", "call_status.json", "session_summary.json", "virtual_number_update.json"} {
		f.Add(readFixture(f, file))
	}
	for _, s := range []string{
		``, `null`, `[]`, `{}`, `{"payload":{}}`, `{"namespace":"V","eventType":"E","payload":{}}`,
		`{"namespace":"V","eventType":"CALL_ACTION","payload":{"sipCode":1.5}}`,
		`{"namespace":"V","eventType":"SESSION_SUMMARY","payload":{"sessionId":"s","errorDetails":{"errorCode":"x"}}}`,
		`{"namespace":"V","eventType":"X","payload":{"eventData":{"dtmf":"12#","asrCaptured":null}}}`,
		`{"namespace":"V","eventType":"X","payload":{"eventData":"{\"dtmf\":\"1\"}"}}`,
		`{"namespace":"V","eventType":"X","payload":{"eventData":[]}}`,
		`{"namespace":"V","eventType":"X","payload":{"eventData":{"dtmf":1}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := ParseEvent(body)
		// The archiver's parse, which shares the body, reads the same.
		if sh, serr := ParseEventShared(bytes.Clone(body)); (serr == nil) != (err == nil) || (err == nil && !reflect.DeepEqual(sh, ev)) {
			t.Fatalf("ParseEventShared = %+v, %v; ParseEvent = %+v, %v", sh, serr, ev, err)
		}
		if err != nil {
			var fe *FieldError
			if ev != nil || !errors.Is(err, ErrInvalidEvent) || !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("bad error %v (event %v)", err, ev)
			}
			return
		}
		if ev.Payload == nil || ev.Namespace == "" || ev.EventType == "" {
			t.Fatalf("accepted an incomplete event: %+v", ev)
		}
		p := ev.Payload
		for _, v := range []Int{p.SipCode, p.CallDuration, p.CallCount} {
			if v < 0 {
				t.Fatalf("accepted a negative integer: %+v", p)
			}
		}
		if p.SipCode > 699 || p.CallDuration > math.MaxInt32 || p.CallCount > math.MaxInt32 {
			t.Fatalf("accepted an out-of-range integer: %+v", p)
		}
		values := map[string]string{
			"eventId": p.EventID, "callId": p.CallID, "sessionId": p.SessionID,
			"subAccountId": p.SubAccountID, "source": p.Source, "destination": p.Destination,
		}
		for _, id := range requiredByType[ev.EventType] {
			if values[id] == "" {
				t.Fatalf("accepted a %s without %s", ev.EventType, id)
			}
		}
		id := ev.RecordID(body)
		if id == "" || id != ev.RecordID(slices.Clone(body)) {
			t.Fatalf("RecordID %q is empty or not deterministic", id)
		}
		if p.DTMF != "" && !bytes.Contains(body, []byte("eventData")) && !bytes.Contains(body, []byte(`\u`)) {
			t.Fatalf("dtmf %q from a body without eventData", p.DTMF)
		}
	})
}

func BenchmarkParseEvent(b *testing.B) {
	body := readFixture(b, "call_action.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseEvent(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordIDHash(b *testing.B) {
	body := readFixture(b, "session_summary.json")
	ev, err := ParseEvent(body)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = ev.RecordID(body)
	}
}

// TestIntWholeNumbers: an integer written as a whole decimal (200.0, 2e2)
// is still an integer; a real fraction is the wrong type, however close to
// a whole number (a float64 would round 200.00000000000000001 to 200).
func TestIntWholeNumbers(t *testing.T) {
	tests := []struct {
		raw     string
		want    Int
		wantErr bool
	}{
		{"200", 200, false},
		{"200.0", 200, false},
		{"2e2", 200, false},
		{"2.00e2", 200, false},
		{"20000e-2", 200, false},
		{"6.99e2", 699, false},
		{"-0", 0, false},
		{"-0.0e-400", 0, false},
		{"1.5", 0, true},
		{"200.00000000000000001", 0, true},
		{"2000000000000000000001e-19", 0, true},
		{"199.99999999999999999", 0, true},
		{"6.991e2", 0, true},
		{"7e2", 0, true},
		{"1e-400", 0, true},
		{"1e400", 0, true},
		{`"200"`, 0, true},
		{"1e40", 0, true},
		{"true", 0, true},
	}
	for _, tt := range tests {
		body := `{"namespace":"VOICE","eventType":"X","payload":{"sipCode":` + tt.raw + `}}`
		ev, err := ParseEvent([]byte(body))
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), "payload.sipCode") {
				t.Errorf("sipCode %s: err = %v, want one naming payload.sipCode", tt.raw, err)
			}
			continue
		}
		if err != nil || ev.Payload.SipCode != tt.want {
			t.Errorf("sipCode %s: %v, %v; want %d", tt.raw, ev, err, tt.want)
		}
	}
}

// TestParseEventDuplicateKeys pins the choice for events: of a key given
// twice the last wins, at every level, and an object given twice is the
// last one whole: the body means what a generic JSON reader
// (encoding/json into map[string]any, JSON.parse) makes of it. 8x8 events
// are accepted as they come (a 400 leaves a caller in silence), and every
// reader of the recorded body (the ingest, the archiver) parses it with
// ParseEvent, so they all agree on its meaning.
func TestParseEventDuplicateKeys(t *testing.T) {
	seed := string(readFixture(t, "call_action.json"))
	dup := func(old, new string) string {
		if !strings.Contains(seed, old) {
			t.Fatalf("the fixture lacks %s", old)
		}
		return strings.Replace(seed, old, new, 1)
	}
	tests := []struct {
		name string
		body string
	}{
		{"eventType", dup(`"eventType": "CALL_ACTION"`, `"eventType": "CALL_STATUS", "eventType": "CALL_ACTION"`)},
		{"eventType, the last not a call", dup(`"eventType": "CALL_ACTION"`, `"eventType": "CALL_ACTION", "eventType": "CALL_STATUS"`)},
		{"subAccountId", dup(`"subAccountId": "your_subaccount_id"`, `"subAccountId": "first", "subAccountId": "second"`)},
		{"sipCode", dup(`"sipCode": 200`, `"sipCode": 486, "sipCode": 200`)},
		{"escaped key", dup(`"source": "+65123456789"`, `"source": "+65123456789", "sourc\u0065": "+6500000000"`)},
		{"payload, the first incomplete", dup(`"payload": {`, `"payload": {"eventId": "p1"}, "payload": {`)},
		// encoding/json into the Event struct would merge the two payloads
		// and keep this clientActionId; the last payload has none.
		{"payload, the first with a field the last lacks", dup(`"payload": {`, `"payload": {"clientActionId": "p1"}, "payload": {`)},
		{"errorDetails", dup(`"sipCode": 200`, `"sipCode": 200, "errorDetails": {"errorMsg": "m", "errorCode": 1}, "errorDetails": {"errorCode": "2"}`)},
		// The last eventData counts whole: its absent asrCaptured is not
		// the first's, and an older 8x8's string clears the digits.
		{"eventData, the last without asrCaptured", dup(`"sipCode": 200`, `"sipCode": 200, "eventData": {"dtmf": "1", "asrCaptured": "one"}, "eventData": {"dtmf": "2"}`)},
		{"eventData, the last a string", dup(`"sipCode": 200`, `"sipCode": 200, "eventData": {"dtmf": "1"}, "eventData": "dtmf=1"`)},
		{"eventData, the last null", dup(`"sipCode": 200`, `"sipCode": 200, "eventData": {"dtmf": "1"}, "eventData": null`)},
		{"dtmf twice", dup(`"sipCode": 200`, `"sipCode": 200, "eventData": {"dtmf": "1", "dtmf": "2"}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseEvent([]byte(tt.body))
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			// The body with each duplicated key kept once, its last value.
			dec := json.NewDecoder(strings.NewReader(tt.body))
			dec.UseNumber()
			var generic any
			if err := dec.Decode(&generic); err != nil {
				t.Fatal(err)
			}
			once, err := json.Marshal(generic)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ParseEvent(once)
			if err != nil {
				t.Fatalf("ParseEvent(%s): %v", once, err)
			}
			if !reflect.DeepEqual(ev, want) {
				t.Errorf("ParseEvent reads\n%+v %+v\nwant, as the body keeping each key's last value\n%+v %+v", *ev, *ev.Payload, *want, *want.Payload)
			}
		})
	}
}

// TestParseEventData: payload.eventData is an object whose dtmf and
// asrCaptured (nullable strings) are read into Payload.DTMF and ASR; null
// and a string (an older 8x8's eventData) are accepted and read as no
// data; another type, or a dtmf or asrCaptured that is not a string, is
// the wrong type, named in the error.
func TestParseEventData(t *testing.T) {
	tests := []struct {
		name      string
		raw       string // payload.eventData, "" for absent
		dtmf, asr string
		field     string // the field the error names; "" when accepted
	}{
		{"absent", "", "", "", ""},
		{"dtmf", `{"dtmf":"1234#"}`, "1234#", "", ""},
		{"asrCaptured", `{"asrCaptured":"sales please"}`, "", "sales please", ""},
		{"both", `{"dtmf":"2","asrCaptured":"two"}`, "2", "two", ""},
		{"both null", `{"dtmf":null,"asrCaptured":null}`, "", "", ""},
		{"empty dtmf", `{"dtmf":""}`, "", "", ""},
		{"star and hash", `{"dtmf":"*0#"}`, "*0#", "", ""},
		{"escaped dtmf", `{"dtmf":"\u0031\u0032"}`, "12", "", ""},
		{"unknown keys", `{"dtmf":"5","confidence":0.93,"extra":{"a":[1,null]}}`, "5", "", ""},
		{"empty object", `{}`, "", "", ""},
		{"null", `null`, "", "", ""},
		{"older 8x8: a string", `"dtmf=1234"`, "", "", ""},
		{"older 8x8: JSON in a string", `"{\"dtmf\":\"1234\"}"`, "", "", ""},
		{"empty string", `""`, "", "", ""},

		{"number", `12`, "", "", "payload.eventData"},
		{"bool", `true`, "", "", "payload.eventData"},
		{"array", `["1"]`, "", "", "payload.eventData"},
		{"dtmf number", `{"dtmf":1234}`, "", "", "payload.eventData.dtmf"},
		{"dtmf array", `{"dtmf":["1"]}`, "", "", "payload.eventData.dtmf"},
		{"dtmf object", `{"dtmf":{"digits":"1"}}`, "", "", "payload.eventData.dtmf"},
		{"asrCaptured bool", `{"asrCaptured":false}`, "", "", "payload.eventData.asrCaptured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := setPayload(t, "eventData", tt.raw)
			ev, err := ParseEvent(body)
			if tt.field != "" {
				checkInvalidEvent(t, ev, err, tt.field)
				return
			}
			if err != nil {
				t.Fatalf("ParseEvent: %v\nbody: %s", err, body)
			}
			if ev.Payload.DTMF != tt.dtmf || ev.Payload.ASR != tt.asr {
				t.Errorf("dtmf %q, asr %q; want %q, %q", ev.Payload.DTMF, ev.Payload.ASR, tt.dtmf, tt.asr)
			}
			if got := ev.DecideRequest().DTMF; got != tt.dtmf {
				t.Errorf("DecideRequest().DTMF = %q, want %q", got, tt.dtmf)
			}
			// Nothing else of the payload changes.
			p := *ev.Payload
			p.DTMF, p.ASR = "", ""
			if !reflect.DeepEqual(p, seedPayload) {
				t.Errorf("payload = %+v", p)
			}
		})
	}
}

// BenchmarkParseEventWithDTMF parses a CALL_ACTION that answers a
// sayAndCapture: reading eventData costs no allocation.
func BenchmarkParseEventWithDTMF(b *testing.B) {
	body := readFixture(b, "call_action_completed.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseEvent(body); err != nil {
			b.Fatal(err)
		}
	}
}
