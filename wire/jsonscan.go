package wire

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// sharedString is b as a string without a copy, for a reader that owns b
// and never modifies it while the string is in use.
func sharedString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// scanner reads strict JSON (RFC 8259) from a string without reflection.
// The webhook body is copied into one string once; every field value that
// holds no escape is a substring of it, so parsing an event costs a couple
// of allocations instead of one per field.
//
// Readers for a value take the JSON path of the field they read, so that
// errors name it ("payload.sipCode: must be an integer, got string").
//
// It accepts exactly the documents encoding/json accepts, with two
// deliberate differences: nesting deeper than maxDepth is refused, and
// integer reads a number by its exact decimal value (see wholeNumber). Like
// encoding/json it lets an object hold a key twice; object hands every
// member to its caller, which decides (CheckCallflow refuses them).
// FuzzScannerAgreesWithEncodingJSON checks all of this.
type scanner struct {
	s     string
	i     int
	depth int
}

// maxDepth bounds nesting: a body nested deeper is refused, not recursed.
const maxDepth = 64

func (d *scanner) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *scanner) syntax(format string, args ...any) error {
	return fieldErr("body", "malformed JSON at offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

// peek returns the next non-space byte, or 0 at the end.
func (d *scanner) peek() byte {
	d.ws()
	if d.i >= len(d.s) {
		return 0
	}
	return d.s[d.i]
}

// kind names the JSON type of the value starting with c, for errors.
func kind(c byte) string {
	switch {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "number"
	}
	return "invalid value"
}

// object reads an object, calling member for each key; member must read
// the value (with str, integer, skip, object...).
func (d *scanner) object(path string, member func(key string) error) error {
	if d.peek() != '{' {
		return d.syntax("expected an object")
	}
	d.depth++
	if d.depth > maxDepth {
		return fieldErr(pathOr(path), "nested deeper than %d levels", maxDepth)
	}
	d.i++
	if d.peek() == '}' {
		d.i++
		d.depth--
		return nil
	}
	for {
		if d.peek() != '"' {
			return d.syntax("expected a string key")
		}
		key, err := d.rawString()
		if err != nil {
			return err
		}
		if d.peek() != ':' {
			return d.syntax("expected ':' after key")
		}
		d.i++
		if d.peek() == 0 {
			return d.syntax("unexpected end of JSON input")
		}
		if err := member(key); err != nil {
			return err
		}
		if done, err := d.after('}', "object member"); done || err != nil {
			return err
		}
	}
}

// after reads what follows a member or an element: ',' when more come, or
// the closing bracket, which ends the object or array.
func (d *scanner) after(closing byte, what string) (done bool, err error) {
	switch d.peek() {
	case ',':
		d.i++
		return false, nil
	case closing:
		d.i++
		d.depth--
		return true, nil
	}
	if d.eof() {
		return false, d.syntax("unexpected end of JSON input")
	}
	return false, d.syntax("expected ',' or '%c' after %s", closing, what)
}

func pathOr(path string) string {
	if path == "" {
		return "body"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// str reads a string; null reads as "". Another type is a FieldError
// naming parent.key (the path is only built for an error).
func (d *scanner) str(parent, key string) (string, error) {
	switch c := d.peek(); c {
	case '"':
		return d.rawString()
	case 'n':
		return "", d.literal("null")
	default:
		if err := d.skip(); err != nil {
			return "", err
		}
		return "", fieldErr(join(parent, key), "must be a string, got %s", kind(c))
	}
}

// integer reads a whole number within int64 (200, 200.0 and 2e2 alike, see
// wholeNumber); null reads as 0.
func (d *scanner) integer(parent, key string) (int64, error) {
	c := d.peek()
	if c == 'n' {
		return 0, d.literal("null")
	}
	if c != '-' && (c < '0' || c > '9') {
		if err := d.skip(); err != nil {
			return 0, err
		}
		return 0, fieldErr(join(parent, key), "must be an integer, got %s", kind(c))
	}
	num, err := d.number()
	if err != nil {
		return 0, err
	}
	n, ok := wholeNumber(num)
	if !ok {
		if len(num) > 32 {
			num = num[:32] + "..."
		}
		return 0, fieldErr(join(parent, key), "must be an integer, got number %s", num)
	}
	return n, nil
}

// wholeNumber reads the text of a JSON number, as number returns it, as
// an int64 when its exact value is a whole number within int64's range.
// It decides on the decimal text, with no float64: the digits of the
// integer and fraction parts are one digit string, and the exponent moves
// the decimal point within it. The number is whole when no digit other
// than 0 is left after the point, and within range when the digits before
// the point make at most 19 significant digits and fit in int64. So 200,
// 200.0, 2e2, 2.00e2, 20000e-2 and -0 are whole; 200.00000000000000001,
// 2000000000000000000001e-19 and 1e-400 are fractions; 1e400 is whole but
// out of range. An exponent of any size costs nothing more than its digits.
func wholeNumber(num string) (int64, bool) {
	i, neg := 0, false
	if i < len(num) && num[i] == '-' {
		neg = true
		i++
	}
	intStart := i
	for i < len(num) && num[i] >= '0' && num[i] <= '9' {
		i++
	}
	intEnd, fracStart, fracEnd := i, i, i
	if i < len(num) && num[i] == '.' {
		i++
		fracStart = i
		for i < len(num) && num[i] >= '0' && num[i] <= '9' {
			i++
		}
		fracEnd = i
	}
	// The exponent saturates far beyond any digit position a body can
	// have (2^40), so that an absurd one cannot overflow.
	const expCap = 1 << 40
	var exp int64
	if i < len(num) && (num[i] == 'e' || num[i] == 'E') {
		i++
		expNeg := false
		if i < len(num) && (num[i] == '+' || num[i] == '-') {
			expNeg = num[i] == '-'
			i++
		}
		expStart := i
		for i < len(num) && num[i] >= '0' && num[i] <= '9' {
			if exp < expCap {
				exp = exp*10 + int64(num[i]-'0')
			}
			i++
		}
		if i == expStart {
			return 0, false
		}
		if expNeg {
			exp = -exp
		}
	}
	nInt, nFrac := int64(intEnd-intStart), int64(fracEnd-fracStart)
	if i != len(num) || nInt == 0 {
		return 0, false // not the text of a JSON number
	}
	// digit(k) is the k-th digit of the integer part followed by the
	// fraction; point is how many of them stand before the decimal point
	// once the exponent is applied (it may be negative, or beyond them).
	digit := func(k int64) byte {
		if k < nInt {
			return num[intStart+int(k)]
		}
		return num[fracStart+int(k-nInt)]
	}
	point := nInt + exp
	first, last := int64(-1), int64(-1) // the first and last digit not 0
	for k := range nInt + nFrac {
		if digit(k) != '0' {
			if first < 0 {
				first = k
			}
			last = k
		}
	}
	switch {
	case first < 0:
		return 0, true // every digit is 0, whatever the exponent: 0, -0, 0.0e-400
	case last >= point:
		return 0, false // a digit other than 0 after the point
	case point-first > 19:
		return 0, false // 10^19 or more: beyond int64
	}
	var u uint64
	for k := first; k < point; k++ {
		d := uint64(0)
		if k <= last {
			d = uint64(digit(k) - '0')
		}
		u = u*10 + d // at most 19 digits: no overflow of uint64
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return int64(-u), true // -(1<<63) wraps to math.MinInt64, exactly
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// textOrNumber reads a string or a number as text (an error code 8x8 may
// send either way); null reads as "".
func (d *scanner) textOrNumber(parent, key string) (string, error) {
	switch c := d.peek(); {
	case c == '"':
		return d.rawString()
	case c == 'n':
		return "", d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	default:
		if err := d.skip(); err != nil {
			return "", err
		}
		return "", fieldErr(join(parent, key), "must be a string or a number, got %s", kind(c))
	}
}

func (d *scanner) literal(lit string) error {
	if len(d.s)-d.i < len(lit) || d.s[d.i:d.i+len(lit)] != lit {
		return d.syntax("invalid literal")
	}
	d.i += len(lit)
	return nil
}

// number reads a JSON number and returns its text.
func (d *scanner) number() (string, error) {
	start := d.i
	s := d.s
	i := d.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		d.i = i
		return "", d.syntax("invalid number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			d.i = i
			return "", d.syntax("invalid number")
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			d.i = i
			return "", d.syntax("invalid number")
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	d.i = i
	return s[start:i], nil
}

// rawString reads a string at d.i (which is '"'). Without escapes the
// result is a substring of the input; with escapes it is decoded into a
// new string. Invalid UTF-8 and lone surrogates become U+FFFD, as
// encoding/json does.
func (d *scanner) rawString() (string, error) {
	d.i++ // opening quote
	start := d.i
	s := d.s
	for i := start; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			d.i = i + 1
			v := s[start:i]
			if !utf8.ValidString(v) {
				return toValidUTF8(v), nil
			}
			return v, nil
		case c == '\\':
			d.i = i
			return d.escapedString(start)
		case c < 0x20:
			d.i = i
			return "", d.syntax("control character in string")
		}
	}
	d.i = len(s)
	return "", d.syntax("unexpected end of JSON input")
}

func toValidUTF8(s string) string {
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		b = utf8.AppendRune(b, r) // RuneError for invalid bytes
		i += size
	}
	return string(b)
}

// escapedString decodes the rest of a string with escapes; d.i is at the
// first backslash, start at the first byte of the string's content.
func (d *scanner) escapedString(start int) (string, error) {
	s := d.s
	b := make([]byte, 0, d.i-start+16)
	b = append(b, s[start:d.i]...)
	i := d.i
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			d.i = i + 1
			if !utf8.Valid(b) {
				return toValidUTF8(string(b)), nil
			}
			return string(b), nil
		case c < 0x20:
			d.i = i
			return "", d.syntax("control character in string")
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			break
		}
		if c := unescape[s[i+1]]; c != 0 {
			b = append(b, c)
			i += 2
			continue
		}
		switch e := s[i+1]; e {
		case 'u':
			r, ok := hex4(s, i+2)
			if !ok {
				d.i = i
				return "", d.syntax("invalid \\u escape")
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2, ok = hex4(s, i+2)
				}
				if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
		default:
			d.i = i
			return "", d.syntax("invalid escape \\%c", e)
		}
	}
	d.i = len(s)
	return "", d.syntax("unexpected end of JSON input")
}

// unescape maps the byte after a backslash to what it stands for (0: not
// a one-character escape).
var unescape = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	n, err := strconv.ParseUint(s[i:i+4], 16, 32)
	if err != nil {
		return 0, false
	}
	return rune(n), true
}

// skip reads any value, checking its syntax.
func (d *scanner) skip() error {
	switch c := d.peek(); {
	case c == '"':
		_, err := d.skipString()
		return err
	case c == '{':
		return d.object("", func(string) error { return d.skip() })
	case c == '[':
		return d.array(func() error { return d.skip() })
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := d.number()
		return err
	case c == 0 && d.eof():
		return d.syntax("unexpected end of JSON input")
	default:
		return d.syntax("invalid character %q looking for a value", c)
	}
}

// skipString checks a string's syntax without decoding it.
func (d *scanner) skipString() (string, error) {
	d.i++
	start := d.i
	s := d.s
	for i := start; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			d.i = i + 1
			return s[start:i], nil
		case c == '\\':
			if i+1 >= len(s) {
				d.i = i
				return "", d.syntax("unexpected end of JSON input")
			}
			switch {
			case unescape[s[i+1]] != 0:
				i++
			case s[i+1] == 'u':
				if _, ok := hex4(s, i+2); !ok {
					d.i = i
					return "", d.syntax("invalid \\u escape")
				}
				i += 5
			default:
				d.i = i
				return "", d.syntax("invalid escape")
			}
		case c < 0x20:
			d.i = i
			return "", d.syntax("control character in string")
		}
	}
	d.i = len(s)
	return "", d.syntax("unexpected end of JSON input")
}

// array reads an array, calling elem for each element.
func (d *scanner) array(elem func() error) error {
	if d.peek() != '[' {
		return d.syntax("expected an array")
	}
	d.depth++
	if d.depth > maxDepth {
		return fieldErr("body", "nested deeper than %d levels", maxDepth)
	}
	d.i++
	if d.peek() == ']' {
		d.i++
		d.depth--
		return nil
	}
	for {
		if d.peek() == 0 {
			return d.syntax("unexpected end of JSON input")
		}
		if err := elem(); err != nil {
			return err
		}
		if done, err := d.after(']', "array element"); done || err != nil {
			return err
		}
	}
}

// end checks that nothing but whitespace follows the top-level value.
func (d *scanner) end() error {
	if !d.eof() {
		return d.syntax("invalid character %q after top-level value", d.s[d.i])
	}
	return nil
}

// eof reports whether only whitespace is left. (peek's 0 cannot tell the
// end from a NUL byte.)
func (d *scanner) eof() bool {
	d.ws()
	return d.i >= len(d.s)
}
