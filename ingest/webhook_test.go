package ingest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/callflow/callflow/decider"
	"github.com/callflow/callflow/wire"
)

func TestSeedCallActionInSession(t *testing.T) {
	e := newEnv(t, envOptions{deciders: 2})
	sess := e.seedSession()
	body := seedBody(t)

	a := e.post(body)
	cf := wantCallflow(t, a)
	if cf.ClientActionID != sess.ID {
		t.Errorf("clientActionId = %q, want the session id %q", cf.ClientActionID, sess.ID)
	}
	if len(cf.Callflow) != 1 || cf.Callflow[0].Action != wire.ActionMakeCall {
		t.Fatalf("callflow = %s, want one makeCall", a.body)
	}
	p := cf.Callflow[0].Params
	if p["source"] != seedDestination || p["destination"] != otherParty {
		t.Errorf("makeCall params = %v, want source %s (the virtual number), destination %s", p, seedDestination, otherParty)
	}

	m := e.recordOf(seedEventID)
	checkRecord(t, m, seedEventID, wire.EventCallAction, "calls.CALL_ACTION."+seedSubAccount, body)
	d := m.rec.Decision
	if d == nil {
		t.Fatal("record has no decision")
	}
	if d.Source != wire.SourceDecider || d.Outcome != wire.OutcomeConnect || d.FallbackReason != "" {
		t.Errorf("decision = %+v, want decider/connect without fallback reason", d)
	}
	if d.LatencyMicros <= 0 || d.LatencyMicros > e.cfg.DecideTimeout.Microseconds() {
		t.Errorf("decision latency = %dus, want > 0 and within the decide timeout", d.LatencyMicros)
	}
	if !bytes.Equal(d.Callflow, a.body) {
		t.Errorf("recorded callflow = %s, answered %s", d.Callflow, a.body)
	}
	if s := e.srv.Stats(); s.Requests != 1 || s.Decided != 1 || s.Recorded != 1 || s.Fallbacks != 0 || s.Rejected != 0 || s.Spooled != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestCallActionFromOtherParticipant(t *testing.T) {
	e := newEnv(t, envOptions{deciders: 1})
	e.seedSession()
	// The other participant calls back the virtual number, with the
	// number written without a +: the decider normalizes it.
	a := e.post(event(t, "", map[string]any{"eventId": "ev-back", "source": strings.TrimPrefix(otherParty, "+")}))
	cf := wantCallflow(t, a)
	if len(cf.Callflow) != 1 || cf.Callflow[0].Params["destination"] != seedSource || cf.Callflow[0].Params["source"] != seedDestination {
		t.Errorf("callflow = %s, want makeCall from %s to %s", a.body, seedDestination, seedSource)
	}
}

func TestCallActionOutOfSession(t *testing.T) {
	e := newEnv(t, envOptions{deciders: 2})
	body := seedBody(t)
	a := e.post(body)
	wantSayHangup(t, a, wire.ClientActionOutOfSession, decider.DefaultOutOfSession.Text)

	m := e.recordOf(seedEventID)
	checkRecord(t, m, seedEventID, wire.EventCallAction, "calls.CALL_ACTION."+seedSubAccount, body)
	if d := m.rec.Decision; d == nil || d.Source != wire.SourceDecider || d.Outcome != wire.OutcomeOutOfSession || d.FallbackReason != "" {
		t.Errorf("decision = %+v, want decider/out_of_session", d)
	}
	if s := e.srv.Stats(); s.Decided != 1 || s.Fallbacks != 0 {
		t.Errorf("stats = %+v: out of session is a decision, not a fallback", s)
	}
}

// A CALL_ACTION whose numbers are not usable is not a 400: the caller gets
// the out-of-session answer (DECISIONS: "The webhook").
func TestCallActionUnusableNumbersGetOutOfSession(t *testing.T) {
	e := newEnv(t, envOptions{deciders: 1})
	e.seedSession()
	for i, p := range []map[string]any{
		{"source": "anonymous"},
		{"destination": "12"},
		{"source": "+0123456789"},
	} {
		p["eventId"] = "bad-number-" + string(rune('a'+i))
		a := e.post(event(t, "", p))
		wantSayHangup(t, a, wire.ClientActionOutOfSession, decider.DefaultOutOfSession.Text)
	}
	if n := e.count(); n != 3 {
		t.Errorf("%d records, want 3", n)
	}
}

func TestOtherEventsAreAcknowledgedAndRecorded(t *testing.T) {
	e := newEnv(t, envOptions{deciders: 1})
	cases := []struct {
		name, eventType string
		payload         map[string]any
		subject         string
		wantID          string // empty: a derived id
	}{
		{"call status", wire.EventCallStatus,
			map[string]any{"eventId": "status-1", "callStatus": "CALL_CONNECTED"},
			"calls.CALL_STATUS." + seedSubAccount, "status-1"},
		{"session summary", wire.EventSessionSummary,
			map[string]any{"eventId": nil, "callId": nil, "sessionStatus": "COMPLETED", "callCount": 2},
			"calls.SESSION_SUMMARY." + seedSubAccount, ""},
		{"virtual number update", wire.EventVirtualNumberUpdate,
			map[string]any{"eventId": nil, "callId": nil, "sessionId": nil, "subAccountId": nil},
			"calls.VIRTUAL_NUMBER_UPDATE._", ""},
		{"unknown type with unknown fields", "CALL_RECORDING_READY",
			map[string]any{"eventId": "rec-1", "recordingUrl": "https://example.com/r.mp3", "callStatus": "SOMETHING_NEW"},
			"calls.CALL_RECORDING_READY." + seedSubAccount, "rec-1"},
		{"unsafe event type", "NEW.TYPE >*",
			map[string]any{"eventId": "weird-1", "subAccountId": "a.b c*"},
			"calls.NEW_TYPE___.a_b_c_", "weird-1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := event(t, c.eventType, c.payload)
			a := e.post(body)
			if a.status != http.StatusOK {
				t.Fatalf("status = %d, want 200: %s", a.status, a.body)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var ack struct {
				Status string `json:"status"`
				ID     string `json:"id"`
			}
			if err := decodeStrict(a.body, &ack); err != nil {
				t.Fatalf("ack %s: %v", a.body, err)
			}
			if ack.Status != "received" || ack.ID == "" {
				t.Errorf("ack = %s", a.body)
			}
			if c.wantID != "" && ack.ID != c.wantID {
				t.Errorf("ack id = %q, want the eventId %q", ack.ID, c.wantID)
			}
			if c.wantID == "" && len(ack.ID) != 32 {
				t.Errorf("derived id = %q, want 32 hex digits", ack.ID)
			}
			m := e.recordOf(ack.ID)
			checkRecord(t, m, ack.ID, c.eventType, c.subject, body)
			if m.rec.Decision != nil {
				t.Errorf("a %s record has a decision: %+v", c.eventType, m.rec.Decision)
			}
		})
	}
	if s := e.srv.Stats(); s.Decided != 0 || s.Fallbacks != 0 || s.Recorded != uint64(len(cases)) {
		t.Errorf("stats = %+v", s)
	}
}

func TestSubjectTokensAreSanitized(t *testing.T) {
	e := newEnv(t, envOptions{deciders: 1})
	for _, c := range []struct{ sub, subject string }{
		{"a.b c*", "calls.CALL_ACTION.a_b_c_"},
		{"x>y\tz", "calls.CALL_ACTION.x_y_z"},
		{"été", "calls.CALL_ACTION._t_"},
	} {
		id := "sub-" + c.subject
		body := event(t, "", map[string]any{"eventId": id, "subAccountId": c.sub})
		wantCallflow(t, e.post(body))
		m := e.recordOf(id)
		checkRecord(t, m, id, wire.EventCallAction, c.subject, body)
	}
}

func TestDuplicateWebhookIsStoredOnce(t *testing.T) {
	e := newEnv(t, envOptions{deciders: 2})
	e.seedSession()
	body := seedBody(t)
	first := e.post(body)
	second := e.post(body)
	wantCallflow(t, first)
	wantCallflow(t, second)
	if !bytes.Equal(first.body, second.body) {
		t.Errorf("answers differ: %s vs %s", first.body, second.body)
	}
	if n := e.count(); n != 1 {
		t.Fatalf("%d messages in the stream after posting one webhook twice, want 1", n)
	}
	e.recordOf(seedEventID)

	// An event without an eventId gets a derived id: its repeat is a
	// duplicate too, and another summary is not.
	summary := event(t, wire.EventSessionSummary, map[string]any{"eventId": nil, "sessionStatus": "COMPLETED"})
	other := event(t, wire.EventSessionSummary, map[string]any{"eventId": nil, "sessionStatus": "FAILED"})
	var ids []string
	for _, b := range [][]byte{summary, summary, other} {
		a := e.post(b)
		if a.status != http.StatusOK {
			t.Fatalf("summary: %s", a)
		}
		var ack struct{ ID string }
		if err := json.Unmarshal(a.body, &ack); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ack.ID)
	}
	if ids[0] != ids[1] || ids[0] == ids[2] {
		t.Errorf("derived ids %v: want the repeat to share the first's id and another summary to differ", ids)
	}
	if n := e.count(); n != 3 {
		t.Errorf("%d messages in the stream, want 3 (seed, summary once, other summary)", n)
	}
	checkRecord(t, e.recordOf(ids[0]), ids[0], wire.EventSessionSummary, "calls.SESSION_SUMMARY."+seedSubAccount, summary)
	if s := e.srv.Stats(); s.Requests != 5 || s.Recorded != 5 {
		t.Errorf("stats = %+v: every post is answered and acknowledged (duplicates too)", s)
	}
}

func TestBadInputIsRejected(t *testing.T) {
	e := newEnv(t, envOptions{deciders: 1})
	seed := seedBody(t)
	cases := []struct {
		name  string
		body  []byte
		field string
	}{
		{"empty body", nil, "body"},
		{"malformed JSON", seed[:len(seed)/2], "body"},
		{"trailing garbage", append(append([]byte{}, seed...), "}x"...), "body"},
		{"array", []byte(`[1,2]`), "body"},
		{"string", []byte(`"CALL_ACTION"`), "body"},
		{"null", []byte(`null`), "body"},
		{"missing payload", []byte(`{"namespace":"VOICE","eventType":"CALL_ACTION"}`), "payload"},
		{"null payload", []byte(`{"namespace":"VOICE","eventType":"CALL_ACTION","payload":null}`), "payload"},
		{"payload not an object", []byte(`{"namespace":"VOICE","eventType":"CALL_ACTION","payload":"x"}`), "payload"},
		{"payload array", []byte(`{"namespace":"VOICE","eventType":"CALL_ACTION","payload":[]}`), "payload"},
		{"missing namespace", []byte(`{"eventType":"CALL_STATUS","payload":{"eventId":"1","callId":"2","sessionId":"3"}}`), "namespace"},
		{"missing eventType", []byte(`{"namespace":"VOICE","payload":{"eventId":"1"}}`), "eventType"},
		{"eventType a number", []byte(`{"namespace":"VOICE","eventType":7,"payload":{}}`), "eventType"},
		{"eventId a number", event(t, "", map[string]any{"eventId": 123}), "payload.eventId"},
		{"source a number", event(t, "", map[string]any{"source": 6512345678}), "payload.source"},
		{"callDuration a string", event(t, "", map[string]any{"callDuration": "5"}), "payload.callDuration"},
		{"callDuration negative", event(t, "", map[string]any{"callDuration": -1}), "payload.callDuration"},
		{"sipCode a fraction", event(t, "", map[string]any{"sipCode": 200.5}), "payload.sipCode"},
		{"sipCode out of range", event(t, "", map[string]any{"sipCode": 700}), "payload.sipCode"},
		{"sipCode huge", event(t, "", map[string]any{"sipCode": 1e30}), "payload.sipCode"},
		{"callCount a bool", event(t, wire.EventSessionSummary, map[string]any{"callCount": true}), "payload.callCount"},
	}
	for _, f := range []string{"eventId", "callId", "sessionId", "subAccountId", "source", "destination"} {
		cases = append(cases, struct {
			name  string
			body  []byte
			field string
		}{"CALL_ACTION without " + f, event(t, "", map[string]any{f: nil}), "payload." + f})
		cases = append(cases, struct {
			name  string
			body  []byte
			field string
		}{"CALL_ACTION with empty " + f, event(t, "", map[string]any{f: ""}), "payload." + f})
	}
	for _, f := range []string{"eventId", "callId", "sessionId"} {
		cases = append(cases, struct {
			name  string
			body  []byte
			field string
		}{"CALL_STATUS without " + f, event(t, wire.EventCallStatus, map[string]any{f: nil}), "payload." + f})
	}
	cases = append(cases, struct {
		name  string
		body  []byte
		field string
	}{"SESSION_SUMMARY without sessionId", event(t, wire.EventSessionSummary, map[string]any{"sessionId": nil}), "payload.sessionId"})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, e.post(c.body), http.StatusBadRequest, c.field)
		})
	}
	if n := e.count(); n != 0 {
		t.Errorf("%d records after only bad input, want 0", n)
	}
	if s := e.srv.Stats(); s.Rejected != uint64(len(cases)) || s.Requests != uint64(len(cases)) || s.Recorded != 0 || s.Decided != 0 {
		t.Errorf("stats = %+v, want %d rejected and nothing else", s, len(cases))
	}

	// What is not required for a type is not checked: a status without a
	// subAccountId, a summary with nothing but its sessionId.
	for _, b := range [][]byte{
		event(t, wire.EventCallStatus, map[string]any{"subAccountId": nil, "source": nil, "destination": nil}),
		[]byte(`{"namespace":"VOICE","eventType":"SESSION_SUMMARY","payload":{"sessionId":"s-1"}}`),
		[]byte(`{"namespace":"VOICE","eventType":"SOMETHING_ELSE","payload":{}}`),
	} {
		if a := e.post(b); a.status != http.StatusOK {
			t.Errorf("%s: %s, want 200", b, a)
		}
	}
}

func TestMethodsAndPaths(t *testing.T) {
	e := newEnv(t, envOptions{deciders: 1})
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		a, err := e.do(m, "/vca", strings.NewReader(""))
		if err != nil {
			t.Fatalf("%s /vca: %v", m, err)
		}
		wantError(t, a, http.StatusMethodNotAllowed, m)
		if allow := a.header.Get("Allow"); allow != "POST" {
			t.Errorf("%s /vca: Allow = %q, want POST", m, allow)
		}
	}
	for _, p := range []string{"/", "/vca/x", "/VCA", "/healthz", "/v1/sessions"} {
		a, err := e.do(http.MethodPost, p, bytes.NewReader(seedBody(t)))
		if err != nil {
			t.Fatalf("POST %s: %v", p, err)
		}
		wantError(t, a, http.StatusNotFound, "not found")
	}
	a, err := e.do(http.MethodGet, "/nowhere", nil)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, a, http.StatusNotFound, "/nowhere")
	// A query string does not change the path.
	a, err = e.do(http.MethodPost, "/vca?from=8x8", bytes.NewReader(seedBody(t)))
	if err != nil {
		t.Fatal(err)
	}
	wantCallflow(t, a)
	if n := e.count(); n != 1 {
		t.Errorf("%d records, want 1", n)
	}
}

func TestBodyLimit(t *testing.T) {
	const limit = 2048
	e := newEnv(t, envOptions{deciders: 1, cfg: func(c *Config) { c.MaxBody = limit }})

	// padded returns the seed with a description padded to n bytes total.
	padded := func(n int) []byte {
		b := event(t, "", map[string]any{"eventId": "pad-" + string(rune('0'+n%10))})
		pad := n - len(b)
		if pad < 0 {
			t.Fatalf("seed longer than %d", n)
		}
		return bytes.Replace(b, []byte(`"description":"`), []byte(`"description":"`+strings.Repeat("x", pad)), 1)
	}
	exact := padded(limit)
	if len(exact) != limit {
		t.Fatalf("padded body is %d bytes, want %d", len(exact), limit)
	}
	wantCallflow(t, e.post(exact))

	over := padded(limit + 1)
	wantError(t, e.post(over), http.StatusRequestEntityTooLarge, "limit")

	// Without a Content-Length (chunked), the limit holds as well.
	a, err := e.do(http.MethodPost, "/vca", io.MultiReader(bytes.NewReader(over)))
	if err != nil {
		t.Fatalf("chunked POST: %v", err)
	}
	wantError(t, a, http.StatusRequestEntityTooLarge, "limit")

	if n := e.count(); n != 1 {
		t.Errorf("%d records, want 1 (only the body at the limit)", n)
	}
	if s := e.srv.Stats(); s.Rejected != 2 {
		t.Errorf("stats = %+v, want 2 rejected", s)
	}
}

// A serve process decides in process: the answer and the record are the
// pool's, with no decider on NATS at all.
func TestLocalDeciderAnswersWithoutNATSDeciders(t *testing.T) {
	e := newEnv(t, envOptions{deciders: 1, local: true})
	sess := e.seedSession()
	// The decider leaves the pool: only the in-process path can answer.
	if err := e.cfg.Local.(*decider.Service).Stop(); err != nil {
		t.Fatalf("stop decider service: %v", err)
	}
	body := seedBody(t)
	a := e.post(body)
	cf := wantCallflow(t, a)
	if cf.ClientActionID != sess.ID || len(cf.Callflow) != 1 || cf.Callflow[0].Action != wire.ActionMakeCall {
		t.Fatalf("answer = %s, want the session's makeCall", a.body)
	}
	d := e.recordOf(seedEventID).rec.Decision
	if d == nil || d.Source != wire.SourceDecider || d.Outcome != wire.OutcomeConnect || !bytes.Equal(d.Callflow, a.body) {
		t.Fatalf("recorded decision = %+v, want the decider's connect with the answered callflow", d)
	}

	out := e.post(event(t, "", map[string]any{"eventId": "ev-stranger", "source": "+6590000000"}))
	wantSayHangup(t, out, wire.ClientActionOutOfSession, decider.DefaultOutOfSession.Text)
	if d := e.recordOf("ev-stranger").rec.Decision; d == nil || d.Outcome != wire.OutcomeOutOfSession {
		t.Fatalf("recorded decision = %+v, want out of session", d)
	}
	if s := e.srv.Stats(); s.Decided != 2 || s.Fallbacks != 0 {
		t.Errorf("stats = %+v, want 2 decided, no fallback", s)
	}
}
