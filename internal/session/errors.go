package session

import "errors"

var (
	// ErrNotFound: no open session has that id.
	ErrNotFound = errors.New("session not found")
	// ErrConflict: a participant already has an open session on that
	// virtual number, so routing would be ambiguous.
	ErrConflict = errors.New("participant already has an open session on this virtual number")
	// ErrInvalid: the session request is not acceptable; the wrapping
	// error names the field.
	ErrInvalid = errors.New("invalid session")
	// ErrInvalidConfig: the store configuration is not usable.
	ErrInvalidConfig = errors.New("invalid session store config")
)
