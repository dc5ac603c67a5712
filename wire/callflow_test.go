package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

const (
	vn    = "+6512345678" // the virtual number
	other = "+6587654321" // the other participant
)

var fullSay = Say{Text: "Hello This is a test message", VoiceProfile: "en-US-ZiraRUS", Language: "en-US", Repetition: 2, Speed: 1.5}

var fullCapture = Capture{Say: fullSay, MinDigits: 4, MaxDigits: 8, DigitTimeout: 5000, OverallTimeout: 20000,
	CompleteOnHash: true, NoOfTries: 3, EndMessage: "Thank you."}

func TestResponseJSONExact(t *testing.T) {
	tests := []struct {
		name string
		resp Response
		want string
	}{
		{"makeCall",
			Response{ClientActionID: "NumberMaskingId1", Callflow: []Action{MakeCall(vn, other, false)}},
			`{"clientActionId":"NumberMaskingId1","callflow":[{"action":"makeCall","params":{"source":"+6512345678","destination":"+6587654321"}}]}`},
		{"makeCall with recording",
			Response{ClientActionID: "NumberMaskingId1", Callflow: []Action{MakeCall(vn, other, true)}},
			`{"clientActionId":"NumberMaskingId1","callflow":[{"action":"makeCall","params":{"source":"+6512345678","destination":"+6587654321","callRecording":true}}]}`},
		{"say text only",
			Response{ClientActionID: "a", Callflow: []Action{SayAction(Say{Text: "Hello"})}},
			`{"clientActionId":"a","callflow":[{"action":"say","params":{"text":"Hello"}}]}`},
		{"say all fields",
			Response{ClientActionID: "a", Callflow: []Action{SayAction(fullSay)}},
			`{"clientActionId":"a","callflow":[{"action":"say","params":{"text":"Hello This is a test message","voiceProfile":"en-US-ZiraRUS","language":"en-US","repetition":2,"speed":1.5}}]}`},
		{"say speed 1.0 as integer literal",
			Response{ClientActionID: "a", Callflow: []Action{SayAction(Say{Text: "x", Speed: 1.0})}},
			`{"clientActionId":"a","callflow":[{"action":"say","params":{"text":"x","speed":1}}]}`},
		{"say small speed without exponent",
			Response{ClientActionID: "a", Callflow: []Action{SayAction(Say{Text: "x", Speed: 0.000001})}},
			`{"clientActionId":"a","callflow":[{"action":"say","params":{"text":"x","speed":0.000001}}]}`},
		{"say negative repetition and speed omitted",
			Response{ClientActionID: "a", Callflow: []Action{SayAction(Say{Text: "x", Repetition: -1, Speed: -2})}},
			`{"clientActionId":"a","callflow":[{"action":"say","params":{"text":"x"}}]}`},
		{"hangup",
			Response{ClientActionID: "NumberMaskingId1", Callflow: []Action{Hangup()}},
			`{"clientActionId":"NumberMaskingId1","callflow":[{"action":"hangup"}]}`},
		{"hangup ignores params",
			Response{ClientActionID: "a", Callflow: []Action{{Action: ActionHangup, Params: &Params{Text: "bye", Source: vn}}}},
			`{"clientActionId":"a","callflow":[{"action":"hangup"}]}`},
		{"say then hangup",
			SayThenHangup("NumberMaskingId1", Say{Text: "Hello This is a test message", VoiceProfile: "en-US-ZiraRUS", Repetition: 1, Speed: 1}),
			`{"clientActionId":"NumberMaskingId1","callflow":[{"action":"say","params":{"text":"Hello This is a test message","voiceProfile":"en-US-ZiraRUS","repetition":1,"speed":1}},{"action":"hangup"}]}`},
		{"makeCall encodes only its own params",
			Response{ClientActionID: "a", Callflow: []Action{{Action: ActionMakeCall, Params: &Params{Source: vn, Destination: other, Text: "ignored", Repetition: 3}}}},
			`{"clientActionId":"a","callflow":[{"action":"makeCall","params":{"source":"+6512345678","destination":"+6587654321"}}]}`},
		{"say encodes only its own params",
			Response{ClientActionID: "a", Callflow: []Action{{Action: ActionSay, Params: &Params{Text: "hi", Source: vn, CallRecording: true}}}},
			`{"clientActionId":"a","callflow":[{"action":"say","params":{"text":"hi"}}]}`},
		{"action without params",
			Response{ClientActionID: "a", Callflow: []Action{{Action: ActionMakeCall}}},
			`{"clientActionId":"a","callflow":[{"action":"makeCall"}]}`},
		{"empty clientActionId is kept",
			Response{Callflow: []Action{Hangup()}},
			`{"clientActionId":"","callflow":[{"action":"hangup"}]}`},
		{"nil callflow is an empty array",
			Response{ClientActionID: "a"},
			`{"clientActionId":"a","callflow":[]}`},
		{"escaped clientActionId",
			Response{ClientActionID: "id \"1\"\n", Callflow: []Action{Hangup()}},
			`{"clientActionId":"id \"1\"\n","callflow":[{"action":"hangup"}]}`},
		{"sayAndCapture all params",
			Response{ClientActionID: "flow:menu:1:welcome:0", Callflow: []Action{SayAndCaptureAction(fullCapture)}},
			`{"clientActionId":"flow:menu:1:welcome:0","callflow":[{"action":"sayAndCapture","params":{"text":"Hello This is a test message","voiceProfile":"en-US-ZiraRUS","language":"en-US","repetition":2,"speed":1.5,` +
				`"minDigits":4,"maxDigits":8,"digitTimeout":5000,"overallTimeout":20000,"completeOnHash":true,"noOfTries":3,"endMessage":"Thank you."}}]}`},
		{"sayAndCapture minimal: completeOnHash false is written",
			Response{ClientActionID: "a", Callflow: []Action{SayAndCaptureAction(Capture{Say: Say{Text: "Press 1"}, MaxDigits: 1})}},
			`{"clientActionId":"a","callflow":[{"action":"sayAndCapture","params":{"text":"Press 1","maxDigits":1,"completeOnHash":false}}]}`},
		{"sayAndCapture without completeOnHash",
			Response{ClientActionID: "a", Callflow: []Action{{Action: ActionSayAndCapture, Params: &Params{Text: "t", MaxDigits: 2}}}},
			`{"clientActionId":"a","callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":2}}]}`},
		{"sayAndCapture encodes only its own params",
			Response{ClientActionID: "a", Callflow: []Action{{Action: ActionSayAndCapture, Params: &Params{Text: "t", MaxDigits: 2, Source: vn, CallRecording: true, FileURL: "https://x.example/a.wav"}}}},
			`{"clientActionId":"a","callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":2}}]}`},
		{"playFile",
			Response{ClientActionID: "a", Callflow: []Action{PlayFileAction(PlayFile{FileURL: "https://cdn.example.com/menu.wav", Repetition: 2})}},
			`{"clientActionId":"a","callflow":[{"action":"playFile","params":{"fileUrl":"https://cdn.example.com/menu.wav","repetition":2}}]}`},
		{"playFile encodes only its own params",
			Response{ClientActionID: "a", Callflow: []Action{{Action: ActionPlayFile, Params: &Params{FileURL: "https://x.example/a.wav", Text: "t", MaxDigits: 3, Speed: 2}}}},
			`{"clientActionId":"a","callflow":[{"action":"playFile","params":{"fileUrl":"https://x.example/a.wav"}}]}`},
		{"say encodes no capture params",
			Response{ClientActionID: "a", Callflow: []Action{{Action: ActionSay, Params: &Params{Text: "t", MaxDigits: 3, EndMessage: "e", FileURL: "https://x.example/"}}}},
			`{"clientActionId":"a","callflow":[{"action":"say","params":{"text":"t"}}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.resp.AppendJSON(nil)
			if string(got) != tt.want {
				t.Errorf("AppendJSON =\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("invalid JSON: %s", got)
			}
			if js := tt.resp.JSON(); !bytes.Equal(js, got) {
				t.Errorf("JSON() = %s, AppendJSON = %s", js, got)
			}
			prefix := []byte("HTTP/1.1 200 OK\r\n\r\n")
			if appended := tt.resp.AppendJSON(bytes.Clone(prefix)); !bytes.Equal(appended, append(prefix, got...)) {
				t.Errorf("AppendJSON does not append to dst: %q", appended)
			}
		})
	}
}

// validResponses are callflows Validate accepts, built with the constructors.
func validResponses() map[string]Response {
	return map[string]Response{
		"makeCall":           {ClientActionID: "NumberMaskingId1", Callflow: []Action{MakeCall(vn, other, false)}},
		"makeCall recording": {ClientActionID: "NumberMaskingId1", Callflow: []Action{MakeCall(vn, other, true)}},
		"say minimal":        {ClientActionID: "x", Callflow: []Action{SayAction(Say{Text: "Hi"})}},
		"say full":           {ClientActionID: "x", Callflow: []Action{SayAction(fullSay)}},
		"say odd speed":      {ClientActionID: "x", Callflow: []Action{SayAction(Say{Text: "Hi", Speed: 0.1 + 0.2, Repetition: 1 << 30})}},
		"hangup":             {ClientActionID: "x", Callflow: []Action{Hangup()}},
		"say then hangup":    SayThenHangup("oos-1", fullSay),
		"say, makeCall":      {ClientActionID: "x", Callflow: []Action{SayAction(Say{Text: "Connecting you"}), MakeCall(vn, other, true)}},
		"escapes":            SayThenHangup("id\"\\\n", Say{Text: "He said \"hi\"\\\n\t\r\x00\x1f\x7f ☎ 日本語 😀 \u2028\u2029 <&>", VoiceProfile: "x\"y"}),
		"empty id":           SayThenHangup("", Say{Text: "."}),
		"sayAndCapture full": {ClientActionID: "flow:menu:1:welcome:0", Callflow: []Action{SayAndCaptureAction(fullCapture)}},
		"sayAndCapture minimal": {ClientActionID: "flow:menu:1:welcome:0", Callflow: []Action{
			SayAndCaptureAction(Capture{Say: Say{Text: "Press 1"}, MaxDigits: 1})}},
		"sayAndCapture limits": {ClientActionID: "x", Callflow: []Action{SayAndCaptureAction(Capture{Say: Say{Text: "PIN"},
			MinDigits: MaxCaptureDigits, MaxDigits: MaxCaptureDigits, DigitTimeout: MaxCaptureTimeoutMillis, OverallTimeout: MaxCaptureTimeoutMillis, NoOfTries: MaxCaptureTries})}},
		"sayAndCapture lower limits": {ClientActionID: "x", Callflow: []Action{SayAndCaptureAction(Capture{Say: Say{Text: "PIN"},
			MinDigits: 1, MaxDigits: 1, DigitTimeout: MinCaptureTimeoutMillis, OverallTimeout: MinCaptureTimeoutMillis, NoOfTries: 1})}},
		"sayAndCapture without completeOnHash": {ClientActionID: "x", Callflow: []Action{{Action: ActionSayAndCapture, Params: &Params{Text: "t", MaxDigits: 4}}}},
		"playFile":                             {ClientActionID: "x", Callflow: []Action{PlayFileAction(PlayFile{FileURL: "https://cdn.example.com/a/menu.wav?v=2&lang=en#t=1", Repetition: 3})}},
		"playFile minimal":                     {ClientActionID: "x", Callflow: []Action{PlayFileAction(PlayFile{FileURL: "https://h"})}},
		"a menu":                               {ClientActionID: "flow:menu:7:welcome:1", Callflow: []Action{PlayFileAction(PlayFile{FileURL: "https://cdn.example.com/sorry.mp3"}), SayAndCaptureAction(Capture{Say: Say{Text: "Press 1 or 2"}, MaxDigits: 1, OverallTimeout: 5000, NoOfTries: 1})}},
		"a transfer":                           {ClientActionID: "flow:menu:7:sales:0", Callflow: []Action{SayAction(Say{Text: "Connecting you"}), MakeCall(vn, other, false)}},
	}
}

func TestResponseJSONRoundTrip(t *testing.T) {
	for name, resp := range validResponses() {
		t.Run(name, func(t *testing.T) {
			out := resp.AppendJSON(nil)
			if !json.Valid(out) {
				t.Fatalf("invalid JSON: %s", out)
			}
			var std Response
			if err := json.Unmarshal(out, &std); err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			if !reflect.DeepEqual(std, resp) {
				t.Errorf("encoding/json decodes\n%s\nto %+v, want %+v", out, std, resp)
			}
			parsed, err := ParseResponse(out)
			if err != nil {
				t.Fatalf("ParseResponse: %v", err)
			}
			if !reflect.DeepEqual(*parsed, resp) {
				t.Errorf("ParseResponse = %+v, want %+v", *parsed, resp)
			}
			// The same document as encoding/json would write.
			stdOut, err := json.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			var a, b any
			if err := json.Unmarshal(out, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(stdOut, &b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("AppendJSON\n%s\ndiffers from encoding/json\n%s", out, stdOut)
			}
		})
	}
}

// paramKeys returns the keys of callflow[i].params, and whether params is
// present at all.
func paramKeys(t *testing.T, out []byte, i int) ([]string, bool) {
	t.Helper()
	var doc struct {
		Callflow []map[string]json.RawMessage `json:"callflow"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	raw, ok := doc.Callflow[i]["params"]
	if !ok {
		return nil, false
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(raw, &params); err != nil {
		t.Fatalf("params: %v: %s", err, raw)
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, true
}

func TestCallRecordingOnlyWhenTrue(t *testing.T) {
	for _, rec := range []bool{false, true} {
		r := Response{Callflow: []Action{MakeCall(vn, other, rec)}}
		out := r.JSON()
		keys, _ := paramKeys(t, out, 0)
		want := []string{"destination", "source"}
		if rec {
			want = []string{"callRecording", "destination", "source"}
		}
		if !slices.Equal(keys, want) {
			t.Errorf("callRecording=%v: params keys = %v, want %v (%s)", rec, keys, want, out)
		}
		if got := bytes.Contains(out, []byte(`"callRecording"`)); got != rec {
			t.Errorf("callRecording=%v: key present = %v: %s", rec, got, out)
		}
	}
}

func TestSayOptionalFieldsOmitted(t *testing.T) {
	tests := []struct {
		name string
		say  Say
		want []string
	}{
		{"text only", Say{Text: "t"}, []string{"text"}},
		{"voiceProfile", Say{Text: "t", VoiceProfile: "en-US-ZiraRUS"}, []string{"text", "voiceProfile"}},
		{"language", Say{Text: "t", Language: "en-US"}, []string{"language", "text"}},
		{"repetition", Say{Text: "t", Repetition: 3}, []string{"repetition", "text"}},
		{"speed", Say{Text: "t", Speed: 0.8}, []string{"speed", "text"}},
		{"zero repetition and speed", Say{Text: "t", Repetition: 0, Speed: 0}, []string{"text"}},
		{"all", fullSay, []string{"language", "repetition", "speed", "text", "voiceProfile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Response{Callflow: []Action{SayAction(tt.say)}}
			keys, ok := paramKeys(t, r.JSON(), 0)
			if !ok || !slices.Equal(keys, tt.want) {
				t.Errorf("params keys = %v (present %v), want %v", keys, ok, tt.want)
			}
		})
	}
}

func TestHangupHasNoParams(t *testing.T) {
	for _, a := range []Action{Hangup(), {Action: ActionHangup, Params: &Params{}}, {Action: ActionHangup, Params: &Params{Text: "x", Source: vn}}} {
		r := Response{Callflow: []Action{SayAction(Say{Text: "bye"}), a}}
		out := r.JSON()
		if _, ok := paramKeys(t, out, 1); ok {
			t.Errorf("hangup has params: %s", out)
		}
	}
	if h := Hangup(); h.Action != ActionHangup || h.Params != nil {
		t.Errorf("Hangup() = %+v", h)
	}
}

func TestConstructors(t *testing.T) {
	if got, want := MakeCall(vn, other, true), (Action{Action: ActionMakeCall, Params: &Params{Source: vn, Destination: other, CallRecording: true}}); !reflect.DeepEqual(got, want) {
		t.Errorf("MakeCall = %+v", got)
	}
	got := SayAction(fullSay)
	want := Action{Action: ActionSay, Params: &Params{Text: fullSay.Text, VoiceProfile: fullSay.VoiceProfile, Language: fullSay.Language, Repetition: 2, Speed: 1.5}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SayAction = %+v", got)
	}
	hash := true
	got = SayAndCaptureAction(fullCapture)
	want = Action{Action: ActionSayAndCapture, Params: &Params{Text: fullSay.Text, VoiceProfile: fullSay.VoiceProfile, Language: fullSay.Language, Repetition: 2, Speed: 1.5,
		MinDigits: 4, MaxDigits: 8, DigitTimeout: 5000, OverallTimeout: 20000, CompleteOnHash: &hash, NoOfTries: 3, EndMessage: "Thank you."}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SayAndCaptureAction = %+v", got.Params)
	}
	if a, b := SayAndCaptureAction(Capture{}), SayAndCaptureAction(Capture{}); a.Params.CompleteOnHash == nil || *a.Params.CompleteOnHash || a.Params.CompleteOnHash == b.Params.CompleteOnHash {
		t.Errorf("SayAndCaptureAction does not give each action its own completeOnHash false")
	}
	got = PlayFileAction(PlayFile{FileURL: "https://x.example/a.wav", Repetition: 2})
	if want := (Action{Action: ActionPlayFile, Params: &Params{FileURL: "https://x.example/a.wav", Repetition: 2}}); !reflect.DeepEqual(got, want) {
		t.Errorf("PlayFileAction = %+v", got.Params)
	}
	r := SayThenHangup("c", fullSay)
	if r.ClientActionID != "c" || len(r.Callflow) != 2 || r.Callflow[0].Action != ActionSay || r.Callflow[1].Action != ActionHangup {
		t.Errorf("SayThenHangup = %+v", r)
	}
	if err := r.Validate(); err != nil {
		t.Errorf("SayThenHangup is not valid: %v", err)
	}
}

func TestAppendStringEscaping(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // exact encoding
	}{
		{"empty", "", `""`},
		{"plain", "Hello", `"Hello"`},
		{"quotes", `say "hi"`, `"say \"hi\""`},
		{"backslashes", `C:\dir\`, `"C:\\dir\\"`},
		{"escaped quote sequence", `\"`, `"\\\""`},
		{"newline, return, tab", "a\nb\rc\td", `"a\nb\rc\td"`},
		{"NUL and other controls", "\x00\x01\x08\x0b\x0c\x1b\x1f", `"\u0000\u0001\u0008\u000b\u000c\u001b\u001f"`},
		{"DEL is legal JSON", "\x7f", "\"\x7f\""},
		{"slash is not escaped", "a/b", `"a/b"`},
		{"html characters kept", "<b>&</b>", `"<b>&</b>"`},
		{"unicode kept", "café ☎ 日本語 😀", `"café ☎ 日本語 😀"`},
		{"line and paragraph separators kept", "\u2028\u2029", "\"\u2028\u2029\""},
		{"replacement character kept", "\uFFFD", "\"\uFFFD\""},
		{"invalid byte", "a\xffb", `"a\ufffdb"`},
		{"lone continuation byte", "\x80", `"\ufffd"`},
		{"truncated sequence", "a\xe2\x82", `"a\ufffd\ufffd"`},
		{"truncated sequence before ASCII", "\xe2\x82b", `"\ufffd\ufffdb"`},
		{"UTF-16 surrogate encoded as UTF-8", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
		{"overlong encoding", "\xc0\xaf", `"\ufffd\ufffd"`},
		{"mixed", "\"\xff\n☎\\", `"\"\ufffd\n☎\\"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendString(nil, tt.in)
			if string(got) != tt.want {
				t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
			}
			checkStringEncoding(t, tt.in, got)
			if appended := AppendString([]byte(`{"k":`), tt.in); string(appended) != `{"k":`+tt.want {
				t.Errorf("AppendString does not append to dst: %s", appended)
			}
		})
	}
}

// stdRoundTrip is s encoded and decoded by encoding/json: s itself when it
// is valid UTF-8, else s with every invalid byte replaced by U+FFFD.
func stdRoundTrip(t *testing.T, s string) string {
	t.Helper()
	enc, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(enc, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkStringEncoding asserts that enc is a valid JSON string that decodes to
// what encoding/json's own encoding of s decodes to.
func checkStringEncoding(t *testing.T, s string, enc []byte) {
	t.Helper()
	if !json.Valid(enc) {
		t.Fatalf("invalid JSON for %q: %s", s, enc)
	}
	var got string
	if err := json.Unmarshal(enc, &got); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	want := stdRoundTrip(t, s)
	if got != want {
		t.Errorf("%q decodes to %q, encoding/json gives %q", s, got, want)
	}
}

func TestSayTextEscapingRoundTrip(t *testing.T) {
	texts := []string{
		`Say "hello" to \\server\share`,
		"line one\nline two\r\n\ttabbed",
		"bell\a backspace\b formfeed\f vt\v esc\x1b nul\x00",
		"Xin chào, 您好, مرحبا, שלום, Привет, 😀👍🏽",
		"broken \xff\xfe utf-8 \xc3",
		strings.Repeat("long ", 2000),
	}
	for _, text := range texts {
		r := SayThenHangup("id", Say{Text: text, VoiceProfile: text, Language: text})
		out := r.JSON()
		if !json.Valid(out) {
			t.Fatalf("invalid JSON for %q", text)
		}
		got, err := ParseResponse(out)
		if err != nil {
			t.Fatalf("ParseResponse: %v", err)
		}
		want := stdRoundTrip(t, text)
		if p := got.Callflow[0].Params; p.Text != want || p.VoiceProfile != want || p.Language != want {
			t.Errorf("text %q came back as %q, want %q", text, p.Text, want)
		}
		checkStringEncoding(t, text, AppendString(nil, text))
	}
}

func TestParseResponseValid(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Response
	}{
		{"seed makeCall without its comment", `{
		   "clientActionId": "NumberMaskingId1",
		   "callflow": [{"action": "makeCall", "params": {"source": "6512345678", "destination": "6587654321", "callRecording": true}}]
		}`, Response{ClientActionID: "NumberMaskingId1", Callflow: []Action{MakeCall("6512345678", "6587654321", true)}}},
		{"seed say without comments", `{"clientActionId": "NumberMaskingId1", "callflow": [{"action": "say",
			"params": {"text": "Hello This is a test message", "voiceProfile": "en-US-ZiraRUS", "repetition": 1, "speed": 1.0}}]}`,
			Response{ClientActionID: "NumberMaskingId1", Callflow: []Action{SayAction(Say{Text: "Hello This is a test message", VoiceProfile: "en-US-ZiraRUS", Repetition: 1, Speed: 1})}}},
		{"seed hangup", `{"clientActionId": "NumberMaskingId1", "callflow": [ {"action": "hangup" } ]}`,
			Response{ClientActionID: "NumberMaskingId1", Callflow: []Action{Hangup()}}},
		{"seed commands example", `{"clientActionId": "NumberMaskingId1", "callflow": [{"action": "say", "params": {"text": "Hello This is a test message", "voiceProfile": "en-US-ZiraRUS", "repetition": 1, "speed": 1.0}}, {"action": "hangup"}]}`,
			SayThenHangup("NumberMaskingId1", Say{Text: "Hello This is a test message", VoiceProfile: "en-US-ZiraRUS", Repetition: 1, Speed: 1})},
		{"no clientActionId", `{"callflow":[{"action":"hangup"}]}`, Response{Callflow: []Action{Hangup()}}},
		{"hangup with params", `{"callflow":[{"action":"hangup","params":{}}]}`, Response{Callflow: []Action{{Action: ActionHangup, Params: &Params{}}}}},
		{"8x8's sayAndCapture sample without its endMessage null", `{"clientActionId":"VoiceIvrId1","callflow":[{"action":"sayAndCapture","params":{
			"text":"Hello, this is a say and capture example.","language":"en","voiceProfile":"en-US-BenjaminRUS","repetition":1,"speed":1,
			"minDigits":1,"maxDigits":1,"digitTimeout":10000,"overallTimeout":10000,"completeOnHash":true,"noOfTries":1}}]}`,
			Response{ClientActionID: "VoiceIvrId1", Callflow: []Action{SayAndCaptureAction(Capture{
				Say:       Say{Text: "Hello, this is a say and capture example.", Language: "en", VoiceProfile: "en-US-BenjaminRUS", Repetition: 1, Speed: 1},
				MinDigits: 1, MaxDigits: 1, DigitTimeout: 10000, OverallTimeout: 10000, CompleteOnHash: true, NoOfTries: 1})}}},
		{"8x8's playFile sample without source and destination", `{"clientActionId":"x","callflow":[{"action":"playFile","params":{"fileUrl":"https://sample-videos.com/audio/mp3/wave.mp3","repetition":2}}]}`,
			Response{ClientActionID: "x", Callflow: []Action{PlayFileAction(PlayFile{FileURL: "https://sample-videos.com/audio/mp3/wave.mp3", Repetition: 2})}}},
		{"integers as whole decimals", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":4.0,"overallTimeout":5e3,"repetition":2.00}}]}`,
			Response{Callflow: []Action{{Action: ActionSayAndCapture, Params: &Params{Text: "t", MaxDigits: 4, OverallTimeout: 5000, Repetition: 2}}}}},
		{"completeOnHash false kept", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":4,"completeOnHash":false}}]}`,
			Response{Callflow: []Action{SayAndCaptureAction(Capture{Say: Say{Text: "t"}, MaxDigits: 4})}}},
		{"escaped strings", `{"clientActionId":"\u0066low","callflow":[{"action":"say\u0041ndCapture","params":{"text":"caf\u00e9","maxDigits":1,"endMessage":"\"bye\""}}]}`,
			Response{ClientActionID: "flow", Callflow: []Action{{Action: ActionSayAndCapture, Params: &Params{Text: "café", MaxDigits: 1, EndMessage: `"bye"`}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResponse([]byte(tt.body))
			if err != nil {
				t.Fatalf("ParseResponse: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("ParseResponse =\n%+v\nwant\n%+v", *got, tt.want)
			}
		})
	}
}

func TestParseResponseInvalid(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantMsg string // a part of the error message
	}{
		{"empty", ``, ""},
		{"not JSON", `hangup`, ""},
		{"truncated", `{"callflow":[{"action":"hangup"}`, ""},
		{"seed makeCall with its comment", `{"clientActionId":"a","callflow":[{"action":"makeCall","params":{"source":"6512345678","destination":"6587654321","callRecording":true //Optional
		}}]}`, ""},
		{"seed say with trailing comma", `{"callflow":[{"action":"say","params":{"text":"Hello","speed":1.0,}}]}`, ""},
		{"top-level array", `[{"action":"hangup"}]`, ""},
		{"callflow object", `{"callflow":{"action":"hangup"}}`, ""},
		{"callRecording string", `{"callflow":[{"action":"makeCall","params":{"source":"1","destination":"2","callRecording":"yes"}}]}`, ""},
		{"repetition fraction", `{"callflow":[{"action":"say","params":{"text":"x","repetition":1.5}}]}`, ""},
		{"null", `null`, "not a JSON object"},
		{"unknown top-level key (not forwarded blindly)", `{"clientActionId":"a","future":1,"callflow":[{"action":"hangup"}]}`, `unknown key "future"`},
		{"unknown action key", `{"callflow":[{"action":"hangup","x":[1,2]}]}`, `unknown key "x"`},
		{"unknown param", `{"callflow":[{"action":"say","params":{"text":"hi","volume":11}}]}`, `takes no param "volume"`},
		{"keys differ in case", `{"CLIENTACTIONID":"x","CALLFLOW":[{"ACTION":"hangup"}]}`, `unknown key "CLIENTACTIONID"`},
		{"param of the wrong type", `{"callflow":[{"action":"makeCall","params":{"source":"+6512345678","destination":"+6587654321","callRecording":"yes"}}]}`, "callRecording has the wrong type"},
		{"fractional repetition", `{"callflow":[{"action":"say","params":{"text":"hi","repetition":1.5}}]}`, "repetition must be a whole number"},
		{"trailing data", `{"callflow":[{"action":"hangup"}]} x`, "after top-level value"},
		{"empty object", `{}`, "empty callflow"},
		{"empty callflow", `{"clientActionId":"a","callflow":[]}`, "empty callflow"},
		{"null callflow", `{"clientActionId":"a","callflow":null}`, "expected an array"},
		{"unknown action", `{"callflow":[{"action":"dance"}]}`, `unknown action "dance"`},
		{"action names are case-sensitive", `{"callflow":[{"action":"MakeCall","params":{"source":"1","destination":"2"}}]}`, `unknown action "MakeCall"`},
		{"missing action", `{"callflow":[{"params":{"text":"x"}}]}`, `unknown action ""`},
		{"makeCall without destination", `{"callflow":[{"action":"makeCall","params":{"source":"+6512345678"}}]}`, "makeCall needs destination"},
		{"makeCall with empty destination", `{"callflow":[{"action":"makeCall","params":{"source":"+6512345678","destination":""}}]}`, "makeCall needs"},
		{"makeCall without source", `{"callflow":[{"action":"makeCall","params":{"destination":"+6587654321"}}]}`, "makeCall needs"},
		{"makeCall without params", `{"callflow":[{"action":"makeCall"}]}`, "makeCall needs"},
		{"makeCall with null params", `{"callflow":[{"action":"makeCall","params":null}]}`, "params must be an object"},
		{"say without text", `{"callflow":[{"action":"say","params":{"voiceProfile":"en-US-ZiraRUS"}}]}`, "say needs text"},
		{"say with empty text", `{"callflow":[{"action":"say","params":{"text":""}}]}`, "say needs text"},
		{"say without params", `{"callflow":[{"action":"say"}]}`, "say needs text"},
		{"8x8's old say&capture name", `{"callflow":[{"action":"say&capture","params":{"text":"Press 1","maxDigits":1}}]}`, `unknown action "say&capture"`},
		{"sayAndCapture without maxDigits", `{"callflow":[{"action":"sayAndCapture","params":{"text":"Press 1"}}]}`, "sayAndCapture needs maxDigits"},
		{"sayAndCapture without text", `{"callflow":[{"action":"sayAndCapture","params":{"maxDigits":1}}]}`, "sayAndCapture needs text"},
		{"sayAndCapture without params", `{"callflow":[{"action":"sayAndCapture"}]}`, "sayAndCapture needs text"},
		{"sayAndCapture with a makeCall param", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":1,"destination":"+6587654321"}}]}`, `sayAndCapture takes no param "destination"`},
		{"sayAndCapture with 8x8's promptMessage", `{"callflow":[{"action":"sayAndCapture","params":{"promptMessage":"t","maxDigits":1}}]}`, `takes no param "promptMessage"`},
		{"endMessage null", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":1,"endMessage":null}}]}`, "endMessage has the wrong type"},
		{"completeOnHash string", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":1,"completeOnHash":"true"}}]}`, "completeOnHash has the wrong type"},
		{"maxDigits string", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":"4"}}]}`, "maxDigits has the wrong type"},
		{"maxDigits 0", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":0}}]}`, "maxDigits must be from 1 to 20"},
		{"maxDigits 21", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":21}}]}`, "maxDigits must be from 1 to 20"},
		{"maxDigits negative", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":-1}}]}`, "maxDigits has the wrong type"},
		{"maxDigits fraction", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":1.5}}]}`, "maxDigits must be a whole number"},
		{"maxDigits huge", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":1e30}}]}`, "maxDigits must be a whole number"},
		{"minDigits 0", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":4,"minDigits":0}}]}`, "minDigits must be from 1 to 20"},
		{"minDigits above maxDigits", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","minDigits":5,"maxDigits":4}}]}`, "minDigits must not exceed maxDigits"},
		{"digitTimeout 999 ms", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":4,"digitTimeout":999,"overallTimeout":5000}}]}`, "digitTimeout must be from 1000 to 300000"},
		{"overallTimeout above five minutes", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":4,"overallTimeout":300001}}]}`, "overallTimeout must be from 1000 to 300000"},
		{"digitTimeout without overallTimeout", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":4,"digitTimeout":3000}}]}`, "overallTimeout is required with digitTimeout"},
		{"digitTimeout above overallTimeout", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":4,"digitTimeout":6000,"overallTimeout":5000}}]}`, "digitTimeout must not exceed overallTimeout"},
		{"noOfTries 0", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":4,"noOfTries":0}}]}`, "noOfTries must be from 1 to 10"},
		{"noOfTries 11", `{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":4,"noOfTries":11}}]}`, "noOfTries must be from 1 to 10"},
		{"playFile without fileUrl", `{"callflow":[{"action":"playFile","params":{"repetition":1}}]}`, "playFile needs fileUrl"},
		{"playFile without params", `{"callflow":[{"action":"playFile"}]}`, "playFile needs fileUrl"},
		{"playFile over http", `{"callflow":[{"action":"playFile","params":{"fileUrl":"http://example.com/a.wav"}}]}`, "fileUrl must be an absolute https URL"},
		{"playFile relative", `{"callflow":[{"action":"playFile","params":{"fileUrl":"/a.wav"}}]}`, "fileUrl must be an absolute https URL"},
		{"playFile with credentials", `{"callflow":[{"action":"playFile","params":{"fileUrl":"https://user:pw@example.com/a.wav"}}]}`, "fileUrl must not carry credentials"},
		{"playFile with a space", `{"callflow":[{"action":"playFile","params":{"fileUrl":"https://example.com/my menu.wav"}}]}`, "fileUrl must percent-encode"},
		{"playFile with text", `{"callflow":[{"action":"playFile","params":{"fileUrl":"https://example.com/a.wav","text":"t"}}]}`, `playFile takes no param "text"`},
		{"playFile fileUrl twice", `{"callflow":[{"action":"playFile","params":{"fileUrl":"https://example.com/a.wav","fileUrl":"https://evil.example/b.wav"}}]}`, `duplicate key "fileUrl"`},
		{"speed beyond float64", `{"callflow":[{"action":"say","params":{"text":"t","speed":1e400}}]}`, "speed must be a finite number"},
		{"second action invalid", `{"callflow":[{"action":"hangup"},{"action":"say"}]}`, "callflow[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseResponse([]byte(tt.body))
			if err == nil {
				t.Fatalf("ParseResponse accepted %s: %+v", tt.body, r)
			}
			if r != nil {
				t.Errorf("ParseResponse returned a response with its error")
			}
			if !errors.Is(err, ErrInvalidResponse) {
				t.Errorf("errors.Is(%v, ErrInvalidResponse) = false", err)
			}
			if errors.Is(err, ErrInvalidEvent) {
				t.Errorf("%v matches ErrInvalidEvent", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestResponseValidate(t *testing.T) {
	tests := []struct {
		name  string
		resp  Response
		valid bool
	}{
		{"makeCall", Response{Callflow: []Action{MakeCall(vn, other, false)}}, true},
		{"say then hangup", SayThenHangup("x", Say{Text: "t"}), true},
		{"hangup only", Response{Callflow: []Action{Hangup()}}, true},
		{"playFile without params", Response{Callflow: []Action{{Action: ActionPlayFile}}}, false},
		{"playFile", Response{Callflow: []Action{PlayFileAction(PlayFile{FileURL: "https://x.example/a.wav"})}}, true},
		{"playFile over http", Response{Callflow: []Action{PlayFileAction(PlayFile{FileURL: "http://x.example/a.wav"})}}, false},
		{"sayAndCapture", Response{Callflow: []Action{SayAndCaptureAction(fullCapture)}}, true},
		{"sayAndCapture without maxDigits", Response{Callflow: []Action{SayAndCaptureAction(Capture{Say: Say{Text: "t"}})}}, false},
		{"sayAndCapture negative minDigits", Response{Callflow: []Action{SayAndCaptureAction(Capture{Say: Say{Text: "t"}, MaxDigits: 2, MinDigits: -1})}}, false},
		{"sayAndCapture negative noOfTries", Response{Callflow: []Action{SayAndCaptureAction(Capture{Say: Say{Text: "t"}, MaxDigits: 2, NoOfTries: -1})}}, false},
		{"nil callflow", Response{}, false},
		{"makeCall without source", Response{Callflow: []Action{MakeCall("", other, false)}}, false},
		{"makeCall without destination", Response{Callflow: []Action{MakeCall(vn, "", true)}}, false},
		{"say without text", Response{Callflow: []Action{SayAction(Say{VoiceProfile: "v"})}}, false},
		{"sayAndCapture without params", Response{Callflow: []Action{{Action: ActionSayAndCapture}}}, false},
		{"unknown after valid", Response{Callflow: []Action{Hangup(), {Action: "transfer"}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.resp.Validate()
			if tt.valid && err != nil {
				t.Errorf("Validate: %v", err)
			}
			if !tt.valid && !errors.Is(err, ErrInvalidResponse) {
				t.Errorf("Validate = %v, want ErrInvalidResponse", err)
			}
		})
	}
}

func TestSayValidate(t *testing.T) {
	tests := []struct {
		name  string
		say   Say
		valid bool
	}{
		{"text only", Say{Text: "t"}, true},
		{"full", fullSay, true},
		{"zero repetition and speed mean default", Say{Text: "t", Repetition: 0, Speed: 0}, true},
		{"no text", Say{VoiceProfile: "v"}, false},
		{"negative repetition", Say{Text: "t", Repetition: -1}, false},
		{"negative speed", Say{Text: "t", Speed: -0.5}, false},
		// Once accepted: AppendJSON then wrote "speed":+Inf, which is not JSON.
		{"infinite speed", Say{Text: "t", Speed: math.Inf(1)}, false},
		{"negative infinite speed", Say{Text: "t", Speed: math.Inf(-1)}, false},
		// Once accepted: AppendJSON then silently dropped the speed.
		{"NaN speed", Say{Text: "t", Speed: math.NaN()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.say.Validate(); (err == nil) != tt.valid {
				t.Errorf("Validate() = %v, want valid=%v", err, tt.valid)
			}
		})
	}
}

func TestCaptureValidate(t *testing.T) {
	c := func(f func(*Capture)) Capture {
		c := Capture{Say: Say{Text: "Press 1"}, MaxDigits: 1}
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		capture Capture
		wantErr string // "" when valid, else a part of the error
	}{
		{"minimal", c(func(*Capture) {}), ""},
		{"full", fullCapture, ""},
		{"upper limits", c(func(c *Capture) {
			c.MinDigits, c.MaxDigits, c.DigitTimeout, c.OverallTimeout, c.NoOfTries = 20, 20, 300000, 300000, 10
		}), ""},
		{"lower limits", c(func(c *Capture) {
			c.MinDigits, c.MaxDigits, c.DigitTimeout, c.OverallTimeout, c.NoOfTries = 1, 1, 1000, 1000, 1
		}), ""},
		{"overallTimeout alone", c(func(c *Capture) { c.OverallTimeout = 5000 }), ""},
		{"no text", c(func(c *Capture) { c.Text = "" }), "text is required"},
		{"negative repetition", c(func(c *Capture) { c.Repetition = -1 }), "repetition must be >= 0"},
		{"NaN speed", c(func(c *Capture) { c.Speed = math.NaN() }), "speed must be a finite number"},
		{"infinite speed", c(func(c *Capture) { c.Speed = math.Inf(1) }), "speed must be a finite number"},
		{"no maxDigits", c(func(c *Capture) { c.MaxDigits = 0 }), "maxDigits is required"},
		{"maxDigits 21", c(func(c *Capture) { c.MaxDigits = 21 }), "maxDigits must be from 1 to 20"},
		{"negative maxDigits", c(func(c *Capture) { c.MaxDigits = -4 }), "maxDigits must be from 1 to 20"},
		{"negative minDigits", c(func(c *Capture) { c.MinDigits = -1 }), "minDigits must be from 1 to 20"},
		{"minDigits above maxDigits", c(func(c *Capture) { c.MinDigits, c.MaxDigits = 5, 4 }), "minDigits must not exceed maxDigits"},
		{"digitTimeout below a second", c(func(c *Capture) { c.DigitTimeout, c.OverallTimeout = 999, 5000 }), "digitTimeout must be from 1000 to 300000"},
		{"negative digitTimeout", c(func(c *Capture) { c.DigitTimeout, c.OverallTimeout = -1, 5000 }), "digitTimeout must be from 1000 to 300000"},
		{"overallTimeout above five minutes", c(func(c *Capture) { c.OverallTimeout = 300001 }), "overallTimeout must be from 1000 to 300000"},
		{"digitTimeout without overallTimeout", c(func(c *Capture) { c.DigitTimeout = 3000 }), "overallTimeout is required with digitTimeout"},
		{"digitTimeout above overallTimeout", c(func(c *Capture) { c.DigitTimeout, c.OverallTimeout = 6000, 5000 }), "digitTimeout must not exceed overallTimeout"},
		{"noOfTries 11", c(func(c *Capture) { c.NoOfTries = 11 }), "noOfTries must be from 1 to 10"},
		{"negative noOfTries", c(func(c *Capture) { c.NoOfTries = -1 }), "noOfTries must be from 1 to 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.capture.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
			// The callflow the capture makes is judged the same way by
			// Response.Validate, and by CheckCallflow once encoded.
			r := Response{ClientActionID: "x", Callflow: []Action{SayAndCaptureAction(tt.capture)}}
			if rerr := r.Validate(); (rerr == nil) != (err == nil) {
				t.Errorf("Response.Validate = %v, Capture.Validate = %v", rerr, err)
			}
			if err == nil {
				if _, cerr := CheckCallflow(r.JSON()); cerr != nil {
					t.Errorf("CheckCallflow(%s) = %v", r.JSON(), cerr)
				}
			}
		})
	}
}

func TestPlayFileValidate(t *testing.T) {
	tests := []struct {
		name    string
		file    PlayFile
		wantErr string
	}{
		{"https", PlayFile{FileURL: "https://cdn.example.com/menu.wav"}, ""},
		{"with repetition", PlayFile{FileURL: "https://cdn.example.com/menu.wav", Repetition: 3}, ""},
		{"no fileUrl", PlayFile{Repetition: 1}, "fileUrl is required"},
		{"http", PlayFile{FileURL: "http://cdn.example.com/menu.wav"}, "fileUrl must be an absolute https URL"},
		{"negative repetition", PlayFile{FileURL: "https://cdn.example.com/menu.wav", Repetition: -1}, "repetition must be >= 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.file.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// checkFileURLAgreesWithNetURL: a fileUrl that fileURLProblem accepts is
// an absolute https URL to net/url too, with the same host and port, no
// credentials, and is accepted in a playFile reply by CheckCallflow;
// one it refuses is refused there as well.
func checkFileURLAgreesWithNetURL(t *testing.T, raw string) {
	t.Helper()
	problem := fileURLProblem(raw)
	body := []byte(`{"clientActionId":"x","callflow":[{"action":"playFile","params":{"fileUrl":` + string(AppendString(nil, raw)) + `}}]}`)
	_, cerr := CheckCallflow(body)
	if problem != "" {
		if cerr == nil && utf8.ValidString(raw) {
			t.Fatalf("%q: refused (%s), but CheckCallflow accepts it", raw, problem)
		}
		return
	}
	if cerr != nil {
		t.Fatalf("%q: accepted, but CheckCallflow refuses it: %v", raw, cerr)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%q: accepted, net/url refuses it: %v", raw, err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || u.Opaque != "" || len(raw) > MaxFileURLLength {
		t.Fatalf("%q: accepted, net/url reads scheme %q host %q user %v opaque %q", raw, u.Scheme, u.Host, u.User, u.Opaque)
	}
	if host := strings.TrimPrefix(raw, "https://"); !strings.HasPrefix(host, u.Host) {
		t.Fatalf("%q: net/url reads host %q", raw, u.Host)
	}
}

func TestFileURL(t *testing.T) {
	tests := []struct {
		url     string
		problem string // "" when accepted, else a part of the problem
	}{
		{"https://cdn.example.com/menu.wav", ""},
		{"https://cdn.example.com", ""},
		{"https://cdn.example.com/", ""},
		{"https://10.0.0.1:8443/a.mp3", ""},
		{"https://cdn.example.com:443/a.mp3?sig=a%2Fb&exp=1#x", ""},
		{"https://cdn.example.com/a(1)/b;c=d/~e/f_g.wav", ""},
		{"https://cdn.example.com/@user/a.wav", ""},
		{"https://h", ""},
		{"https://cdn.example.com/" + strings.Repeat("a", MaxFileURLLength-len("https://cdn.example.com/")), ""},

		{"", "absolute https URL"},
		{"https://cdn.example.com/" + strings.Repeat("a", MaxFileURLLength-len("https://cdn.example.com/")+1), "at most 2048 bytes"},
		{"http://cdn.example.com/menu.wav", "absolute https URL"},
		{"HTTPS://cdn.example.com/menu.wav", "absolute https URL"},
		{"https:/cdn.example.com/menu.wav", "absolute https URL"},
		{"https:cdn.example.com", "absolute https URL"},
		{"//cdn.example.com/menu.wav", "absolute https URL"},
		{"ftp://cdn.example.com/menu.wav", "absolute https URL"},
		{"cdn.example.com/menu.wav", "absolute https URL"},
		{"https://", "host"},
		{"https:///menu.wav", "host"},
		{"https://?a=1", "host"},
		{"https://.example.com/", "host"},
		{"https://-example.com/", "host"},
		{"https://user@cdn.example.com/", "credentials"},
		{"https://user:pw@cdn.example.com/", "credentials"},
		{"https://[::1]/a.wav", "host"},
		{"https://cdn_example.com/", "host"},
		{"https://cdn.example.com:/a", "port"},
		{"https://cdn.example.com:0/a", "port"},
		{"https://cdn.example.com:080/a", "port"},
		{"https://cdn.example.com:65536/a", "port"},
		{"https://cdn.example.com:99999999999999999999/a", "port"},
		{"https://cdn.example.com:443:1/a", "port"},
		{"https://cdn.example.com:https/a", "port"},
		{"https://cdn.example.com/my menu.wav", "percent-encode"},
		{"https://cdn.example.com/menu.wav\n", "percent-encode"},
		{"https://cdn.example.com/caf\u00e9.wav", "percent-encode"},
		{"https://cdn.example.com/a\\b", "percent-encode"},
		{"https://cdn.example.com/a\"b", "percent-encode"},
		{"https://cdn.example.com/a<b>", "percent-encode"},
		{"https://cdn.example.com/a[1]", "percent-encode"},
		{"https://cdn.example.com/a%", "two hex digits"},
		{"https://cdn.example.com/a%2", "two hex digits"},
		{"https://cdn.example.com/a%zz", "two hex digits"},
		{"https://cdn.example.com/a\x00", "percent-encode"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got := fileURLProblem(tt.url)
			if tt.problem == "" && got != "" || tt.problem != "" && !strings.Contains(got, tt.problem) {
				t.Errorf("fileURLProblem(%q) = %q, want %q", tt.url, got, tt.problem)
			}
			checkFileURLAgreesWithNetURL(t, tt.url)
		})
	}
}

// FuzzFileURL: whatever the text, a fileUrl accepted is one net/url reads
// as an absolute https URL with that host and no credentials, and the
// decider reply check judges a playFile by the same rule.
func FuzzFileURL(f *testing.F) {
	for _, s := range []string{
		"https://cdn.example.com/menu.wav", "https://10.0.0.1:8443/a.mp3?x=%2F#f", "http://a/", "https://u@h/",
		"https://h:65535", "https://h:65536", "https://h/%zz", "https://h/a b", "https://h/é", "https://[::1]/",
		"https://h/#a#b", "https://h?#", "https://h/a?b=c?d", "https://h.:1/", "https://h..example/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		checkFileURLAgreesWithNetURL(t, raw)
	})
}

// TestResponseJSONAlwaysValid checks AppendJSON's promise of strict JSON for
// callflows that Validate would refuse, or that carry odd values: the encoder
// must never produce bytes 8x8 cannot parse.
func TestResponseJSONAlwaysValid(t *testing.T) {
	tests := []struct {
		name string
		act  Action
	}{
		{"makeCall with no numbers", Action{Action: ActionMakeCall, Params: &Params{}}},
		{"makeCall with destination only", Action{Action: ActionMakeCall, Params: &Params{Destination: other}}},
		{"say with empty params", Action{Action: ActionSay, Params: &Params{}}},
		{"say with voiceProfile only", Action{Action: ActionSay, Params: &Params{VoiceProfile: "v"}}},
		{"unknown action with params", Action{Action: "future", Params: &Params{Text: "t"}}},
		// The next three once gave {"params":{,"callRecording":true}} and
		// the like: a comma before the first param written.
		{"makeCall with only callRecording", Action{Action: ActionMakeCall, Params: &Params{CallRecording: true}}},
		{"say with only repetition", Action{Action: ActionSay, Params: &Params{Repetition: 2}}},
		{"say with only speed", Action{Action: ActionSay, Params: &Params{Speed: 1}}},
		// Once written as "speed":+Inf (strconv.AppendFloat), not JSON.
		{"say with infinite speed", SayAction(Say{Text: "t", Speed: math.Inf(1)})},
		{"say with negative infinite speed", SayAction(Say{Text: "t", Speed: math.Inf(-1)})},
		{"say with NaN speed", SayAction(Say{Text: "t", Speed: math.NaN()})},
		{"say with huge speed", SayAction(Say{Text: "t", Speed: math.MaxFloat64})},
		{"say with tiny speed", SayAction(Say{Text: "t", Speed: math.SmallestNonzeroFloat64})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Response{ClientActionID: "x", Callflow: []Action{tt.act}}
			if out := r.JSON(); !json.Valid(out) {
				t.Errorf("invalid JSON: %s", out)
			}
		})
	}
}

func FuzzResponseJSON(f *testing.F) {
	f.Add("id", "Hello", "en-US-ZiraRUS", "en-US", 1, 1.0, "+6512345678", "+6587654321", true)
	f.Add("", "\"\\\n\x00\xff☎", "", "", 0, 0.0, "", "", false)
	f.Add("", "t", "", "", 0, math.Inf(1), "", "", false)
	f.Add("", "t", "", "", -1, math.Inf(-1), "", "", false)
	f.Add("", "t", "", "", 1, math.NaN(), "", "", false)
	f.Fuzz(func(t *testing.T, id, text, voice, lang string, rep int, speed float64, src, dst string, rec bool) {
		if text == "" {
			text = "t"
		}
		r := Response{ClientActionID: id, Callflow: []Action{
			SayAction(Say{Text: text, VoiceProfile: voice, Language: lang, Repetition: rep, Speed: speed}),
			Hangup(),
		}}
		if src != "" && dst != "" {
			r.Callflow = append(r.Callflow, MakeCall(src, dst, rec))
		}
		out := r.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %q", out)
		}
		got, err := ParseResponse(out)
		if err != nil {
			t.Fatalf("ParseResponse(%s): %v", out, err)
		}
		if len(got.Callflow) != len(r.Callflow) {
			t.Fatalf("callflow length %d, want %d", len(got.Callflow), len(r.Callflow))
		}
		// A repetition or speed that is not positive, or a speed JSON
		// cannot hold (NaN, infinities), is left out: 8x8's default.
		wantRep, wantSpeed := max(rep, 0), 0.0
		if speed > 0 && !math.IsInf(speed, 1) {
			wantSpeed = speed
		}
		if p := got.Callflow[0].Params; p.Repetition != wantRep || p.Speed != wantSpeed {
			t.Fatalf("say params %+v, want repetition %d speed %v: %s", p, wantRep, wantSpeed, out)
		}
	})
}

// TestCheckCallflow covers the decider reply check, which the ingest runs
// on every reply before forwarding it to 8x8 verbatim: a reply with a key
// twice, at any level, is refused with an error naming the key (8x8 and
// encoding/json could read it differently, and it would be counted as one
// answer), and a repetition is an integer judged exactly on its text.
func TestCheckCallflow(t *testing.T) {
	const (
		hangup = `{"action":"hangup"}`
		call   = `{"action":"makeCall","params":{"source":"+6512345678","destination":"+6587654321"}}`
	)
	say := func(params string) string { return `{"action":"say","params":{` + params + `}}` }
	capture := func(params string) string { return `{"action":"sayAndCapture","params":{` + params + `}}` }
	tests := []struct {
		name     string
		body     string
		connects bool
		wantMsg  string // "" for a valid reply, else a part of the error
	}{
		{"makeCall", `{"clientActionId":"a","callflow":[` + call + `]}`, true, ""},
		{"say then hangup", `{"clientActionId":"a","callflow":[` + say(`"text":"t","repetition":2`) + `,` + hangup + `]}`, false, ""},
		{"the same key in different objects", `{"clientActionId":"a","callflow":[` + say(`"text":"t"`) + `,` + say(`"text":"t"`) + `]}`, false, ""},
		{"repetition 2.0", `{"callflow":[` + say(`"text":"t","repetition":2.0`) + `]}`, false, ""},
		{"repetition 2e0", `{"callflow":[` + say(`"text":"t","repetition":2e0`) + `]}`, false, ""},

		{"callflow twice", `{"clientActionId":"a","callflow":[` + hangup + `],"callflow":[` + call + `]}`, false, `duplicate key "callflow"`},
		{"callflow twice, the first empty", `{"callflow":[],"callflow":[` + hangup + `]}`, false, `duplicate key "callflow"`},
		{"callflow twice, once escaped", `{"callflow":[` + hangup + `],"call\u0066low":[` + hangup + `]}`, false, `duplicate key "callflow"`},
		{"clientActionId twice", `{"clientActionId":"a","clientActionId":"b","callflow":[` + hangup + `]}`, false, `duplicate key "clientActionId"`},
		{"action twice", `{"callflow":[{"action":"hangup","action":"makeCall"}]}`, false, `callflow[0]: duplicate key "action"`},
		{"params twice", `{"callflow":[{"action":"say","params":{"text":"a"},"params":{"text":"b"}}]}`, false, `callflow[0]: duplicate key "params"`},
		{"text twice", `{"callflow":[` + say(`"text":"a","text":"b"`) + `]}`, false, `callflow[0].params: duplicate key "text"`},
		{"destination twice in the second action", `{"callflow":[` + hangup + `,{"action":"makeCall","params":{"source":"+6512345678","destination":"+6587654321","destination":"+6599999999"}}]}`, false, `callflow[1].params: duplicate key "destination"`},
		{"callRecording twice", `{"callflow":[{"action":"makeCall","params":{"source":"+6512345678","destination":"+6587654321","callRecording":false,"callRecording":true}}]}`, false, `duplicate key "callRecording"`},
		{"repetition just above 2", `{"callflow":[` + say(`"text":"t","repetition":2.00000000000000001`) + `]}`, false, "repetition must be a whole number"},
		{"repetition 1e-400", `{"callflow":[` + say(`"text":"t","repetition":1e-400`) + `]}`, false, "repetition must be a whole number"},

		{"a menu", `{"clientActionId":"flow:m:1:welcome:0","callflow":[{"action":"playFile","params":{"fileUrl":"https://x.example/a.wav"}},` +
			capture(`"text":"Press 1","maxDigits":1,"overallTimeout":5000,"completeOnHash":false`) + `]}`, false, ""},
		{"a transfer", `{"clientActionId":"flow:m:1:sales:0","callflow":[` + say(`"text":"Connecting"`) + `,` + call + `]}`, true, ""},
		{"maxDigits 2.0", `{"callflow":[` + capture(`"text":"t","maxDigits":2.0`) + `]}`, false, ""},
		{"maxDigits twice", `{"callflow":[` + capture(`"text":"t","maxDigits":1,"maxDigits":9`) + `]}`, false, `callflow[0].params: duplicate key "maxDigits"`},
		{"completeOnHash twice", `{"callflow":[` + capture(`"text":"t","maxDigits":1,"completeOnHash":true,"completeOnHash":false`) + `]}`, false, `duplicate key "completeOnHash"`},
		{"endMessage twice", `{"callflow":[` + capture(`"text":"t","maxDigits":1,"endMessage":"a","endMessage":"b"`) + `]}`, false, `duplicate key "endMessage"`},
		{"every capture param once", `{"callflow":[` + capture(`"text":"t","voiceProfile":"v","language":"en","repetition":1,"speed":1.25,"minDigits":1,"maxDigits":1,`+
			`"digitTimeout":1000,"overallTimeout":1000,"completeOnHash":true,"noOfTries":1,"endMessage":"e"`) + `]}`, false, ""},
		{"noOfTries 1.5", `{"callflow":[` + capture(`"text":"t","maxDigits":1,"noOfTries":1.5`) + `]}`, false, "noOfTries must be a whole number"},
		{"overallTimeout 1e3", `{"callflow":[` + capture(`"text":"t","maxDigits":1,"overallTimeout":1e3`) + `]}`, false, ""},
		{"overallTimeout 9.99e2", `{"callflow":[` + capture(`"text":"t","maxDigits":1,"overallTimeout":9.99e2`) + `]}`, false, "overallTimeout must be from 1000 to 300000"},
		{"speed 1e400", `{"callflow":[` + say(`"text":"t","speed":1e400`) + `]}`, false, "speed must be a finite number"},
		{"speed 1e-400 reads as 0", `{"callflow":[` + say(`"text":"t","speed":1e-400`) + `]}`, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := CheckCallflow([]byte(tt.body))
			if tt.wantMsg == "" {
				if err != nil || v.Connects() != tt.connects {
					t.Fatalf("CheckCallflow = %+v, %v; want connects %v, nil", v, err, tt.connects)
				}
				// ParseResponse reads what CheckCallflow accepts, and
				// what it reads is valid.
				r, err := ParseResponse([]byte(tt.body))
				if err != nil {
					t.Fatalf("ParseResponse refuses what CheckCallflow accepts: %v", err)
				}
				if err := r.Validate(); err != nil {
					t.Fatalf("ParseResponse gives an invalid response: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckCallflow accepted %s", tt.body)
			}
			if !errors.Is(err, ErrInvalidResponse) {
				t.Errorf("errors.Is(%v, ErrInvalidResponse) = false", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if o, err := Outcome([]byte(tt.body)); err == nil {
				t.Errorf("Outcome accepted %s as %s", tt.body, o)
			}
			if r, err := ParseResponse([]byte(tt.body)); err == nil {
				t.Errorf("ParseResponse accepted %s as %+v", tt.body, r)
			}
		})
	}
}

// TestActionParamsFit: checkAction lists the params it has read in an
// array of maxActionParams; an action with more would overflow it.
func TestActionParamsFit(t *testing.T) {
	for name, params := range actionParams {
		if len(params) > maxActionParams {
			t.Errorf("%s takes %d params, checkAction holds %d", name, len(params), maxActionParams)
		}
	}
}

func BenchmarkCheckCallflow(b *testing.B) {
	r := Response{ClientActionID: "a1d6a5e3-efec-11e9-b999-7d370b5f90d1", Callflow: []Action{
		SayAction(Say{Text: "Connecting you", VoiceProfile: "en-US-ZiraRUS", Repetition: 1, Speed: 1}),
		MakeCall("+6512345678", "+6587654321", true),
	}}
	body := r.JSON()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := CheckCallflow(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckCallflowMenu checks a flow's menu answer: a playFile and
// a sayAndCapture with every param, the longest reply a flow gives.
func BenchmarkCheckCallflowMenu(b *testing.B) {
	r := Response{ClientActionID: "flow:main-menu:12:welcome:1", Callflow: []Action{
		PlayFileAction(PlayFile{FileURL: "https://cdn.example.com/prompts/welcome.wav", Repetition: 1}),
		SayAndCaptureAction(fullCapture),
	}}
	body := r.JSON()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := CheckCallflow(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeMenu(b *testing.B) {
	r := Response{ClientActionID: "flow:main-menu:12:welcome:1", Callflow: []Action{SayAndCaptureAction(fullCapture)}}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkEncodeResponse(b *testing.B) {
	r := Response{ClientActionID: "a1d6a5e3-efec-11e9-b999-7d370b5f90d1", Callflow: []Action{MakeCall("+6512345678", "+6587654321", true)}}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkEncodeSayThenHangup(b *testing.B) {
	r := SayThenHangup("oos", Say{Text: "Sorry, this number cannot connect your call. Goodbye.", VoiceProfile: "en-US-ZiraRUS", Repetition: 1, Speed: 1})
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendJSON(buf[:0])
	}
}
