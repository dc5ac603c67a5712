// Package admin is the operator-facing HTTP listener every role runs:
// /healthz and /readyz for probes, and, in the ingest role, the masking
// API under /v1/ (see MountSessions): the sessions that decide who gets
// connected to whom, the number pool they are allocated from, the
// sub-accounts' settings (out-of-session policy, default flow), the IVR
// flows numbers and sub-accounts attach, and a session's interactions read
// from the archive.
//
// Probes are never authenticated (a kubelet cannot send tokens). /v1/ needs
// "Authorization: Bearer <token>" when a token is configured; without one
// the listener may bind only to loopback, where /v1/ is open for
// development. A token may be limited to sub-accounts ("TOKEN@SUB1/SUB2"):
// what belongs to others answers 404 to it, as if it did not exist.
//
// Every change is an audit record (wire.Audit) written through a Recorder:
// who (the token's fingerprint, never the token), what (the object before
// and after, its sub-account), when. Request bodies are parsed strictly:
// an unknown field, a value of the wrong type or a second JSON value is a
// 400 naming the field, and a refused request changes nothing.
//
// Every answer carries an X-Request-Id (the client's when sane, else a
// new one), also in the log lines of the request. An error answer is
// {"error": message, "code": stable code, "field": the field the message
// names, "requestId": ...}, and a 409 names the object it conflicts with
// ("sessionId", "number", "flowId", ...); see errors.go. A create with an
// Idempotency-Key is made once, whatever the retries and whichever admin
// process they reach (session.Store.Idempotent).
package admin
