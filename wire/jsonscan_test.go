package wire

import (
	"encoding/json"
	"testing"
)

// FuzzScannerAgreesWithEncodingJSON: on any JSON document, the scanner
// accepts exactly what encoding/json accepts, and decodes strings to the
// same text.
func FuzzScannerAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`"plain"`, `"esc \" \\ \/ \b \f \n \r \t"`, `"\u00e9\u4e2d\ud83d\ude00"`, `"lone \ud800 surrogate"`,
		`{"a":[1,2.5,-3e4,true,false,null,{"b":"c"}]}`, `[]`, `{}`, `"bad \x"`, `{"a":}`, `01`, `1.`, `-`, "\"\xff\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		valid := json.Valid(data)
		d := scanner{s: string(data)}
		var got string
		var gerr error
		if d.peek() == '"' {
			got, gerr = d.rawString()
		} else {
			gerr = d.skip()
		}
		if gerr == nil {
			gerr = d.end()
		}
		if valid != (gerr == nil) {
			t.Fatalf("%q: json.Valid %v, scanner error %v", data, valid, gerr)
		}
		var want string
		if valid && json.Unmarshal(data, &want) == nil && want != got {
			t.Fatalf("%q: encoding/json decodes %q, scanner %q", data, want, got)
		}
	})
}
