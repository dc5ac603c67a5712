package wire

import "strings"

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
