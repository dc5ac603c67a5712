package session

import (
	"crypto/rand"
	"math/big"
	"time"
)

// Session pins: a session with a pin is found by the pin a caller enters
// in a flow's pin step (LookupPIN), not by its participants, so that one
// virtual number serves any number of conversations, even of the same
// participant (a driver with twenty open orders).
const (
	// PINMinLength and PINMaxLength bound a pin's digits.
	PINMinLength = 4
	PINMaxLength = 8
	// PINAuto in a create request asks for a pin to be generated: one
	// free on the session's number, AutoPINLength digits.
	PINAuto       = "auto"
	AutoPINLength = 6
)

// autoPINAttempts bounds the pins tried on one number when a generated
// pin turns out taken (by a session created elsewhere meanwhile).
const autoPINAttempts = 8

// ValidPIN reports whether pin is PINMinLength to PINMaxLength ASCII
// digits.
func ValidPIN(pin string) bool {
	if len(pin) < PINMinLength || len(pin) > PINMaxLength {
		return false
	}
	for i := 0; i < len(pin); i++ {
		if pin[i] < '0' || pin[i] > '9' {
			return false
		}
	}
	return true
}

// pinKey is the key that makes a pin unique among the open sessions of
// its number: k.<virtual digits>.<pin>.
func pinKey(virtual, pin string) string { return "k." + virtual[1:] + "." + pin }

// pinRoute is a (virtual number, pin) pair.
type pinRoute struct{ virtual, pin string }

var autoPINSpace = big.NewInt(1_000_000) // 10^AutoPINLength

// newPIN returns a random pin of AutoPINLength digits (leading zeros
// included).
func newPIN() string {
	n, err := rand.Int(rand.Reader, autoPINSpace)
	if err != nil { // crypto/rand never fails on supported platforms
		n = big.NewInt(time.Now().UnixNano() % autoPINSpace.Int64())
	}
	s := n.String()
	for len(s) < AutoPINLength {
		s = "0" + s
	}
	return s
}

// LookupPIN returns the open session on virtual (as +digits) whose pin is
// pin and that admits calls of subAccount, from the in-memory index. The
// caller's number is not checked: a pin step connects a caller who is one
// of the session's participants (Session.Other).
func (s *Store) LookupPIN(virtual, pin, subAccount string, now time.Time) (*Session, bool) {
	x := s.idx
	x.mu.RLock()
	sess, ok := x.byPIN[pinRoute{virtual, pin}]
	x.mu.RUnlock()
	if !ok || !sess.Open(now) || !sess.Admits(subAccount) {
		return nil, false
	}
	return sess, true
}

// pinTaken reports whether an open session on virtual has pin. Called
// with mu held.
func (x *index) pinTaken(virtual, pin string, now time.Time) bool {
	s, ok := x.byPIN[pinRoute{virtual, pin}]
	return ok && s.Open(now)
}

// freePIN returns a generated pin that no open session on virtual has,
// as far as the index knows (the pin key's create decides).
func (x *index) freePIN(virtual string, now time.Time) string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	pin := newPIN()
	for range 64 {
		if !x.pinTaken(virtual, pin, now) {
			break
		}
		pin = newPIN()
	}
	return pin
}
