package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const (
	vn    = "+6512345678" // the virtual number
	other = "+6587654321" // the other participant
)

var fullSay = Say{Text: "Hello This is a test message", VoiceProfile: "en-US-ZiraRUS", Language: "en-US", Repetition: 2, Speed: 1.5}

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
		{"sayAndCapture (not encodable here)", `{"callflow":[{"action":"sayAndCapture","params":{"text":"Press 1"}}]}`, `unknown action "sayAndCapture"`},
		{"playFile (not encodable here)", `{"callflow":[{"action":"playFile","params":{"fileUrl":"https://example.com/a.wav"}}]}`, `unknown action "playFile"`},
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
		{"playFile", Response{Callflow: []Action{{Action: ActionPlayFile}}}, false},
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := CheckCallflow([]byte(tt.body))
			if tt.wantMsg == "" {
				if err != nil || v.Connects() != tt.connects {
					t.Fatalf("CheckCallflow = %+v, %v; want connects %v, nil", v, err, tt.connects)
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
