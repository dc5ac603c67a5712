package wire

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// normalized is the only shape NormalizeNumber and CleanNumber return.
var normalized = regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)

func TestNormalizeNumber(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" when the number is refused
	}{
		{"seed source", "+65123456789", "+65123456789"},
		{"seed destination", "+65987654321", "+65987654321"},
		{"seed makeCall number without plus", "6512345678", "+6512345678"},
		{"8 digits", "12345678", "+12345678"},
		{"8 digits with plus", "+12345678", "+12345678"},
		{"15 digits", "123456789012345", "+123456789012345"},
		{"15 digits with plus", "+123456789012345", "+123456789012345"},
		{"US number", "+14155550100", "+14155550100"},
		{"all nines", "999999999999999", "+999999999999999"},
		{"zeros after the first digit", "+10000000", "+10000000"},

		{"empty", "", ""},
		{"plus only", "+", ""},
		{"7 digits", "1234567", ""},
		{"7 digits with plus", "+1234567", ""},
		{"16 digits", "1234567890123456", ""},
		{"16 digits with plus", "+1234567890123456", ""},
		{"leading zero", "0123456789", ""},
		{"leading zero after plus", "+0123456789", ""},
		{"international prefix 00", "006512345678", ""},
		{"all zeros", "00000000", ""},
		{"double plus", "++6512345678", ""},
		{"plus in the middle", "65+12345678", ""},
		{"plus at the end", "6512345678+", ""},
		{"leading space", " +6512345678", ""},
		{"trailing newline", "+6512345678\n", ""},
		{"inner spaces", "+65 1234 5678", ""},
		{"dashes", "+65-1234-5678", ""},
		{"dots", "65.1234.5678", ""},
		{"parentheses", "(65)12345678", ""},
		{"letters", "+65123456ab", ""},
		{"all letters", "abcdefghij", ""},
		{"anonymous", "anonymous", ""},
		{"sip uri", "sip:+6512345678@example.com", ""},
		{"minus sign", "-6512345678", ""},
		{"fullwidth digits", "６５１２３４５６７８", ""},
		{"arabic-indic digits", "+٦٥١٢٣٤٥٦٧٨", ""},
		{"NUL byte", "+65123\x0045678", ""},
		{"invalid UTF-8", "+65123456\xff", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeNumber(tt.in)
			checkNumber(t, "NormalizeNumber", tt.in, got, err, tt.want)
		})
	}
}

func checkNumber(t *testing.T, fn, in, got string, err error, want string) {
	t.Helper()
	if want == "" {
		if err == nil {
			t.Errorf("%s(%q) = %q, want an error", fn, in, got)
		} else if !errors.Is(err, ErrInvalidNumber) {
			t.Errorf("%s(%q) error %v does not match ErrInvalidNumber", fn, in, err)
		}
		if got != "" {
			t.Errorf("%s(%q) returned %q with its error", fn, in, got)
		}
		return
	}
	if err != nil {
		t.Errorf("%s(%q): %v", fn, in, err)
		return
	}
	if got != want {
		t.Errorf("%s(%q) = %q, want %q", fn, in, got, want)
	}
	if !normalized.MatchString(got) {
		t.Errorf("%s(%q) = %q is not '+' and 8 to 15 digits", fn, in, got)
	}
	// Normalized output is a fixed point of both functions.
	if again, err := NormalizeNumber(got); err != nil || again != got {
		t.Errorf("NormalizeNumber(%q) = %q, %v; want it unchanged", got, again, err)
	}
	if again, err := CleanNumber(got); err != nil || again != got {
		t.Errorf("CleanNumber(%q) = %q, %v; want it unchanged", got, again, err)
	}
}

func TestCleanNumber(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" when the number is refused
	}{
		{"already normal", "+6512345678", "+6512345678"},
		{"no plus", "6512345678", "+6512345678"},
		{"spaces", "+65 1234 5678", "+6512345678"},
		{"dashes", "+65-1234-5678", "+6512345678"},
		{"dots", "+65.1234.5678", "+6512345678"},
		{"parentheses", "+1 (415) 555-0100", "+14155550100"},
		{"parenthesized country code", "(+65) 1234-5678", "+6512345678"},
		{"space after plus", "+ 65 1234 5678", "+6512345678"},
		{"surrounding whitespace", " \t+6512345678\r\n", "+6512345678"},
		{"all separators", " (65) 1.2-3 4.5-6 78 ", "+6512345678"},
		{"many separators", "6-5-1-2-3-4-5-6-7-8", "+6512345678"},
		{"15 digits with separators", "+123 4567 8901 2345", "+123456789012345"},

		{"empty", "", ""},
		{"blank", "   ", ""},
		{"separators only", "(-.-)", ""},
		{"too short", "+65 1234 5", ""},
		{"8 digits with separators", "+65 1234 56", "+65123456"},
		{"too long", "+1 234 567 890 123 456", ""},
		{"leading zero", "(0) 1234 5678", ""},
		{"international prefix", "0065 1234 5678", ""},
		{"letters", "+65 1234 567a", ""},
		{"vanity number", "1-800-FLOWERS", ""},
		{"extension", "+65 1234 5678 ext 9", ""},
		{"slashes are not separators", "+65/1234/5678", ""},
		{"underscores are not separators", "+65_1234_5678", ""},
		{"inner tab is not a separator", "+65\t1234\t5678", ""},
		{"no-break space is not a separator", "+65\u00a01234\u00a05678", ""},
		{"plus after digits", "6 5+12345678", ""},
		{"two pluses", "+ +6512345678", ""},
		{"fullwidth digits", "６５ １２３４ ５６７８", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CleanNumber(tt.in)
			checkNumber(t, "CleanNumber", tt.in, got, err, tt.want)
		})
	}
}

// CleanNumber accepts everything NormalizeNumber accepts, with the same result.
func TestCleanNumberExtendsNormalizeNumber(t *testing.T) {
	for _, in := range []string{"+65123456789", "6512345678", "12345678", "+123456789012345", "0123456789", "+1234567", "abc"} {
		n, nErr := NormalizeNumber(in)
		c, cErr := CleanNumber(in)
		if nErr == nil && (cErr != nil || c != n) {
			t.Errorf("%q: NormalizeNumber = %q, CleanNumber = %q, %v", in, n, c, cErr)
		}
	}
}

func FuzzNormalizeNumber(f *testing.F) {
	for _, s := range []string{"+6512345678", "6512345678", "+65 1234-5678", "(0)123", "", "+", "++1", "１２３４５６７８"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, nErr := NormalizeNumber(s)
		c, cErr := CleanNumber(s)
		for _, r := range []struct {
			out string
			err error
		}{{n, nErr}, {c, cErr}} {
			if r.err != nil {
				if !errors.Is(r.err, ErrInvalidNumber) || r.out != "" {
					t.Fatalf("%q: %q, %v", s, r.out, r.err)
				}
				continue
			}
			if !normalized.MatchString(r.out) {
				t.Fatalf("%q gave %q", s, r.out)
			}
			// The digits are the input's digits, in order.
			digits := strings.Map(func(r rune) rune {
				if r >= '0' && r <= '9' {
					return r
				}
				return -1
			}, s)
			if r.out[1:] != digits {
				t.Fatalf("%q gave %q, digits %q", s, r.out, digits)
			}
		}
		if nErr == nil && (cErr != nil || c != n) {
			t.Fatalf("%q: NormalizeNumber %q, CleanNumber %q %v", s, n, c, cErr)
		}
	})
}

func TestMaskNumber(t *testing.T) {
	tests := map[string]string{
		"+6598765432":      "+65******32",
		"6512345678":       "651*****78",
		"+123456789012345": "+12***********45",
		"12345":            "*****",
		"":                 "",
	}
	for in, want := range tests {
		if got := MaskNumber(in); got != want {
			t.Errorf("MaskNumber(%q) = %q, want %q", in, got, want)
		}
		if got := Masked(in).LogValue().String(); got != want {
			t.Errorf("Masked(%q).LogValue() = %q, want %q", in, got, want)
		}
	}
}
