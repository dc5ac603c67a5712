package wire

import (
	"encoding/json"
	"time"
)

// Audit records: changes of the masking state (sessions, the number pool,
// sub-account settings, IVR flows) made through the admin API or by 8x8's
// number updates, kept in the records stream and archived beside the calls.
const (
	// EventSessionAudit is the event type of audit records.
	EventSessionAudit = "SESSION_AUDIT"
	// AuditNamespace is the namespace of events callflow writes itself.
	AuditNamespace = "CALLFLOW"
	// Audit operations on sessions.
	AuditCreate = "create"
	AuditUpdate = "update"
	AuditClose  = "close"
	AuditDelete = "delete"
	// Audit operations on the pool and settings.
	AuditNumberPut     = "number_put"
	AuditNumberDelete  = "number_delete"
	AuditNumberUpdate  = "number_update" // by 8x8's VIRTUAL_NUMBER_UPDATE
	AuditSubAccountPut = "subaccount_put"
	// Audit operations on IVR flows.
	AuditFlowPut           = "flow_put"
	AuditFlowDelete        = "flow_delete"
	AuthorAdmin, Author8x8 = "admin", "8x8"
)

// AuditSubject is the subject of an audit record of operation:
// calls.audit.<operation>.
func AuditSubject(operation string) string {
	return SubjectPrefix + ".audit." + SubjectToken(operation)
}

// Audit is one change: who made it, what, when.
type Audit struct {
	// ID is unique per change; it is the record id.
	ID        string    `json:"eventId"`
	Timestamp time.Time `json:"timestamp"`
	Operation string    `json:"operation"`
	// SubAccountID is the sub-account of what changed, when it has one.
	SubAccountID string `json:"subAccountId,omitempty"`
	// SessionID names the session changed (session operations).
	SessionID string `json:"sessionId,omitempty"`
	// VirtualNumber is the session's number, or the pool number changed.
	VirtualNumber string   `json:"virtualNumber,omitempty"`
	Participants  []string `json:"participants,omitempty"`
	TTLSeconds    int64    `json:"ttlSeconds,omitempty"`
	// Before and After are the object changed (session, number or
	// settings) as JSON, before and after; absent for a create or a
	// delete respectively.
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
	Actor  Actor           `json:"actor"`
}

// Actor is who made a change: the admin API (which token, as a
// fingerprint, never the token; from which address, with which client) or
// 8x8 (a VIRTUAL_NUMBER_UPDATE, named by its record id).
type Actor struct {
	// Author is AuthorAdmin or Author8x8.
	Author    string `json:"author,omitempty"`
	Token     string `json:"token,omitempty"`
	Address   string `json:"address,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
	// Source is the record id of the 8x8 event that made the change.
	Source string `json:"source,omitempty"`
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

// Record returns the audit as a record written by instance at now: its
// subject (calls.audit.<operation>), record id and bytes.
func (a Audit) Record(instance string, now time.Time) (subject, id string, data []byte) {
	rec := Record{
		Version:    RecordVersion,
		ID:         a.ID,
		EventType:  EventSessionAudit,
		ReceivedAt: now,
		Instance:   instance,
		Event:      a.Event(),
	}
	return AuditSubject(a.Operation), a.ID, rec.AppendJSON(nil)
}
