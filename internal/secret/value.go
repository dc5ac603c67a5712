package secret

import "sync/atomic"

// Value is a secret that may be replaced while others read it: a password
// read again from its file on SIGHUP, which the next connection uses. The
// zero value holds "".
type Value struct {
	p atomic.Pointer[string]
}

// Load returns the secret last stored.
func (v *Value) Load() string {
	if p := v.p.Load(); p != nil {
		return *p
	}
	return ""
}

// Store replaces the secret.
func (v *Value) Store(s string) { v.p.Store(&s) }
