package admin

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/callflow/callflow/internal/session"
)

// FuzzParseSessionRequest proves the admin API's request parser on any
// body: it never panics; what it refuses gets an error with a message;
// what it accepts is exactly one JSON object (nothing before or after it),
// holds only valid UTF-8 strings, and survives a round trip through
// encoding/json unchanged, so that the session built from it is the one
// the client sent. Its seed corpus is in testdata/fuzz/FuzzParseSessionRequest.
func FuzzParseSessionRequest(f *testing.F) {
	f.Add([]byte(validSession))
	f.Add([]byte(`{"virtualNumber":"+65 9876 54321","participants":["(65) 1234-56789","6587654321"],"ttlSeconds":3600,"callRecording":true,"greeting":{"text":"Hello","voiceProfile":"en-US-ZiraRUS","language":"en-US","repetition":2,"speed":1.5}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseSessionRequest(bytes.NewReader(body))
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("refused %q with an empty message", body)
			}
			return
		}
		trimmed := bytes.TrimLeft(body, " \t\r\n")
		if !json.Valid(body) || len(trimmed) == 0 || trimmed[0] != '{' {
			t.Fatalf("accepted %q, which is not exactly one JSON object", body)
		}
		strs := append([]string{req.VirtualNumber}, req.Participants...)
		if g := req.Greeting; g != nil {
			strs = append(strs, g.Text, g.VoiceProfile, g.Language)
		}
		for _, s := range strs {
			if !utf8.ValidString(s) {
				t.Fatalf("accepted a string that is not UTF-8: %q", s)
			}
		}
		again, err := json.Marshal(req)
		if err != nil {
			// Only a greeting speed that JSON cannot hold could do this,
			// and JSON numbers cannot express one.
			t.Fatalf("accepted request does not encode: %+v: %v", req, err)
		}
		back, err := ParseSessionRequest(strings.NewReader(string(again)))
		if err != nil {
			t.Fatalf("re-encoded request %s is refused: %v", again, err)
		}
		if !reflect.DeepEqual(normalized(back), normalized(req)) {
			t.Fatalf("round trip changed the request: %+v, want %+v", back, req)
		}
	})
}

// normalized treats an empty and a missing participants list alike (both
// encode as JSON null or [] and mean no participants).
func normalized(r session.Request) session.Request {
	if len(r.Participants) == 0 {
		r.Participants = nil
	}
	return r
}
