package wire

import (
	"encoding/json"
	"time"
)

// Audit records: changes made through the admin API, kept in the records
// stream and archived beside the calls.
const (
	// EventSessionAudit is the event type of audit records.
	EventSessionAudit = "SESSION_AUDIT"
	// AuditNamespace is the namespace of events callflow writes itself.
	AuditNamespace = "CALLFLOW"
	// Audit operations.
	AuditCreate = "create"
	AuditDelete = "delete"
)

// AuditSubject is the subject of an audit record of operation:
// calls.audit.<operation>.
func AuditSubject(operation string) string {
	return SubjectPrefix + ".audit." + SubjectToken(operation)
}

// Audit is one change of a session: who made it, what, when.
type Audit struct {
	// ID is unique per change; it is the record id.
	ID        string    `json:"eventId"`
	Timestamp time.Time `json:"timestamp"`
	Operation string    `json:"operation"`
	SessionID string    `json:"sessionId"`
	// The session as it was created or ended.
	VirtualNumber string   `json:"virtualNumber,omitempty"`
	Participants  []string `json:"participants,omitempty"`
	TTLSeconds    int64    `json:"ttlSeconds,omitempty"`
	Actor         Actor    `json:"actor"`
}

// Actor is who made a change: which admin token (a fingerprint, never the
// token), from which address, with which client.
type Actor struct {
	Token     string `json:"token,omitempty"`
	Address   string `json:"address"`
	UserAgent string `json:"userAgent,omitempty"`
}

// Event is the audit in 8x8's event envelope (namespace CALLFLOW, event
// type SESSION_AUDIT), so that the archiver stores it in call_events with
// its time, session id and the whole audit in raw.
func (a Audit) Event() []byte {
	b, _ := json.Marshal(struct {
		Namespace string `json:"namespace"`
		EventType string `json:"eventType"`
		Payload   Audit  `json:"payload"`
	}{AuditNamespace, EventSessionAudit, a})
	return b
}
