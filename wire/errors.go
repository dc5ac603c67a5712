package wire

import (
	"errors"
	"fmt"
)

// ErrInvalidEvent is matched (with errors.Is) by every error ParseEvent
// returns: the body is not an 8x8 event the service can accept.
var ErrInvalidEvent = errors.New("invalid event")

// ErrInvalidResponse is matched by every error ParseResponse returns: the
// bytes are not a callflow 8x8 would accept.
var ErrInvalidResponse = errors.New("invalid callflow")

// ErrInvalidNumber is returned for a phone number that is not 8 to 15 digits
// with an optional leading '+' and a first digit other than 0.
var ErrInvalidNumber = errors.New("invalid phone number")

// ErrInvalidRecord is matched by every error ParseRecord returns.
var ErrInvalidRecord = errors.New("invalid record")

// FieldError names the field of a webhook body that made it unacceptable.
// Field is a JSON path such as "payload.callId"; "body" stands for the whole
// document.
type FieldError struct {
	Field   string
	Problem string
}

// Error reports the field and the problem, e.g. "payload.callId: required".
func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Is makes every FieldError match ErrInvalidEvent.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidEvent }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}
