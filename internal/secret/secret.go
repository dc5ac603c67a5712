// Package secret compares a presented credential (the webhook's
// Authorization value, an admin bearer token) with the configured ones,
// and holds secrets that are replaced while the process runs (Value).
package secret

import (
	"crypto/sha256"
	"crypto/subtle"
)

// Set holds the SHA-256 digests of the accepted values: comparing digests
// takes the same time whatever the values' lengths.
type Set struct {
	digests [][sha256.Size]byte
}

// NewSet accepts values; several let a secret be rotated without downtime.
func NewSet(values []string) Set {
	s := Set{digests: make([][sha256.Size]byte, len(values))}
	for i, v := range values {
		s.digests[i] = sha256.Sum256([]byte(v))
	}
	return s
}

// Len is the number of accepted values.
func (s Set) Len() int { return len(s.digests) }

// Match reports whether v is one of the accepted values, comparing with
// every one in constant time, without stopping at a match.
func (s Set) Match(v []byte) bool {
	sum := sha256.Sum256(v)
	ok := 0
	for i := range s.digests {
		ok |= subtle.ConstantTimeCompare(sum[:], s.digests[i][:])
	}
	return ok == 1
}

// Index returns the position (in the values given to NewSet) of the value
// v equals, or -1. Like Match, it compares v with every value in constant
// time and does not stop at a match, so its timing tells neither whether
// nor which value matched.
func (s Set) Index(v []byte) int {
	sum := sha256.Sum256(v)
	found := -1
	for i := range s.digests {
		found = subtle.ConstantTimeSelect(subtle.ConstantTimeCompare(sum[:], s.digests[i][:]), i, found)
	}
	return found
}
