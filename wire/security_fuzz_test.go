package wire

// Fuzz tests of what strangers reach: the webhook body as the ingest
// records it, and the callflow encoder whose bytes 8x8 must parse. Their
// seed corpora live in testdata/fuzz/<FuzzName>/ (hostile seeds included);
// scripts/fuzz.sh runs each for a bounded time on top of them.

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzStd is s encoded and decoded by encoding/json: what a strict JSON
// reader makes of the string (invalid UTF-8 becomes U+FFFD).
func fuzzStd(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// fuzzCheckSubject checks that subject is calls.<token>.<token> with each
// token one clean NATS subject token: non-empty, at most 128 bytes, no
// '.', '*', '>', whitespace, control or non-ASCII byte.
func fuzzCheckSubject(t *testing.T, subject string) {
	t.Helper()
	tokens := strings.Split(subject, ".")
	if len(tokens) != 3 || tokens[0] != SubjectPrefix {
		t.Fatalf("subject %q is not %s.<type>.<sub-account>", subject, SubjectPrefix)
	}
	for _, tok := range tokens[1:] {
		if tok == "" || len(tok) > 128 {
			t.Fatalf("subject %q: empty or oversized token", subject)
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
				t.Fatalf("subject %q holds byte %q", subject, c)
			}
		}
	}
}

// FuzzWebhookRecord follows an accepted webhook body the way the ingest
// does: the record's subject is exactly three clean tokens under calls
// (no injection through eventType or subAccountId), its id is a plain
// token fit for a Nats-Msg-Id header, the record it is stored in is valid
// JSON that ParseRecord reads back with the body verbatim, the archiver's
// parse of the stored body gives the same event, and a CALL_ACTION's
// decide request round-trips through ParseDecideRequest.
func FuzzWebhookRecord(f *testing.F) {
	for _, file := range []string{"call_action.json", "call_action_completed.json", "call_status.json", "session_summary.json", "virtual_number_update.json"} {
		f.Add(readFixture(f, file))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := ParseEvent(body)
		if err != nil {
			return // refusals are FuzzParseEvent's
		}
		fuzzCheckSubject(t, Subject(ev.EventType, ev.Payload.SubAccountID))
		id := ev.RecordID(body)
		if id == "" || len(id) > 128 {
			t.Fatalf("record id %q", id)
		}
		for i := 0; i < len(id); i++ {
			if id[i] <= ' ' || id[i] >= 0x7f {
				t.Fatalf("record id %q holds byte %q: not fit for a header", id, id[i])
			}
		}
		rec := Record{
			Version: RecordVersion, ID: id, EventType: ev.EventType,
			ReceivedAt: time.Unix(1700000000, 123).UTC(), Instance: "fuzz", Event: body,
		}
		out := rec.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("record is not valid JSON: %q", out)
		}
		got, err := ParseRecord(out)
		if err != nil {
			t.Fatalf("ParseRecord: %v", err)
		}
		if got.ID != id || got.EventType != ev.EventType || !got.ReceivedAt.Equal(rec.ReceivedAt) {
			t.Fatalf("record round trip: %+v, want id %q type %q", got, id, ev.EventType)
		}
		if !bytes.Equal(got.Event, bytes.Trim(body, " \t\r\n")) {
			t.Fatalf("event not kept verbatim: %q, want %q", got.Event, body)
		}
		again, err := ParseEvent(got.Event)
		if err != nil {
			t.Fatalf("the stored event does not parse again: %v", err)
		}
		if !reflect.DeepEqual(again, ev) {
			t.Fatalf("the stored event parses to %+v, the webhook to %+v", again, ev)
		}
		if ev.EventType != EventCallAction {
			return
		}
		req := ev.DecideRequest()
		b := req.AppendJSON(nil)
		if !json.Valid(b) {
			t.Fatalf("decide request is not valid JSON: %q", b)
		}
		back, err := ParseDecideRequest(b)
		if err != nil {
			t.Fatalf("ParseDecideRequest: %v", err)
		}
		if back != req {
			t.Fatalf("decide request round trip: %+v, want %+v", back, req)
		}
	})
}

// fuzzResponse builds a callflow from the fuzzer's inputs: shape picks up
// to three actions among well-formed ones (makeCall, say, hangup) and
// malformed ones (an arbitrary action name, a say without params, a
// makeCall carrying say params, a hangup with params).
func fuzzResponse(shape uint32, id, name, text, voice, lang, src, dst string, rep int, speed float64, rec bool) Response {
	all := &Params{Source: src, Destination: dst, CallRecording: rec, Text: text, VoiceProfile: voice, Language: lang, Repetition: rep, Speed: speed}
	r := Response{ClientActionID: id}
	for i := range int(shape & 3) {
		switch (shape >> (2 + 3*i)) & 7 {
		case 0:
			r.Callflow = append(r.Callflow, MakeCall(src, dst, rec))
		case 1:
			r.Callflow = append(r.Callflow, SayAction(Say{Text: text, VoiceProfile: voice, Language: lang, Repetition: rep, Speed: speed}))
		case 2:
			r.Callflow = append(r.Callflow, Hangup())
		case 3:
			p := *all
			r.Callflow = append(r.Callflow, Action{Action: name, Params: &p})
		case 4:
			r.Callflow = append(r.Callflow, Action{Action: ActionSay})
		case 5:
			p := *all
			r.Callflow = append(r.Callflow, Action{Action: ActionMakeCall, Params: &p})
		case 6:
			p := *all
			r.Callflow = append(r.Callflow, Action{Action: ActionHangup, Params: &p})
		default:
			p := *all
			r.Callflow = append(r.Callflow, Action{Action: ActionSay, Params: &p})
		}
	}
	return r
}

// FuzzCallflowEncoder proves the encoder's promise: whatever the response
// holds (any strings, invalid UTF-8, NUL, quotes, any repetition and
// speed including NaN and infinities, malformed actions), AppendJSON
// appends to dst, agrees with JSON, and writes strict JSON that
// encoding/json decodes to the same strings (as encoding/json would
// encode them) with only the params of each action's kind. A response
// that Validate accepts is accepted by ParseResponse and CheckCallflow
// (the decider's reply check, which reports makeCall as connecting),
// ParseResponse and encoding/json read the same response, and encoding
// what ParseResponse returns reaches a fixed point.
func FuzzCallflowEncoder(f *testing.F) {
	f.Add(uint32(1|0<<2), "a1d6a5e3", "", "", "", "", "+6512345678", "+6587654321", 0, 0.0, true)
	f.Add(uint32(2|1<<2|2<<5), "out-of-session", "", "Sorry, goodbye.", "en-US-ZiraRUS", "en-US", "", "", 2, 1.25, false)
	f.Add(uint32(3|3<<2|5<<5|6<<8), "\"\\\n\x00\xff☎", "future\x00action", "\xc0\xae", "</script>", "\u2028", "+65.*>", "\xff", -3, math.Inf(1), true)
	f.Add(uint32(3|7<<2|4<<5|1<<8), "", "say", "t", "", "", "", "", math.MaxInt, math.MaxFloat64, false)
	f.Add(uint32(1|1<<2), "x", "", "t", "", "", "", "", 1, math.NaN(), false)
	f.Add(uint32(1|1<<2), "x", "", "t", "", "", "", "", 1, math.SmallestNonzeroFloat64, false)
	f.Fuzz(func(t *testing.T, shape uint32, id, name, text, voice, lang, src, dst string, rep int, speed float64, rec bool) {
		r := fuzzResponse(shape, id, name, text, voice, lang, src, dst, rep, speed, rec)
		prefix := []byte(`{"prefix":`)
		out := r.AppendJSON(bytes.Clone(prefix))
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("AppendJSON overwrote dst: %q", out)
		}
		out = out[len(prefix):]
		if !bytes.Equal(out, r.JSON()) {
			t.Fatalf("AppendJSON and JSON differ: %q vs %q", out, r.JSON())
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %q", out)
		}
		var std Response
		if err := json.Unmarshal(out, &std); err != nil {
			t.Fatalf("encoding/json refuses %q: %v", out, err)
		}
		if std.ClientActionID != fuzzStd(t, id) || len(std.Callflow) != len(r.Callflow) {
			t.Fatalf("decoded %+v from %q", std, out)
		}
		for i, a := range r.Callflow {
			got := std.Callflow[i]
			if got.Action != fuzzStd(t, a.Action) {
				t.Fatalf("action %d decodes as %q, want %q", i, got.Action, a.Action)
			}
			want := Params{}
			p := a.Params
			switch {
			case p == nil || a.Action == ActionHangup:
				if got.Params != nil {
					t.Fatalf("action %d (%s) carries params: %q", i, a.Action, out)
				}
				continue
			case a.Action == ActionMakeCall:
				want = Params{Source: fuzzStd(t, p.Source), Destination: fuzzStd(t, p.Destination), CallRecording: p.CallRecording}
			default:
				want = Params{Text: fuzzStd(t, p.Text), VoiceProfile: fuzzStd(t, p.VoiceProfile), Language: fuzzStd(t, p.Language)}
				if p.Repetition > 0 {
					want.Repetition = p.Repetition
				}
				if p.Speed > 0 && !math.IsInf(p.Speed, 0) {
					want.Speed = p.Speed
				}
			}
			if got.Params == nil || *got.Params != want {
				t.Fatalf("action %d params decode as %+v, want %+v: %q", i, got.Params, want, out)
			}
		}
		if !utf8.Valid(out) {
			t.Fatalf("the encoder wrote invalid UTF-8: %q", out)
		}
		if r.Validate() != nil {
			return
		}
		parsed, err := ParseResponse(out)
		if err != nil {
			t.Fatalf("a valid response is refused by ParseResponse: %v: %q", err, out)
		}
		if !reflect.DeepEqual(parsed, &std) {
			t.Fatalf("ParseResponse gives %+v, encoding/json %+v", parsed, std)
		}
		// Once its strings are valid UTF-8, a response encodes to a fixed
		// point: encoding what ParseResponse returns gives the same bytes.
		again := parsed.JSON()
		reparsed, err := ParseResponse(again)
		if err != nil {
			t.Fatalf("re-encoded response is refused: %v: %q", err, again)
		}
		if !reflect.DeepEqual(reparsed, parsed) || !bytes.Equal(reparsed.JSON(), again) {
			t.Fatalf("re-encoding is not stable:\n%q\n%q", again, reparsed.JSON())
		}
		v, err := CheckCallflow(out)
		if err != nil {
			t.Fatalf("CheckCallflow refuses a valid response: %v", err)
		}
		hasMakeCall := false
		for _, a := range r.Callflow {
			hasMakeCall = hasMakeCall || a.Action == ActionMakeCall
		}
		if v.Connects() != hasMakeCall {
			t.Fatalf("CheckCallflow = %+v, callflow has makeCall %v", v, hasMakeCall)
		}
	})
}
