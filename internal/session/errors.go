package session

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound: no session (open or remembered) has that id.
	ErrNotFound = errors.New("session not found")
	// ErrConflict: a participant already has an open session on that
	// virtual number, so routing would be ambiguous.
	ErrConflict = errors.New("participant already has an open session on this virtual number")
	// ErrClosed: the session is closed (or expired); it never reopens.
	ErrClosed = errors.New("session is closed")
	// ErrInvalid: the request is not acceptable; the wrapping error names
	// the field.
	ErrInvalid = errors.New("invalid request")
	// ErrPoolExhausted: no number of the sub-account's pool can take the
	// session's participants.
	ErrPoolExhausted = errors.New("number pool exhausted")
	// ErrNumberUnavailable: the number cannot take new sessions (not
	// Active, or another sub-account's).
	ErrNumberUnavailable = errors.New("number not available for new sessions")
	// ErrNumberNotFound: the number is not in the pool.
	ErrNumberNotFound = errors.New("number not in the pool")
	// ErrNumberInUse: the number has open sessions.
	ErrNumberInUse = errors.New("number has open sessions")
	// ErrPINConflict: an open session on the virtual number already has
	// that pin.
	ErrPINConflict = errors.New("pin already belongs to an open session on this virtual number")
	// ErrFlowNotFound: no flow has that id (or it is another
	// sub-account's).
	ErrFlowNotFound = errors.New("flow not found")
	// ErrFlowInUse: the flow is attached to numbers or is the default of
	// sub-accounts.
	ErrFlowInUse = errors.New("flow is attached")
	// ErrFlowChanged: the flow is not at the version the change was
	// based on; read it again.
	ErrFlowChanged = errors.New("flow changed meanwhile")
	// ErrIdempotencyMismatch: the Idempotency-Key was used with another
	// request within IdempotencyTTL.
	ErrIdempotencyMismatch = errors.New("idempotency key already used with another request")
	// ErrIdempotencyInFlight: the first request with the Idempotency-Key
	// is still being served.
	ErrIdempotencyInFlight = errors.New("a request with this idempotency key is still in flight")
	// ErrInvalidConfig: the store configuration is not usable.
	ErrInvalidConfig = errors.New("invalid session store config")
)

// HeldError is a create's conflict with the session that holds a
// participant's route or the pin on the number: errors.Is matches its
// conflict (ErrConflict or ErrPINConflict), and SessionID names the
// holder, for the API's answer.
type HeldError struct {
	// Err is ErrConflict or ErrPINConflict.
	Err error
	// SessionID is the open session holding the key, or the one being
	// created with it.
	SessionID string
	// Creating says the holder is still being created.
	Creating bool
}

func (e *HeldError) Error() string {
	if e.Creating {
		return fmt.Sprintf("%v (session %s is being created)", e.Err, e.SessionID)
	}
	return fmt.Sprintf("%v (session %s)", e.Err, e.SessionID)
}

// Unwrap returns the conflict.
func (e *HeldError) Unwrap() error { return e.Err }
