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
// to three actions (count: bits 0-1) among well-formed ones (makeCall,
// say, hangup, sayAndCapture, playFile) and malformed ones (an arbitrary
// action name, actions without params, actions carrying every action's
// params, a hangup with params). Action i's kind is bits 2+3i to 4+3i,
// plus 8 when bit 11+i is set, so that corpora written before the kinds
// from 8 on existed still build the same callflows. The capture integers
// are drawn from rep (some out of range), the fileUrl is src, or a URL
// with text as its path.
func fuzzResponse(shape uint32, id, name, text, voice, lang, src, dst string, rep int, speed float64, rec bool) Response {
	capture := Capture{
		Say:       Say{Text: text, VoiceProfile: voice, Language: lang, Repetition: rep, Speed: speed},
		MinDigits: rep % 23, MaxDigits: (rep >> 5) % 23, DigitTimeout: (rep >> 10) % 400 * 1000,
		OverallTimeout: (rep >> 19) % 400 * 1000, CompleteOnHash: rec, NoOfTries: (rep >> 28) % 12, EndMessage: voice,
	}
	hash := rec
	all := &Params{Source: src, Destination: dst, CallRecording: rec, Text: text, VoiceProfile: voice, Language: lang, Repetition: rep, Speed: speed,
		MinDigits: capture.MinDigits, MaxDigits: capture.MaxDigits, DigitTimeout: capture.DigitTimeout, OverallTimeout: capture.OverallTimeout,
		CompleteOnHash: &hash, NoOfTries: capture.NoOfTries, EndMessage: voice, FileURL: src}
	r := Response{ClientActionID: id}
	for i := range int(shape & 3) {
		kind := (shape>>(2+3*i))&7 | (shape>>(11+i))&1<<3
		switch kind {
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
		case 7:
			p := *all
			r.Callflow = append(r.Callflow, Action{Action: ActionSay, Params: &p})
		case 8:
			r.Callflow = append(r.Callflow, SayAndCaptureAction(capture))
		case 9:
			r.Callflow = append(r.Callflow, PlayFileAction(PlayFile{FileURL: src, Repetition: rep}))
		case 10:
			p := *all
			r.Callflow = append(r.Callflow, Action{Action: ActionSayAndCapture, Params: &p})
		case 11:
			p := *all
			r.Callflow = append(r.Callflow, Action{Action: ActionPlayFile, Params: &p})
		case 12:
			r.Callflow = append(r.Callflow, Action{Action: ActionSayAndCapture})
		case 13:
			r.Callflow = append(r.Callflow, Action{Action: ActionPlayFile})
		case 14:
			r.Callflow = append(r.Callflow, PlayFileAction(PlayFile{FileURL: "https://cdn.example.com/" + text, Repetition: rep}))
		default:
			// A capture within every range: maxDigits 1-20, minDigits up
			// to it, timeouts 1-300 s, tries 1-10.
			c := capture
			c.MaxDigits = 1 + abs(rep)%MaxCaptureDigits
			c.MinDigits = abs(rep>>5) % (c.MaxDigits + 1)
			c.OverallTimeout = MinCaptureTimeoutMillis + abs(rep>>10)%(MaxCaptureTimeoutMillis-MinCaptureTimeoutMillis+1)
			c.DigitTimeout = abs(rep>>20) % (c.OverallTimeout + 1)
			if c.DigitTimeout < MinCaptureTimeoutMillis {
				c.DigitTimeout = 0
			}
			c.NoOfTries = abs(rep>>40) % (MaxCaptureTries + 1)
			r.Callflow = append(r.Callflow, SayAndCaptureAction(c))
		}
	}
	return r
}

func abs(n int) int {
	if n < 0 {
		return -(n + 1) // no overflow for math.MinInt
	}
	return n
}

// fuzzWantParams is what encoding/json must read back from the params of
// a as AppendJSON encodes them: its kind's params only, strings as
// encoding/json would encode them, integers and speeds only when
// positive (and finite).
func fuzzWantParams(t *testing.T, a Action) Params {
	p := a.Params
	pos := func(n int) int { return max(n, 0) }
	switch a.Action {
	case ActionMakeCall:
		return Params{Source: fuzzStd(t, p.Source), Destination: fuzzStd(t, p.Destination), CallRecording: p.CallRecording}
	case ActionPlayFile:
		return Params{FileURL: fuzzStd(t, p.FileURL), Repetition: pos(p.Repetition)}
	}
	want := Params{Text: fuzzStd(t, p.Text), VoiceProfile: fuzzStd(t, p.VoiceProfile), Language: fuzzStd(t, p.Language), Repetition: pos(p.Repetition)}
	if p.Speed > 0 && !math.IsInf(p.Speed, 0) {
		want.Speed = p.Speed
	}
	if a.Action == ActionSayAndCapture {
		want.MinDigits, want.MaxDigits = pos(p.MinDigits), pos(p.MaxDigits)
		want.DigitTimeout, want.OverallTimeout = pos(p.DigitTimeout), pos(p.OverallTimeout)
		want.CompleteOnHash, want.NoOfTries, want.EndMessage = p.CompleteOnHash, pos(p.NoOfTries), fuzzStd(t, p.EndMessage)
	}
	return want
}

// FuzzCallflowEncoder proves the encoder's promise: whatever the response
// holds (any strings, invalid UTF-8, NUL, quotes, any repetition, speed
// and capture integers including NaN, infinities and values out of range,
// any fileUrl, malformed actions), AppendJSON appends to dst, agrees with
// JSON, and writes strict JSON that encoding/json decodes to the same
// strings (as encoding/json would encode them) with only the params of
// each action's kind. A response that Validate accepts is accepted by
// CheckCallflow (the decider's reply check, which reports makeCall as
// connecting); CheckCallflow and ParseResponse accept the same bytes,
// ParseResponse and encoding/json read the same response, what
// ParseResponse returns passes Validate, and encoding it reaches a fixed
// point.
func FuzzCallflowEncoder(f *testing.F) {
	f.Add(uint32(1|0<<2), "a1d6a5e3", "", "", "", "", "+6512345678", "+6587654321", 0, 0.0, true)
	f.Add(uint32(2|1<<2|2<<5), "out-of-session", "", "Sorry, goodbye.", "en-US-ZiraRUS", "en-US", "", "", 2, 1.25, false)
	f.Add(uint32(3|3<<2|5<<5|6<<8), "\"\\\n\x00\xff☎", "future\x00action", "\xc0\xae", "</script>", "\u2028", "+65.*>", "\xff", -3, math.Inf(1), true)
	f.Add(uint32(3|7<<2|4<<5|1<<8), "", "say", "t", "", "", "", "", math.MaxInt, math.MaxFloat64, false)
	f.Add(uint32(1|1<<2), "x", "", "t", "", "", "", "", 1, math.NaN(), false)
	f.Add(uint32(1|1<<2), "x", "", "t", "", "", "", "", 1, math.SmallestNonzeroFloat64, false)
	f.Add(uint32(1|7<<2|1<<11), "flow:menu:1:welcome:0", "", "Press 1", "en-US-ZiraRUS", "en-US", "", "", 0x1234_5678_9abc, 1.0, true)
	f.Add(uint32(1|1<<2|1<<11), "flow:menu:1:intro:0", "", "", "", "", "https://cdn.example.com/menu.wav", "", 2, 0.0, false)
	f.Add(uint32(3|1<<2|0<<5|2<<8|1<<11|1<<12), "x", "", "Enter your PIN", "", "", "https://cdn.example.com/a.wav", "", 4|8<<5|5<<10|20<<19|3<<28, 0.0, true)
	f.Add(uint32(2|2<<2|3<<5|1<<11|1<<12), "x", "", "t", "v", "l", "https://h/a", "+6587654321", 1<<5|1, 1.5, false)
	f.Add(uint32(2|4<<2|5<<5|3<<11), "x", "", "", "", "", "", "", 0, 0.0, false)
	f.Add(uint32(1|6<<2|1<<11), "x", "", "prompts/a b/é.wav?x=%zz", "", "", "", "", 1, 0.0, false)
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
			if a.Params == nil || a.Action == ActionHangup {
				if got.Params != nil {
					t.Fatalf("action %d (%s) carries params: %q", i, a.Action, out)
				}
				continue
			}
			if want := fuzzWantParams(t, a); got.Params == nil || !reflect.DeepEqual(*got.Params, want) {
				t.Fatalf("action %d params decode as %+v, want %+v: %q", i, got.Params, want, out)
			}
		}
		if !utf8.Valid(out) {
			t.Fatalf("the encoder wrote invalid UTF-8: %q", out)
		}
		_, cerr := CheckCallflow(out)
		parsed, err := ParseResponse(out)
		if (err == nil) != (cerr == nil) {
			t.Fatalf("CheckCallflow says %v, ParseResponse %v: %q", cerr, err, out)
		}
		if r.Validate() == nil && err != nil {
			t.Fatalf("a valid response is refused by ParseResponse: %v: %q", err, out)
		}
		if err != nil {
			return
		}
		if err := parsed.Validate(); err != nil {
			t.Fatalf("ParseResponse returns a response Validate refuses: %v: %q", err, out)
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
