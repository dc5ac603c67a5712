package session_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/callflow/callflow/internal/session"
)

// exampleFlow is the flow of issue 13.
const exampleFlow = `{
  "id": "main-menu",
  "subAccountId": "acme",
  "start": "welcome",
  "steps": {
    "welcome": {"menu": {"say": {"text": "For sales press 1. For your driver press 2."},
                         "maxDigits": 1, "timeoutSeconds": 5, "tries": 3,
                         "options": {"1": "sales", "2": "driver"}, "onFailure": "bye"}},
    "sales":   {"transfer": {"destination": "+6560000001", "say": {"text": "Connecting you to sales."}}},
    "driver":  {"pin": {"say": {"text": "Enter your order PIN, then hash."},
                        "minDigits": 4, "maxDigits": 8, "tries": 2, "onFailure": "bye"}},
    "bye":     {"hangup": {"say": {"text": "Goodbye."}}}
  }
}`

// flowJSON builds a flow document: id "f", start "a", the steps given as
// JSON objects by name.
func flowJSON(steps map[string]string) string {
	var b strings.Builder
	b.WriteString(`{"id":"f","start":"a","steps":{`)
	first := true
	for name, st := range steps {
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, "%q:%s", name, st)
	}
	b.WriteString("}}")
	return b.String()
}

const (
	sayHi   = `{"text":"Hi"}`
	hangup  = `{"hangup":{}}`
	playHi  = `{"play":{"say":` + sayHi + `}}`
	menuOf1 = `"say":` + sayHi + `,"options":{"1":"b"}`
)

// parseValid parses and validates a flow document.
func parseValid(doc string) (session.Flow, error) {
	f, err := session.ParseFlow([]byte(doc))
	if err != nil {
		return f, err
	}
	return f, f.Validate()
}

// TestFlowValidate: each rule of Flow.Validate (and of ParseFlow's strict
// reading) refuses with ErrInvalid naming the step and field.
func TestFlowValidate(t *testing.T) {
	long := strings.Repeat("x", 65)
	many := map[string]string{"a": `{"menu":{"say":` + sayHi + `,"maxDigits":3,"options":{`}
	var opts []string
	for i := range 101 {
		opts = append(opts, fmt.Sprintf(`"%d":"b"`, i))
	}
	many["a"] += strings.Join(opts, ",") + `}}}`
	many["b"] = hangup
	tooMany := map[string]string{}
	prev := "a"
	for i := range session.MaxFlowSteps {
		next := fmt.Sprintf("s%d", i)
		tooMany[prev] = `{"play":{"say":` + sayHi + `,"next":"` + next + `"}}`
		prev = next
	}
	tooMany[prev] = hangup
	tests := []struct {
		name string
		doc  string
		want string // in the error; "" accepts
	}{
		{"the issue's example", exampleFlow, ""},
		{"one hangup", flowJSON(map[string]string{"a": hangup}), ""},
		// The flow.
		{"id with a space", `{"id":"main menu","start":"a","steps":{"a":` + hangup + `}}`, `id: "main menu"`},
		{"id with a dot", `{"id":"main.menu","start":"a","steps":{"a":` + hangup + `}}`, `id: "main.menu"`},
		{"id missing", `{"start":"a","steps":{"a":` + hangup + `}}`, `id: ""`},
		{"id too long", `{"id":"` + long + `","start":"a","steps":{"a":` + hangup + `}}`, `id: "` + long},
		{"bad subAccountId", `{"id":"f","subAccountId":"a b","start":"a","steps":{"a":` + hangup + `}}`, "subAccountId:"},
		{"no steps", `{"id":"f","start":"a","steps":{}}`, "steps: required"},
		{"steps missing", `{"id":"f","start":"a"}`, "steps: required"},
		{"too many steps", flowJSON(tooMany), "steps: 101 steps; at most 100"},
		{"step name with a dot", flowJSON(map[string]string{"a": hangup, "b.c": hangup}), `steps: step name "b.c"`},
		{"step name too long", flowJSON(map[string]string{"a": hangup, long: hangup}), `steps: step name "` + long},
		{"start missing", `{"id":"f","steps":{"a":` + hangup + `}}`, "start: required"},
		{"start does not exist", `{"id":"f","start":"b","steps":{"a":` + hangup + `}}`, `start: step "b" does not exist`},
		// Step kinds.
		{"unknown kind", flowJSON(map[string]string{"a": `{"ring":{}}`}), `steps.a: unknown step kind "ring"`},
		{"kind in capitals", flowJSON(map[string]string{"a": `{"Hangup":{}}`}), `steps.a: unknown step kind "Hangup"`},
		{"no kind", flowJSON(map[string]string{"a": `{}`}), "steps.a: no step kind"},
		{"kind null", flowJSON(map[string]string{"a": `{"hangup":null}`}), "steps.a: no step kind"},
		{"two kinds", flowJSON(map[string]string{"a": `{"hangup":{},"play":{"say":` + sayHi + `}}`}), "steps.a: play and hangup in one step"},
		{"a step that is not an object", flowJSON(map[string]string{"a": `"hangup"`}), "steps.a: wrong type"},
		// Prompts.
		{"menu without prompt", flowJSON(map[string]string{"a": `{"menu":{"options":{"1":"b"}}}`, "b": hangup}), "steps.a.menu.say: required"},
		{"menu with a file only", flowJSON(map[string]string{"a": `{"menu":{"playFile":{"fileUrl":"https://x.example/a.wav"},"options":{"1":"b"}}}`, "b": hangup}), "steps.a.menu.say: required: the text said as the digits are captured"},
		{"menu with a file, then its say", flowJSON(map[string]string{"a": `{"menu":{"playFile":{"fileUrl":"https://x.example/a.wav"},` + menuOf1 + `}}`, "b": hangup}), ""},
		{"pin with a file, then its say", flowJSON(map[string]string{"a": `{"pin":{"playFile":{"fileUrl":"https://x.example/a.wav"},"say":` + sayHi + `}}`}), ""},
		{"hangup with say and playFile", flowJSON(map[string]string{"a": `{"hangup":{"say":` + sayHi + `,"playFile":{"fileUrl":"https://x.example/a.wav"}}}`}), "steps.a.hangup.playFile: give say or playFile, not both"},
		{"say and playFile", flowJSON(map[string]string{"a": `{"play":{"say":` + sayHi + `,"playFile":{"fileUrl":"https://x.example/a.wav"}}}`}), "steps.a.play.playFile: give say or playFile, not both"},
		{"say without text", flowJSON(map[string]string{"a": `{"play":{"say":{"voiceProfile":"en-US-ZiraRUS"}}}`}), "steps.a.play.say.text: required"},
		{"say text too long", flowJSON(map[string]string{"a": `{"play":{"say":{"text":"` + strings.Repeat("a", 1001) + `"}}}`}), "steps.a.play.say.text: longer than 1000 bytes"},
		{"say repetition 11", flowJSON(map[string]string{"a": `{"play":{"say":{"text":"a","repetition":11}}}`}), "steps.a.play.say.repetition: 11"},
		{"say repetition negative", flowJSON(map[string]string{"a": `{"play":{"say":{"text":"a","repetition":-1}}}`}), "steps.a.play.say.repetition: -1"},
		{"say speed negative", flowJSON(map[string]string{"a": `{"play":{"say":{"text":"a","speed":-1}}}`}), "steps.a.play.say: speed"},
		{"say voice profile too long", flowJSON(map[string]string{"a": `{"play":{"say":{"text":"a","voiceProfile":"` + long + `"}}}`}), "steps.a.play.say.voiceProfile"},
		{"say language with a newline", flowJSON(map[string]string{"a": `{"play":{"say":{"text":"a","language":"en\nUS"}}}`}), "steps.a.play.say.language"},
		{"playFile without url", flowJSON(map[string]string{"a": `{"play":{"playFile":{}}}`}), "steps.a.play.playFile.fileUrl: required"},
		{"menu's playFile over http", flowJSON(map[string]string{"a": `{"menu":{"playFile":{"fileUrl":"http://x.example/a.wav"},` + menuOf1 + `}}`, "b": hangup}), "steps.a.menu.playFile.fileUrl"},
		{"playFile over http", flowJSON(map[string]string{"a": `{"play":{"playFile":{"fileUrl":"http://x.example/a.wav"}}}`}), "steps.a.play.playFile.fileUrl: \"http://x.example/a.wav\": must be an absolute https URL"},
		{"playFile over HTTPS in capitals", flowJSON(map[string]string{"a": `{"play":{"playFile":{"fileUrl":"HTTPS://x.example/a.wav"}}}`}), "steps.a.play.playFile.fileUrl: \"HTTPS://x.example/a.wav\": must be an absolute https URL"},
		{"playFile relative", flowJSON(map[string]string{"a": `{"play":{"playFile":{"fileUrl":"/a.wav"}}}`}), "steps.a.play.playFile.fileUrl"},
		{"playFile without host", flowJSON(map[string]string{"a": `{"play":{"playFile":{"fileUrl":"https:///a.wav"}}}`}), "steps.a.play.playFile.fileUrl: \"https:///a.wav\": must name its host"},
		{"playFile with credentials", flowJSON(map[string]string{"a": `{"play":{"playFile":{"fileUrl":"https://u:p@x.example/a.wav"}}}`}), "steps.a.play.playFile.fileUrl: \"https://u:p@x.example/a.wav\": must not carry credentials"},
		{"playFile with a space", flowJSON(map[string]string{"a": `{"play":{"playFile":{"fileUrl":"https://x.example/a b.wav"}}}`}), "steps.a.play.playFile.fileUrl: \"https://x.example/a b.wav\": must percent-encode spaces"},
		{"playFile url too long", flowJSON(map[string]string{"a": `{"play":{"playFile":{"fileUrl":"https://x.example/` + strings.Repeat("a", 2040) + `"}}}`}), "...\": must be at most 2048 bytes"},
		{"playFile repetition 11", flowJSON(map[string]string{"a": `{"play":{"playFile":{"fileUrl":"https://x.example/a.wav","repetition":11}}}`}), "steps.a.play.playFile.repetition: 11"},
		{"playFile accepted", flowJSON(map[string]string{"a": `{"play":{"playFile":{"fileUrl":"https://x.example:8443/a%20b.wav?v=2","repetition":2}}}`}), ""},
		{"hangup with a goodbye", flowJSON(map[string]string{"a": `{"hangup":{"say":{"text":"Bye"}}}`}), ""},
		{"transfer without announcement", flowJSON(map[string]string{"a": `{"transfer":{"destination":"(65) 6000-0001"}}`}), ""},
		// Menu.
		{"menu without options", flowJSON(map[string]string{"a": `{"menu":{"say":` + sayHi + `}}`}), "steps.a.menu.options: required"},
		{"menu option #", flowJSON(map[string]string{"a": `{"menu":{"say":` + sayHi + `,"options":{"#":"b"}}}`, "b": hangup}), `steps.a.menu.options: key "#"`},
		{"menu option a letter", flowJSON(map[string]string{"a": `{"menu":{"say":` + sayHi + `,"options":{"a":"b"}}}`, "b": hangup}), `steps.a.menu.options: key "a"`},
		{"menu option empty", flowJSON(map[string]string{"a": `{"menu":{"say":` + sayHi + `,"options":{"":"b"}}}`, "b": hangup}), `steps.a.menu.options: key ""`},
		{"menu option * accepted", flowJSON(map[string]string{"a": `{"menu":{"say":` + sayHi + `,"options":{"*":"b","0":"b"}}}`, "b": hangup}), ""},
		{"menu option 21 keys", flowJSON(map[string]string{"a": `{"menu":{"say":` + sayHi + `,"options":{"` + strings.Repeat("1", 21) + `":"b"}}}`, "b": hangup}), `steps.a.menu.options: key "111`},
		{"menu option 20 keys", flowJSON(map[string]string{"a": `{"menu":{"say":` + sayHi + `,"options":{"` + strings.Repeat("1", 20) + `":"b"}}}`, "b": hangup}), ""},
		{"menu options too many", flowJSON(many), "steps.a.menu.options: 101 options; at most 100"},
		{"menu maxDigits 21", flowJSON(map[string]string{"a": `{"menu":{` + menuOf1 + `,"maxDigits":21}}`, "b": hangup}), "steps.a.menu.maxDigits: 21: want 1 to 20"},
		{"menu maxDigits negative", flowJSON(map[string]string{"a": `{"menu":{` + menuOf1 + `,"maxDigits":-1}}`, "b": hangup}), "steps.a.menu.maxDigits: -1"},
		{"menu option longer than maxDigits", flowJSON(map[string]string{"a": `{"menu":{"say":` + sayHi + `,"maxDigits":1,"options":{"12":"b"}}}`, "b": hangup}), "steps.a.menu.options.12: 2 keys, more than maxDigits (1)"},
		{"menu timeout 61", flowJSON(map[string]string{"a": `{"menu":{` + menuOf1 + `,"timeoutSeconds":61}}`, "b": hangup}), "steps.a.menu.timeoutSeconds: 61"},
		{"menu timeout negative", flowJSON(map[string]string{"a": `{"menu":{` + menuOf1 + `,"timeoutSeconds":-5}}`, "b": hangup}), "steps.a.menu.timeoutSeconds: -5"},
		{"menu tries 11", flowJSON(map[string]string{"a": `{"menu":{` + menuOf1 + `,"tries":11}}`, "b": hangup}), "steps.a.menu.tries: 11"},
		{"menu tries negative", flowJSON(map[string]string{"a": `{"menu":{` + menuOf1 + `,"tries":-1}}`, "b": hangup}), "steps.a.menu.tries: -1"},
		{"menu retry without text", flowJSON(map[string]string{"a": `{"menu":{` + menuOf1 + `,"retry":{}}}`, "b": hangup}), "steps.a.menu.retry.text: required"},
		{"menu option to nowhere", flowJSON(map[string]string{"a": `{"menu":{"say":` + sayHi + `,"options":{"1":"b","3":"nowhere"}}}`, "b": hangup}), `steps.a.menu.options.3: step "nowhere" does not exist`},
		{"menu onFailure to nowhere", flowJSON(map[string]string{"a": `{"menu":{` + menuOf1 + `,"onFailure":"nowhere"}}`, "b": hangup}), `steps.a.menu.onFailure: step "nowhere" does not exist`},
		// Transfer.
		{"transfer without destination", flowJSON(map[string]string{"a": `{"transfer":{}}`}), "steps.a.transfer.destination: required"},
		{"transfer to a name", flowJSON(map[string]string{"a": `{"transfer":{"destination":"front desk"}}`}), `steps.a.transfer.destination: "front desk" is not a phone number`},
		// PIN.
		{"pin without prompt", flowJSON(map[string]string{"a": `{"pin":{}}`}), "steps.a.pin.say: required"},
		{"pin minDigits 3", flowJSON(map[string]string{"a": `{"pin":{"say":` + sayHi + `,"minDigits":3}}`}), "steps.a.pin.minDigits: 3"},
		{"pin maxDigits 9", flowJSON(map[string]string{"a": `{"pin":{"say":` + sayHi + `,"maxDigits":9}}`}), "steps.a.pin.maxDigits: 9"},
		{"pin minDigits above maxDigits", flowJSON(map[string]string{"a": `{"pin":{"say":` + sayHi + `,"minDigits":6,"maxDigits":5}}`}), "steps.a.pin.minDigits: 6 is more than maxDigits (5)"},
		{"pin tries 11", flowJSON(map[string]string{"a": `{"pin":{"say":` + sayHi + `,"tries":11}}`}), "steps.a.pin.tries: 11"},
		{"pin timeout 61", flowJSON(map[string]string{"a": `{"pin":{"say":` + sayHi + `,"timeoutSeconds":61}}`}), "steps.a.pin.timeoutSeconds: 61"},
		{"pin onFailure to nowhere", flowJSON(map[string]string{"a": `{"pin":{"say":` + sayHi + `,"onFailure":"nowhere"}}`}), `steps.a.pin.onFailure: step "nowhere" does not exist`},
		// Masking, play.
		{"masking onFailure to nowhere", flowJSON(map[string]string{"a": `{"masking":{"onFailure":"nowhere"}}`}), `steps.a.masking.onFailure: step "nowhere" does not exist`},
		{"masking", flowJSON(map[string]string{"a": `{"masking":{"onFailure":"b"}}`, "b": hangup}), ""},
		{"play without prompt", flowJSON(map[string]string{"a": `{"play":{}}`}), "steps.a.play.say: required"},
		{"play next to nowhere", flowJSON(map[string]string{"a": `{"play":{"say":` + sayHi + `,"next":"nowhere"}}`}), `steps.a.play.next: step "nowhere" does not exist`},
		// The graph.
		{"unreachable step", flowJSON(map[string]string{"a": hangup, "b": hangup}), `steps.b: no path from start "a" reaches it`},
		{"play loops on itself", flowJSON(map[string]string{"a": `{"play":{"say":` + sayHi + `,"next":"a"}}`}), `steps.a.play.next: goes back to "a" by itself (a → a)`},
		{"plays loop", flowJSON(map[string]string{"a": `{"play":{"say":` + sayHi + `,"next":"b"}}`, "b": `{"play":{"say":` + sayHi + `,"next":"a"}}`}), `steps.b.play.next: goes back to "a" by itself (a → b → a)`},
		{"menu fails to itself", flowJSON(map[string]string{"a": `{"menu":{` + menuOf1 + `,"onFailure":"a"}}`, "b": hangup}), `steps.a.menu.onFailure: goes back to "a" by itself`},
		{"pin and menu fail to each other", flowJSON(map[string]string{"a": `{"menu":{` + menuOf1 + `,"onFailure":"b"}}`, "b": `{"pin":{"say":` + sayHi + `,"onFailure":"a"}}`}), `goes back to "a" by itself (a → b → a)`},
		{"masking fails into a play loop", flowJSON(map[string]string{"a": `{"masking":{"onFailure":"b"}}`, "b": `{"play":{"say":` + sayHi + `,"next":"a"}}`}), `goes back to "a" by itself`},
		{"loop through a menu option", flowJSON(map[string]string{"a": `{"menu":{"say":` + sayHi + `,"options":{"1":"b","9":"c"}}}`, "b": `{"play":{"say":` + sayHi + `,"next":"a"}}`, "c": hangup}), ""},
		// Strict reading.
		{"unknown field in a kind", flowJSON(map[string]string{"a": `{"menu":{` + menuOf1 + `,"maxDigit":1}}`, "b": hangup}), "steps.a.menu.maxDigit: unknown field"},
		{"unknown field in a say", flowJSON(map[string]string{"a": `{"play":{"say":{"text":"a","voice":"x"}}}`}), "steps.a.play.say.voice: unknown field"},
		{"unknown field in the flow", `{"id":"f","start":"a","steps":{"a":` + hangup + `},"owner":"x"}`, "owner: unknown field"},
		{"wrong type", flowJSON(map[string]string{"a": `{"menu":{` + menuOf1 + `,"tries":"3"}}`, "b": hangup}), "steps.a.menu.tries: wrong type"},
		{"wrong type in a say", flowJSON(map[string]string{"a": `{"play":{"say":{"text":5}}}`}), "steps.a.play.say.text: wrong type"},
		{"step given twice", `{"id":"f","start":"a","steps":{"a":` + hangup + `,"a":` + playHi + `}}`, "steps.a: given twice"},
		{"option given twice", flowJSON(map[string]string{"a": `{"menu":{"say":` + sayHi + `,"options":{"1":"b","1":"b"}}}`, "b": hangup}), "steps.a.menu.options.1: given twice"},
		{"two values", `{"id":"f","start":"a","steps":{"a":` + hangup + `}} {}`, "body: more than one JSON value"},
		{"not an object", `[]`, "body: want a JSON object"},
		{"a step kind that is not an object", flowJSON(map[string]string{"a": `{"hangup":[]}`}), "steps.a.hangup: wrong type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseValid(tt.doc)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				for name, st := range f.Steps {
					if st.Kind() == "" {
						t.Errorf("step %s of a valid flow has no kind", name)
					}
				}
				return
			}
			if !errors.Is(err, session.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want ErrInvalid with %q", err, tt.want)
			}
		})
	}
}

// TestFlowDefaults: Validate fills in what was left out, and the
// example's values are kept as given.
func TestFlowDefaults(t *testing.T) {
	f, err := parseValid(exampleFlow)
	if err != nil {
		t.Fatal(err)
	}
	w := f.Steps["welcome"].Menu
	if w.MaxDigits != 1 || w.TimeoutSeconds != 5 || w.Tries != 3 || w.Say.VoiceProfile != session.DefaultVoiceProfile {
		t.Errorf("welcome: %+v", w)
	}
	d := f.Steps["driver"].PIN
	if d.MinDigits != 4 || d.MaxDigits != 8 || d.Tries != 2 || d.TimeoutSeconds != session.DefaultPINTimeoutSeconds {
		t.Errorf("driver: %+v", d)
	}
	if got := f.Steps["sales"].Transfer.Destination; got != "+6560000001" {
		t.Errorf("destination %q", got)
	}
	g, err := parseValid(flowJSON(map[string]string{
		"a": `{"menu":{"say":` + sayHi + `,"options":{"1":"b","123":"c"}}}`,
		"b": `{"pin":{"say":` + sayHi + `}}`, "c": `{"transfer":{"destination":"6560000002"}}`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	m, p := g.Steps["a"].Menu, g.Steps["b"].PIN
	if m.MaxDigits != 3 || m.Tries != session.DefaultFlowTries || m.TimeoutSeconds != session.DefaultMenuTimeoutSeconds {
		t.Errorf("menu defaults: %+v", m)
	}
	if p.MinDigits != session.PINMinLength || p.MaxDigits != session.PINMaxLength || p.Tries != session.DefaultFlowTries {
		t.Errorf("pin defaults: %+v", p)
	}
	if g.Steps["c"].Transfer.Destination != "+6560000002" {
		t.Errorf("destination %q", g.Steps["c"].Transfer.Destination)
	}
	// Validating again changes nothing.
	before, _ := json.Marshal(g)
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	if after, _ := json.Marshal(g); !bytes.Equal(before, after) {
		t.Errorf("a second Validate changed the flow:\n%s\n%s", before, after)
	}
	// Kinds and transitions, as the engine reads them.
	st := f.Steps["welcome"]
	if st.Kind() != session.StepMenu {
		t.Errorf("Kind = %q", st.Kind())
	}
	want := []session.Transition{{Field: "menu.options.1", To: "sales", Chosen: true}, {Field: "menu.options.2", To: "driver", Chosen: true}, {Field: "menu.onFailure", To: "bye"}}
	if got := st.Transitions(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Transitions = %v, want %v", got, want)
	}
}

// FuzzFlowValidate: any JSON decoded into a Flow (leniently, as
// encoding/json does, and strictly, as ParseFlow does) never makes
// Validate panic, and a valid flow survives a JSON round trip: it
// encodes, decodes (both ways) to the same flow, and is still valid.
func FuzzFlowValidate(f *testing.F) {
	f.Add([]byte(exampleFlow))
	f.Add([]byte(flowJSON(map[string]string{"a": `{"menu":{"say":` + sayHi + `,"options":{"1":"b","*":"c"},"retry":{"text":"Sorry"}}}`,
		"b": `{"play":{"playFile":{"fileUrl":"https://x.example/a.wav","repetition":2},"next":"a"}}`,
		"c": `{"masking":{"onFailure":"d"}}`, "d": `{"hangup":{"say":{"text":"Bye","speed":1.5}}}`})))
	f.Add([]byte(flowJSON(map[string]string{"a": `{"play":{"say":` + sayHi + `,"next":"a"}}`})))
	f.Add([]byte(flowJSON(map[string]string{"a": `{"pin":{"playFile":{"fileUrl":"https://x.example/pin.wav"},"say":` + sayHi + `,"onFailure":"b"}}`, "b": hangup})))
	f.Add([]byte(flowJSON(map[string]string{"a": `{"ring":{},"menu":null}`})))
	f.Add([]byte(`{"id":"f","start":"a","steps":{"a":{"pin":{"say":{"text":"x"},"minDigits":9}}},"version":3,"updatedAt":"2026-01-02T03:04:05+08:00"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var lenient session.Flow
		if json.Unmarshal(data, &lenient) == nil {
			roundTrip(t, lenient)
		}
		if strict, err := session.ParseFlow(data); err == nil {
			roundTrip(t, strict)
		} else if !errors.Is(err, session.ErrInvalid) {
			t.Fatalf("ParseFlow error %v is not ErrInvalid", err)
		}
	})
}

func roundTrip(t *testing.T, f session.Flow) {
	t.Helper()
	if err := f.Validate(); err != nil {
		if !errors.Is(err, session.ErrInvalid) {
			t.Fatalf("Validate error %v is not ErrInvalid", err)
		}
		return
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatalf("a valid flow does not encode: %v", err)
	}
	var lenient session.Flow
	if err := json.Unmarshal(b, &lenient); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	strict, err := session.ParseFlow(b)
	if err != nil {
		t.Fatalf("ParseFlow(%s): %v", b, err)
	}
	for _, back := range []session.Flow{lenient, strict} {
		if err := back.Validate(); err != nil {
			t.Fatalf("round trip of %s is invalid: %v", b, err)
		}
		again, err := json.Marshal(back)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the flow:\n%s\n%s", b, again)
		}
	}
}
