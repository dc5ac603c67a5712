package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var sgt = time.FixedZone("SGT", 8*60*60)

func TestRecordRoundTrip(t *testing.T) {
	seed := readFixture(t, "call_action.json")
	connect := Response{ClientActionID: "eb0fc709", Callflow: []Action{MakeCall(vn, other, true)}}
	fallback := SayThenHangup("eb0fc709", Say{Text: "Sorry, \"please\" try again.\nGoodbye ☎", VoiceProfile: "en-US-ZiraRUS"})
	unicodeEvent := []byte("{\n  \"namespace\": \"VOICE\",\r\n\t\"eventType\": \"FUTURE\",\n  \"payload\": {\"note\": \"café ☎ 日本語 😀 \\u00e9 \\\"q\\\" \\\\ \\n\", \"n\": [1, 2.5, -3e2]}\n}\n")

	tests := []struct {
		name string
		rec  Record
	}{
		{"call action connected", Record{
			Version: RecordVersion, ID: "eb0fc709-9693-11ea-454d-1705dde98182", EventType: EventCallAction,
			ReceivedAt: time.Date(2024, 3, 1, 18, 0, 0, 123456789, sgt), Instance: "ingest-1",
			Decision: &Decision{Source: SourceDecider, Outcome: OutcomeConnect, LatencyMicros: 1234, Callflow: connect.JSON()},
			Event:    seed,
		}},
		{"call action fallback", Record{
			Version: RecordVersion, ID: "eb0fc709-9693-11ea-454d-1705dde98182", EventType: EventCallAction,
			ReceivedAt: time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC), Instance: "ingest-2",
			Decision: &Decision{Source: SourceFallback, Outcome: OutcomeFallback, FallbackReason: "timeout", LatencyMicros: 250000, Callflow: fallback.JSON()},
			Event:    seed,
		}},
		{"out of session, zero latency", Record{
			Version: RecordVersion, ID: "x", EventType: EventCallAction, ReceivedAt: time.Unix(1700000000, 1).UTC(), Instance: "i",
			Decision: &Decision{Source: SourceDecider, Outcome: OutcomeOutOfSession, Callflow: fallback.JSON()},
			Event:    seed,
		}},
		{"flow step with digits", Record{
			Version: RecordVersion, ID: "0c5a0f1e-9694-11ea-8a1b-2b1f7d0e9a11", EventType: EventCallAction,
			ReceivedAt: time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC), Instance: "ingest-1",
			Decision: &Decision{Source: SourceDecider, Outcome: OutcomeFlow, LatencyMicros: 80, VirtualNumber: "+65987654321",
				Flow: "main-menu", FlowVersion: 3, FlowStep: "driver", Digits: "1234#",
				Callflow: (&Response{ClientActionID: "flow:main-menu:3:driver:0", Callflow: []Action{SayAndCaptureAction(fullCapture)}}).JSON()},
			Event: readFixture(t, "call_action_completed.json"),
		}},
		{"session summary without decision", Record{
			Version: RecordVersion, ID: "b47c4e0e0115d165347be657b3aa8f1f", EventType: EventSessionSummary,
			ReceivedAt: time.Date(2019, 10, 16, 8, 12, 41, 0, time.UTC), Instance: "ingest-1",
			Event: readFixture(t, "session_summary.json"),
		}},
		{"event with newlines and unicode", Record{
			Version: RecordVersion, ID: "u-1", EventType: "FUTURE", ReceivedAt: time.Date(2030, 12, 31, 23, 59, 59, 999999999, time.UTC), Instance: "ingest-☎",
			Event: unicodeEvent,
		}},
		{"escaped strings", Record{
			Version: RecordVersion, ID: "id \"quoted\" \\ back\nline\x01", EventType: "TYPE\t\"x\"", ReceivedAt: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
			Instance: "host/ingest \u2028 日本", Event: []byte(`{}`),
		}},
		{"zero time, empty instance", Record{Version: RecordVersion, ID: "z", EventType: "X", Event: []byte(`{"a":1}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.rec.AppendJSON(nil)
			if !json.Valid(out) {
				t.Fatalf("invalid JSON:\n%s", out)
			}
			got, err := ParseRecord(out)
			if err != nil {
				t.Fatalf("ParseRecord: %v\n%s", err, out)
			}
			checkRecord(t, got, &tt.rec)
			shared, err := ParseRecordShared(bytes.Clone(out))
			if err != nil {
				t.Fatalf("ParseRecordShared: %v\n%s", err, out)
			}
			checkRecord(t, shared, &tt.rec)

			// encoding/json reads it the same way (the archiver may use it).
			var std Record
			if err := json.Unmarshal(out, &std); err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			checkRecord(t, &std, &tt.rec)

			prefix := []byte("PUB calls.X.y 10\r\n")
			if appended := tt.rec.AppendJSON(bytes.Clone(prefix)); !bytes.Equal(appended, append(prefix, out...)) {
				t.Errorf("AppendJSON does not append to dst")
			}
		})
	}
}

func checkRecord(t *testing.T, got, want *Record) {
	t.Helper()
	if got.Version != want.Version || got.ID != want.ID || got.EventType != want.EventType || got.Instance != want.Instance {
		t.Errorf("record header = %d %q %q %q, want %d %q %q %q",
			got.Version, got.ID, got.EventType, got.Instance, want.Version, want.ID, want.EventType, want.Instance)
	}
	if !got.ReceivedAt.Equal(want.ReceivedAt) {
		t.Errorf("receivedAt = %v, want %v", got.ReceivedAt, want.ReceivedAt)
	}
	if got.ReceivedAt.Location() != time.UTC {
		t.Errorf("receivedAt location = %v, want UTC", got.ReceivedAt.Location())
	}
	// The event is kept byte for byte, except for whitespace around the
	// document: JSON decoding does not keep it (see TestRecordEventOuterWhitespace).
	if !bytes.Equal(got.Event, bytes.TrimSpace(want.Event)) {
		t.Errorf("event not kept verbatim:\n%q\nwant\n%q", got.Event, want.Event)
	}
	if (got.Decision == nil) != (want.Decision == nil) {
		t.Fatalf("decision = %+v, want %+v", got.Decision, want.Decision)
	}
	if want.Decision != nil {
		g, w := *got.Decision, *want.Decision
		if !bytes.Equal(g.Callflow, w.Callflow) {
			t.Errorf("callflow = %s, want %s", g.Callflow, w.Callflow)
		}
		g.Callflow, w.Callflow = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Errorf("decision = %+v, want %+v", g, w)
		}
		if _, err := ParseResponse(got.Decision.Callflow); err != nil {
			t.Errorf("recorded callflow does not parse: %v", err)
		}
	}
}

// TestRecordEventOuterWhitespace documents that whitespace around the webhook
// body (a trailing newline, typically) does not survive a record round trip,
// while everything inside the document does. RecordID hashes the body as
// received, so a reader must use Record.ID, not recompute it from Event.
func TestRecordEventOuterWhitespace(t *testing.T) {
	body := []byte(" \n{\"a\" :\n [1,\t2] }\r\n")
	rec := Record{Version: RecordVersion, ID: "x", Event: body}
	got, err := ParseRecord(rec.AppendJSON(nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\"a\" :\n [1,\t2] }"; string(got.Event) != want {
		t.Errorf("event = %q, want %q", got.Event, want)
	}
}

func TestRecordAppendJSONExact(t *testing.T) {
	rec := Record{
		Version: 1, ID: "e-1", EventType: EventCallAction,
		ReceivedAt: time.Date(2024, 3, 1, 18, 0, 0, 120000000, sgt), Instance: "ingest-1",
		Decision: &Decision{Source: SourceFallback, Outcome: OutcomeFallback, FallbackReason: "breaker_open", LatencyMicros: 42,
			Callflow: []byte(`{"clientActionId":"c","callflow":[{"action":"hangup"}]}`)},
		Event: []byte(`{"namespace":"VOICE"}`),
	}
	want := `{"v":1,"id":"e-1","eventType":"CALL_ACTION","receivedAt":"2024-03-01T10:00:00.12Z","instance":"ingest-1",` +
		`"decision":{"source":"fallback","outcome":"fallback","fallbackReason":"breaker_open","latencyUs":42,` +
		`"callflow":{"clientActionId":"c","callflow":[{"action":"hangup"}]}},"event":{"namespace":"VOICE"}}`
	if got := string(rec.AppendJSON(nil)); got != want {
		t.Errorf("AppendJSON =\n%s\nwant\n%s", got, want)
	}

	rec.Decision.FallbackReason = ""
	rec.Decision.Source, rec.Decision.Outcome = SourceDecider, OutcomeConnect
	if got := string(rec.AppendJSON(nil)); strings.Contains(got, "fallbackReason") {
		t.Errorf("empty fallbackReason encoded: %s", got)
	}
	rec.Decision = nil
	want = `{"v":1,"id":"e-1","eventType":"CALL_ACTION","receivedAt":"2024-03-01T10:00:00.12Z","instance":"ingest-1","event":{"namespace":"VOICE"}}`
	if got := string(rec.AppendJSON(nil)); got != want {
		t.Errorf("without decision:\n%s\nwant\n%s", got, want)
	}
}

func TestParseRecordVersions(t *testing.T) {
	for v := 1; v <= RecordVersion; v++ {
		body := `{"v":` + strconv.Itoa(v) + `,"id":"x","eventType":"X","receivedAt":"2024-01-01T00:00:00Z","instance":"i","event":{}}`
		r, err := ParseRecord([]byte(body))
		if err != nil {
			t.Errorf("version %d refused: %v", v, err)
			continue
		}
		if r.Version != v {
			t.Errorf("version = %d, want %d", r.Version, v)
		}
	}
	// Unknown fields from a compatible writer are ignored.
	if _, err := ParseRecord([]byte(`{"v":1,"id":"x","event":{},"newField":[1,2],"decision":{"source":"decider","extra":true,"callflow":{}}}`)); err != nil {
		t.Errorf("unknown fields refused: %v", err)
	}
}

func TestParseRecordInvalid(t *testing.T) {
	newer := strconv.Itoa(RecordVersion + 1)
	tests := []struct {
		name    string
		body    string
		wantMsg string
	}{
		{"newer version", `{"v":` + newer + `,"id":"x","event":{}}`, "version " + newer},
		{"much newer version", `{"v":1000,"id":"x","event":{}}`, "version 1000"},
		{"version 0", `{"v":0,"id":"x","event":{}}`, "version 0"},
		{"negative version", `{"v":-1,"id":"x","event":{}}`, "version -1"},
		{"missing version", `{"id":"x","event":{}}`, "version 0"},
		{"version as string", `{"v":"1","id":"x","event":{}}`, ""},
		{"fractional version", `{"v":1.5,"id":"x","event":{}}`, ""},
		{"missing id", `{"v":1,"eventType":"X","event":{}}`, "no id"},
		{"empty id", `{"v":1,"id":"","event":{}}`, "no id"},
		{"null id", `{"v":1,"id":null,"event":{}}`, "no id"},
		{"missing event", `{"v":1,"id":"x","eventType":"X"}`, "no event"},
		// Once accepted: json.RawMessage kept the literal null as the event.
		{"null event", `{"v":1,"id":"x","event":null}`, "no event"},
		{"bad receivedAt", `{"v":1,"id":"x","receivedAt":"yesterday","event":{}}`, ""},
		{"malformed", `{"v":1,"id":"x","event":{}`, ""},
		{"empty", ``, ""},
		{"null", `null`, "not a JSON object"},
		{"array", `[]`, ""},
		{"raw webhook instead of a record", string(readFixture(t, "call_action.json")), "version 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := ParseRecordShared([]byte(tt.body)); err == nil || r != nil || !errors.Is(err, ErrInvalidRecord) {
				t.Errorf("ParseRecordShared: %+v, %v", r, err)
			}
			r, err := ParseRecord([]byte(tt.body))
			if err == nil {
				t.Fatalf("ParseRecord accepted %s: %+v", tt.body, r)
			}
			if r != nil {
				t.Errorf("ParseRecord returned a record with its error")
			}
			if !errors.Is(err, ErrInvalidRecord) {
				t.Errorf("errors.Is(%v, ErrInvalidRecord) = false", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestSubjectToken(t *testing.T) {
	long := strings.Repeat("a", 200)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"event type", "CALL_ACTION", "CALL_ACTION"},
		{"sub-account", "your_subaccount_id", "your_subaccount_id"},
		{"allowed punctuation", "acct-1=x/y:z$#@!~", "acct-1=x/y:z$#@!~"},
		{"empty", "", "_"},
		{"dot", "a.b", "a_b"},
		{"dots only", "..", "__"},
		{"star", "*", "_"},
		{"greater-than", ">", "_"},
		{"wildcard subject", "calls.>", "calls__"},
		{"space", "my account", "my_account"},
		{"whitespace", "a b\tc\nd\re\vf\fg", "a_b_c_d_e_f_g"},
		{"control characters", "a\x00b\x1fc\x7f", "a_b_c_"},
		{"one non-ASCII rune, one underscore", "café", "caf_"},
		{"CJK", "日本", "__"},
		{"emoji", "a😀b", "a_b"},
		{"invalid UTF-8 byte", "a\xffb", "a_b"},
		{"no-break space", "a\u00a0b", "a_b"},
		{"128 bytes kept", long[:128], long[:128]},
		{"129 bytes capped", long[:129], long[:128]},
		{"long capped", long, long[:128]},
		{"long with dots", strings.Repeat("a.", 100), strings.Repeat("a_", 64)},
		{"rune cut by the cap", long[:127] + "é" + "zzz", long[:127] + "_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SubjectToken(tt.in)
			if got != tt.want {
				t.Errorf("SubjectToken(%q) = %q, want %q", tt.in, got, tt.want)
			}
			checkToken(t, tt.in, got)
		})
	}
}

// checkToken asserts the properties of every sanitized token.
func checkToken(t *testing.T, in, tok string) {
	t.Helper()
	if tok == "" || len(tok) > 128 {
		t.Errorf("SubjectToken(%q) = %q: empty or longer than 128 bytes", in, tok)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c >= 0x7f || c == '.' || c == '*' || c == '>' {
			t.Errorf("SubjectToken(%q) = %q holds byte %#x", in, tok, c)
		}
	}
	if again := SubjectToken(tok); again != tok {
		t.Errorf("SubjectToken is not idempotent: %q -> %q", tok, again)
	}
}

func TestSubject(t *testing.T) {
	tests := []struct {
		eventType, subAccount, want string
	}{
		{EventCallAction, "your_subaccount_id", "calls.CALL_ACTION.your_subaccount_id"},
		{EventCallStatus, "acct-1", "calls.CALL_STATUS.acct-1"},
		{EventSessionSummary, "", "calls.SESSION_SUMMARY._"},
		{EventVirtualNumberUpdate, "acct", "calls.VIRTUAL_NUMBER_UPDATE.acct"},
		{"", "", "calls._._"},
		{"CALL.ACTION", "a.b.c", "calls.CALL_ACTION.a_b_c"},
		{"*", ">", "calls._._"},
		{"NEW EVENT", "acct *>", "calls.NEW_EVENT.acct___"},
		{"x", "café ☎", "calls.x.caf___"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := Subject(tt.eventType, tt.subAccount)
			if got != tt.want {
				t.Errorf("Subject(%q, %q) = %q, want %q", tt.eventType, tt.subAccount, got, tt.want)
			}
			tokens := strings.Split(got, ".")
			if len(tokens) != 3 || tokens[0] != SubjectPrefix {
				t.Errorf("Subject %q is not %s.<type>.<sub-account>", got, SubjectPrefix)
			}
		})
	}
}

func FuzzSubjectToken(f *testing.F) {
	for _, s := range []string{"", "CALL_ACTION", "a.b", "*>", "café", strings.Repeat("é", 100), "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := SubjectToken(s)
		checkToken(t, s, tok)
		if s != "" && len(s) <= 128 && utf8.ValidString(s) && utf8.RuneCountInString(s) != utf8.RuneCountInString(tok) {
			t.Fatalf("SubjectToken(%q) = %q: rune count changed", s, tok)
		}
		if subj := Subject(s, s); len(strings.Split(subj, ".")) != 3 {
			t.Fatalf("Subject(%q) = %q", s, subj)
		}
	})
}

func FuzzRecordJSON(f *testing.F) {
	f.Add("id", "CALL_ACTION", "ingest-1", int64(0), "timeout")
	f.Add("\"\\\n\xff", "☎", "", int64(-1), "")
	f.Fuzz(func(t *testing.T, id, eventType, instance string, latency int64, reason string) {
		if id == "" {
			id = "x"
		}
		rec := Record{
			Version: RecordVersion, ID: id, EventType: eventType, Instance: instance,
			ReceivedAt: time.Unix(0, latency).UTC(),
			Decision:   &Decision{Source: reason, Outcome: reason, FallbackReason: reason, LatencyMicros: latency, Callflow: []byte(`{}`)},
			Event:      []byte(`{"eventType":"x"}`),
		}
		out := rec.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %q", out)
		}
		got, err := ParseRecord(out)
		if err != nil {
			t.Fatalf("ParseRecord: %v", err)
		}
		if got.ID != stdRoundTrip(t, id) || got.EventType != stdRoundTrip(t, eventType) ||
			got.Instance != stdRoundTrip(t, instance) || got.Decision.LatencyMicros != latency ||
			got.Decision.FallbackReason != stdRoundTrip(t, reason) || !got.ReceivedAt.Equal(rec.ReceivedAt) {
			t.Fatalf("round trip %+v, want %+v", got, rec)
		}
	})
}

func BenchmarkRecordAppendJSON(b *testing.B) {
	resp := Response{ClientActionID: "c", Callflow: []Action{MakeCall(vn, other, false)}}
	rec := Record{
		Version: RecordVersion, ID: "eb0fc709-9693-11ea-454d-1705dde98182", EventType: EventCallAction,
		ReceivedAt: time.Now(), Instance: "ingest-1",
		Decision: &Decision{Source: SourceDecider, Outcome: OutcomeConnect, LatencyMicros: 800, Callflow: resp.JSON()},
		Event:    readFixture(b, "call_action.json"),
	}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		buf = rec.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkSubject(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = Subject(EventCallAction, "your_subaccount_id")
	}
}
