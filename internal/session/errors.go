package session

import "errors"

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
	// ErrInvalidConfig: the store configuration is not usable.
	ErrInvalidConfig = errors.New("invalid session store config")
)
