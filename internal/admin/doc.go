// Package admin is the operator-facing HTTP listener every role runs:
// /healthz and /readyz for probes, and, in the ingest role, the session API
// under /v1/ that creates the bindings deciding who gets connected to whom.
//
// Probes are never authenticated (a kubelet cannot send tokens). /v1/ needs
// "Authorization: Bearer <token>" when a token is configured; without one
// the listener may bind only to loopback, where /v1/ is open for
// development.
package admin
