package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
)

// jsonDepth is the deepest nesting of arrays and objects in a valid JSON
// document (a top-level scalar is 0, [] is 1).
func jsonDepth(data []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// jsonWalk reads a valid JSON document with encoding/json's tokenizer and
// reports every number, as written, and whether some object holds a key
// twice (keys compared as encoding/json decodes them).
func jsonWalk(tb testing.TB, data []byte) (numbers []string, duplicate bool) {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	// One frame per open array or object: its keys seen (nil for an
	// array) and whether the next token of an object is a key.
	type frame struct {
		keys   map[string]bool
		wasKey bool
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return numbers, duplicate
		}
		if err != nil {
			tb.Fatalf("%q: json.Valid accepts it, the tokenizer fails: %v", data, err)
		}
		if tok == json.Delim('}') || tok == json.Delim(']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			top := &stack[n-1]
			if !top.wasKey {
				// A key: the tokenizer returns it as a string.
				k := tok.(string)
				duplicate = duplicate || top.keys[k]
				top.keys[k] = true
				top.wasKey = true
				continue
			}
			top.wasKey = false // this token is the member's value
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, frame{keys: map[string]bool{}})
			case '[':
				stack = append(stack, frame{})
			}
		case json.Number:
			numbers = append(numbers, string(v))
		}
	}
}

// exactWhole is the integer rule computed another way, with math/big: the
// value of the JSON number num, when it is a whole number within int64.
// known is false for the few texts too big for math/big to read cheaply
// (a nonzero mantissa of thousands of digits with an exponent beyond
// ±10000).
func exactWhole(num string) (v int64, whole, known bool) {
	mant, expText, hasExp := strings.Cut(strings.ToLower(num), "e")
	if strings.Trim(mant, "-0.") == "" {
		return 0, true, true // every digit is 0: -0, 0.000e-999999
	}
	if hasExp {
		exp, err := strconv.ParseInt(expText, 10, 64)
		if err != nil || exp > 10000 || exp < -10000 {
			if len(mant) >= 5000 {
				return 0, false, false
			}
			// 10^-5000 <= |mantissa| < 10^5000: far beyond int64, or a
			// fraction between 0 and 1.
			return 0, false, true
		}
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, false, false
	}
	if !r.IsInt() || !r.Num().IsInt64() {
		return 0, false, true
	}
	return r.Num().Int64(), true, true
}

// FuzzScannerAgreesWithEncodingJSON: on any input, the scanner accepts
// exactly what encoding/json accepts, decodes strings to the same text, and
// differs only where it means to, each difference checked as its rule:
//
//   - Depth: a document nested deeper than maxDepth (64) arrays and objects
//     is refused with a "nested deeper" error; encoding/json accepts it.
//   - Integers: the integer reader takes a number whose exact value is a
//     whole number within int64, however written (200, 200.0, 2e2,
//     20000e-2, -0), and nothing else; encoding/json's int64 takes only
//     plain digits, and its float64 would round 200.00000000000000001 to
//     200. The reference here is math/big.
//   - Duplicate keys: the scanner itself, like encoding/json, accepts an
//     object with a key twice (ParseEvent lets the last win, see
//     TestParseEventDuplicateKeys); CheckCallflow, the decider reply
//     check, refuses every document with a key twice in one object.
func FuzzScannerAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`"plain"`, `"esc \" \\ \/ \b \f \n \r \t"`, `"\u00e9\u4e2d\ud83d\ude00"`, `"lone \ud800 surrogate"`,
		`{"a":[1,2.5,-3e4,true,false,null,{"b":"c"}]}`, `[]`, `{}`, `"bad \x"`, `{"a":}`, `01`, `1.`, `-`, "\"\xff\"",
		strings.Repeat("[", 64) + strings.Repeat("]", 64), strings.Repeat("[", 65) + strings.Repeat("]", 65),
		strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65),
		`[200,200.0,2e2,2.00e2,20000e-2,-0,0e400,200.00000000000000001,2000000000000000000001e-19,1e400,1e-400]`,
		`[9223372036854775807,-9223372036854775808,9223372036854775808,9.223372036854775807e18,9007199254740993.0]`,
		`{"a":1,"a":2}`, `{"a":{"b":1,"b":1}}`, `{"a":1,"\u0061":2}`,
		`{"clientActionId":"x","callflow":[{"action":"hangup"}]}`,
		`{"clientActionId":"x","callflow":[{"action":"hangup"}],"callflow":[{"action":"hangup"}]}`,
		`{"callflow":[{"action":"say","params":{"text":"a","text":"b","repetition":2.0}}]}`,
		`{"clientActionId":"flow:m:1:s:0","callflow":[{"action":"sayAndCapture","params":{"text":"t","minDigits":1,"maxDigits":4.0,"digitTimeout":1e3,"overallTimeout":5000,"completeOnHash":false,"noOfTries":2,"endMessage":"e"}}]}`,
		`{"clientActionId":"x","callflow":[{"action":"playFile","params":{"fileUrl":"https://cdn.example.com/a.wav","repetition":1}},{"action":"hangup"}]}`,
		`{"callflow":[{"action":"say","params":{"text":"t","speed":1e400}}]}`,
		`{"callflow":[{"action":"sayAndCapture","params":{"text":"t","maxDigits":0}}]}`,
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
		deep := valid && jsonDepth(data) > maxDepth
		var fe *FieldError
		switch {
		case deep && (!errors.As(gerr, &fe) || !strings.Contains(fe.Problem, "nested deeper")):
			t.Fatalf("%q is nested %d deep: scanner error %v, want the depth limit", data, jsonDepth(data), gerr)
		case !deep && valid != (gerr == nil):
			t.Fatalf("%q: json.Valid %v, scanner error %v", data, valid, gerr)
		}
		var want string
		if valid && !deep && json.Unmarshal(data, &want) == nil && want != got {
			t.Fatalf("%q: encoding/json decodes %q, scanner %q", data, want, got)
		}

		_, cerr := CheckCallflow(data)
		if !valid || deep {
			if cerr == nil {
				t.Fatalf("%q: CheckCallflow accepts what is not JSON within the depth limit", data)
			}
			return
		}
		numbers, duplicate := jsonWalk(t, data)
		if duplicate && cerr == nil {
			t.Fatalf("%q: CheckCallflow accepts a duplicate key", data)
		}
		// What CheckCallflow accepts, ParseResponse reads, Validate
		// accepts, and AppendJSON writes back to a callflow that means
		// the same.
		if cerr == nil {
			v, _ := CheckCallflow(data)
			r, err := ParseResponse(data)
			if err != nil {
				t.Fatalf("%q: CheckCallflow accepts, ParseResponse refuses: %v", data, err)
			}
			if err := r.Validate(); err != nil {
				t.Fatalf("%q: ParseResponse reads a response Validate refuses: %v", data, err)
			}
			again, err := CheckCallflow(r.JSON())
			if err != nil || again != v {
				t.Fatalf("%q: re-encoded as %q: %+v, %v; want %+v", data, r.JSON(), again, err, v)
			}
		}
		for _, num := range numbers {
			checkInteger(t, num)
		}
	})
}

// checkInteger checks the scanner's integer reader on the JSON number num
// against exactWhole.
func checkInteger(t *testing.T, num string) {
	t.Helper()
	want, whole, known := exactWhole(num)
	if !known {
		return
	}
	d := scanner{s: num}
	got, err := d.integer("", "n")
	if whole != (err == nil) || got != want && whole {
		t.Fatalf("integer(%.40q) = %d, %v; the exact value is whole within int64: %v (%d)", num, got, err, whole, want)
	}
	var fe *FieldError
	if err != nil && (!errors.As(err, &fe) || fe.Field != "n") {
		t.Fatalf("integer(%.40q): error %v does not name the field", num, err)
	}
}

// TestIntegerExact: whether a number is an integer is decided on its
// decimal text, exactly: whole numbers are taken however written, fractions
// are refused however small, and int64's range is checked on the exact
// value.
func TestIntegerExact(t *testing.T) {
	tests := []struct {
		num   string
		want  int64
		whole bool
	}{
		{"200", 200, true},
		{"200.0", 200, true},
		{"2e2", 200, true},
		{"2E2", 200, true},
		{"2e+2", 200, true},
		{"2.00e2", 200, true},
		{"20000e-2", 200, true},
		{"0.2e3", 200, true},
		{"200.000000000000000000000000000000", 200, true},
		{"0", 0, true},
		{"-0", 0, true},
		{"-0.0", 0, true},
		{"0e400", 0, true},
		{"0.000e-400", 0, true},
		{"-0e99999999999999999999", 0, true},
		{"-486", -486, true},
		{"9223372036854775807", math.MaxInt64, true},
		{"-9223372036854775808", math.MinInt64, true},
		{"9.223372036854775807e18", math.MaxInt64, true},
		{"92233720368547758070e-1", math.MaxInt64, true},
		{"-92233720368547758.08e2", math.MinInt64, true},
		{"9007199254740993.0", 9007199254740993, true}, // 2^53+1: no float64 holds it
		{"0.0000000000000000000000000000001e31", 1, true},

		{"200.00000000000000001", 0, false}, // a float64 rounds it to 200
		{"2000000000000000000001e-19", 0, false},
		{"199.99999999999999999", 0, false},
		{"2.000000000000000001e2", 0, false},
		{"200.5", 0, false},
		{"1.5", 0, false},
		{"0.5", 0, false},
		{"-0.5", 0, false},
		{"1e-1", 0, false},
		{"1e-400", 0, false}, // a float64 reads it as 0
		{"-1e-400", 0, false},
		{"1e-99999999999999999999", 0, false},
		{"1e400", 0, false}, // whole, but beyond int64
		{"-1e400", 0, false},
		{"1e99999999999999999999", 0, false},
		{"1e19", 0, false},
		{"1e40", 0, false},
		{"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false},
		{"9.223372036854775808e18", 0, false},
		{"18446744073709551616", 0, false},
		{"1" + strings.Repeat("0", 10000), 0, false},
		{"0." + strings.Repeat("0", 10000) + "1e10000", 0, false},
		{"0." + strings.Repeat("0", 10000) + "1e10001", 1, true},
	}
	for _, tt := range tests {
		t.Run(shortName(tt.num), func(t *testing.T) {
			if want, whole, known := exactWhole(tt.num); known && (whole != tt.whole || want != tt.want) {
				t.Fatalf("the table says %d, %v; math/big says %d, %v", tt.want, tt.whole, want, whole)
			}
			d := scanner{s: tt.num}
			got, err := d.integer("payload", "sipCode")
			if tt.whole {
				if err != nil || got != tt.want {
					t.Errorf("integer(%s) = %d, %v; want %d", tt.num, got, err, tt.want)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "payload.sipCode" || !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("integer(%s) = %d, %v; want an error naming payload.sipCode", tt.num, got, err)
			}
		})
	}
}

// shortName names a subtest after a number, cut short.
func shortName(s string) string {
	if len(s) > 40 {
		return s[:20] + "..." + s[len(s)-16:]
	}
	return s
}
