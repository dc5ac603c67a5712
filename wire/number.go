package wire

import (
	"log/slog"
	"strings"
)

// NormalizeNumber checks that s is a phone number as 8x8 sends them: 8 to
// 15 digits, the first not 0, with an optional leading '+'. It returns the
// number as '+' and digits. There are no per-country rules.
func NormalizeNumber(s string) (string, error) {
	digits := strings.TrimPrefix(s, "+")
	if len(digits) < 8 || len(digits) > 15 || digits[0] == '0' {
		return "", ErrInvalidNumber
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return "", ErrInvalidNumber
		}
	}
	if len(digits) == len(s) {
		return "+" + s, nil
	}
	return s, nil
}

// CleanNumber is NormalizeNumber for numbers typed by people: spaces,
// dashes, dots and parentheses are removed first.
func CleanNumber(s string) (string, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '.', '(', ')':
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	return NormalizeNumber(s)
}

// MaskNumber hides the middle of a phone number for logs (the product is
// about masking numbers): "+6598765432" becomes "+65******32". Anything
// that is not a number is masked whole except its length.
func MaskNumber(s string) string {
	if len(s) <= 5 {
		return strings.Repeat("*", len(s))
	}
	return s[:3] + strings.Repeat("*", len(s)-5) + s[len(s)-2:]
}

// Masked is a phone number that logs itself masked (slog.LogValuer).
type Masked string

// LogValue implements slog.LogValuer.
func (m Masked) LogValue() slog.Value { return slog.StringValue(MaskNumber(string(m))) }
