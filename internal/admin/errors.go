package admin

import (
	"net/http"
	"strings"
)

// Codes of the API's error answers: the stable "code" of an error body,
// for clients to branch on (the "error" text is for people and may be
// reworded).
const (
	// CodeInvalidField: a field, query parameter, path segment or header
	// is wrong; "field" names it.
	CodeInvalidField = "invalid_field"
	// CodeInvalidBody: the body as a whole is not one JSON object
	// (malformed, empty, two values).
	CodeInvalidBody = "invalid_body"
	// CodeBodyTooLarge: the body is past the route's limit (413).
	CodeBodyTooLarge = "body_too_large"
	// CodeUnauthorized: no valid bearer token (401).
	CodeUnauthorized = "unauthorized"
	// CodeNotFound: no such object for this token, or no such route (404).
	CodeNotFound = "not_found"
	// CodeMethodNotAllowed: a known path with another method (405).
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeConflict: a participant, or the pin, is held by another open
	// session on the number; "sessionId" names it when this token may
	// see it (409).
	CodeConflict = "conflict"
	// CodeNumberUnavailable: the virtual number cannot take new
	// sessions: not Active, or another sub-account's (409).
	CodeNumberUnavailable = "number_unavailable"
	// CodePoolExhausted: no number of the sub-account's pool is free for
	// the participants (409).
	CodePoolExhausted = "pool_exhausted"
	// CodeSessionClosed: the session is closed or expired and never
	// reopens (409).
	CodeSessionClosed = "session_closed"
	// CodeInUse: a number with open sessions, or a flow attached to
	// numbers or sub-accounts (409).
	CodeInUse = "in_use"
	// CodeVersionConflict: the flow is not at the version the change was
	// based on (409).
	CodeVersionConflict = "version_conflict"
	// CodeIdempotencyInFlight: the first request with this
	// Idempotency-Key is still being served (409); retry later.
	CodeIdempotencyInFlight = "idempotency_in_flight"
	// CodeIdempotencyMismatch: the Idempotency-Key was used with another
	// request body in the last 24 hours (422).
	CodeIdempotencyMismatch = "idempotency_mismatch"
	// CodeRateLimited: past this client's rate limit (429).
	CodeRateLimited = "rate_limited"
	// CodeUnavailable: the session store or the archive did not answer
	// (503); retry later.
	CodeUnavailable = "unavailable"
	// CodeInternal: a fault of this server (500).
	CodeInternal = "internal"
)

// errorBody is an error answer. Error is the message; Field the field
// it is about, as the message names it; the ids name the object a 409
// conflicts with.
type errorBody struct {
	Error         string `json:"error"`
	Code          string `json:"code"`
	Field         string `json:"field,omitempty"`
	RequestID     string `json:"requestId"`
	SessionID     string `json:"sessionId,omitempty"`
	VirtualNumber string `json:"virtualNumber,omitempty"`
	Number        string `json:"number,omitempty"`
	FlowID        string `json:"flowId,omitempty"`
	SubAccountID  string `json:"subAccountId,omitempty"`
}

// writeError answers an error: status, code and message, the field the
// message names, and the request's id.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeErrorBody(w, status, errorBody{Code: code, Error: msg})
}

// writeErrorBody answers b, filling its field from its message when
// unset and its request id.
func writeErrorBody(w http.ResponseWriter, status int, b errorBody) {
	if b.Field == "" {
		b.Field = fieldOf(b.Error)
	}
	b.RequestID = w.Header().Get(requestIDHeader)
	writeJSON(w, status, b)
}

// writeBadRequest answers 400 with msg, which names its field first
// ("ttlSeconds: must be >= 0"): invalid_body when it is about the body
// as a whole, else invalid_field.
func writeBadRequest(w http.ResponseWriter, msg string) {
	code := CodeInvalidField
	if strings.HasPrefix(msg, "body: ") {
		code = CodeInvalidBody
	}
	writeError(w, http.StatusBadRequest, code, msg)
}

// fieldOf is the field a message names: the API's messages about a
// field start with its name and a colon ("participants[1]: ...",
// "greeting.text: ...", "Idempotency-Key: ..."). "" for a message about
// no field, or about the body as a whole.
func fieldOf(msg string) string {
	name, _, ok := strings.Cut(msg, ": ")
	if !ok || name == "" || name == "body" {
		return ""
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-[]", c) >= 0
		if !ok {
			return ""
		}
	}
	return name
}
