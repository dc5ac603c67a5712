package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds a request body of the API.
const maxBody = 16 << 10

// errBadRequest is wrapped by every error about what a client sent; the
// message names the field (or "body" for the body as a whole).
var errBadRequest = errors.New("bad request")

// badRequest is an error about field.
func badRequest(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", errBadRequest, field, fmt.Sprintf(format, args...))
}

// message is what the client is told of a bad request: the error without
// its errBadRequest prefix.
func message(err error) string {
	return strings.TrimPrefix(err.Error(), errBadRequest.Error()+": ")
}

// fieldError is an UnmarshalJSON error that knows its field.
type fieldError struct {
	field, msg string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// decodeStrict decodes body into v strictly: exactly one JSON object,
// nothing after it, no field v does not know (so that a typo such as
// "participant" is an error rather than a request silently made without
// it), every value of its field's type.
func decodeStrict(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return badJSON(err, "")
	}
	// Exactly one value, and nothing after it: Decoder.More would not see
	// a stray "}" or "]".
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("body", "more than one JSON value, or trailing characters")
	}
	return decodeObject(raw, v, "")
}

// decodeObject decodes raw, which must be a JSON object, into v with no
// unknown fields; prefix names where raw sits in the body ("greeting.").
func decodeObject(raw json.RawMessage, v any, prefix string) error {
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] != '{' {
		where := strings.TrimSuffix(prefix, ".")
		if where == "" {
			where = "body"
		}
		return badRequest(where, "expected a JSON object")
	}
	strict := json.NewDecoder(bytes.NewReader(raw))
	strict.DisallowUnknownFields()
	if err := strict.Decode(v); err != nil {
		return badJSON(err, prefix)
	}
	return nil
}

// badJSON turns a decoding error into one that names the field.
func badJSON(err error, prefix string) error {
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	var field *fieldError
	switch {
	case errors.As(err, &tooBig):
		return err
	case errors.As(err, &field):
		return badRequest(prefix+field.field, "%s", field.msg)
	case errors.As(err, &typ) && typ.Field != "":
		return badRequest(prefix+typ.Field, "wrong type, got %s", typ.Value)
	case errors.Is(err, io.EOF):
		return badRequest("body", "empty; expected a JSON object")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name, _ := strconv.Unquote(f)
		return badRequest(prefix+name, "unknown field")
	}
	msg = strings.TrimPrefix(msg, "json: ")
	if prefix != "" {
		return badRequest(strings.TrimSuffix(prefix, "."), "%s", msg)
	}
	return badRequest("body", "%s", msg)
}

// rfc3339 is a time given as an RFC 3339 string.
type rfc3339 time.Time

// UnmarshalJSON reads an RFC 3339 string, naming expiresAt (the API's one
// time field) in its errors.
func (t *rfc3339) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &fieldError{"expiresAt", "wrong type, want an RFC 3339 time such as 2026-12-31T23:59:59Z"}
	}
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return &fieldError{"expiresAt", fmt.Sprintf("%q is not an RFC 3339 time such as 2026-12-31T23:59:59Z", s)}
	}
	*t = rfc3339(v)
	return nil
}

// bodyError answers an error of reading a body: 413 past maxBody, else
// 400 naming the field.
func bodyError(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "body larger than 16 KiB")
		return
	}
	writeBadRequest(w, message(err))
}

// isNull reports whether raw is JSON null.
func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}
