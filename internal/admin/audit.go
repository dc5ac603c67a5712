package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
)

// Recorder keeps records durably: the ingest's record path (JetStream, or
// its spool when JetStream does not acknowledge in time). Record returns
// nil once the record is kept in either.
type Recorder interface {
	Record(subject, id string, data []byte) error
}

// change is what an audit record says changed: the object before (nil
// for a create) and after (nil for a delete), and what it is about.
type change struct {
	subAccount    string
	sessionID     string
	virtualNumber string
	participants  []string
	ttlSeconds    int64
	before, after any
}

// sessionChange describes a change of a session from before to after.
func sessionChange(before, after *session.Session) change {
	s := after
	if s == nil {
		s = before
	}
	c := change{subAccount: s.SubAccountID, sessionID: s.ID, virtualNumber: s.VirtualNumber, participants: s.Participants[:], ttlSeconds: s.TTLSeconds}
	if before != nil {
		c.before = before
	}
	if after != nil {
		c.after = after
	}
	return c
}

// numberChange describes a change of a pool number from before to after.
func numberChange(before, after *session.Number) change {
	n := after
	if n == nil {
		n = before
	}
	c := change{subAccount: n.SubAccountID, virtualNumber: n.Number}
	if before != nil {
		c.before = before
	}
	if after != nil {
		c.after = after
	}
	return c
}

// subAccountChange describes a change of a sub-account's settings.
func subAccountChange(c session.SubAccountChange) change {
	after := c.After
	ch := change{subAccount: after.SubAccountID, after: &after}
	if c.Before != nil {
		ch.before = c.Before
	}
	return ch
}

// audit records a change: who (the token's fingerprint, the client's
// address and user agent), what (the operation, the object before and
// after, its sub-account), when. The change is made when this runs; a
// record that cannot be kept is logged and counted, and the client still
// gets the change's answer.
func (h *api) audit(r *http.Request, op string, c change) {
	if h.rec == nil {
		return
	}
	now := time.Now().UTC()
	a := wire.Audit{
		ID:            "audit-" + randomID(),
		Timestamp:     now,
		Operation:     op,
		SubAccountID:  c.subAccount,
		SessionID:     c.sessionID,
		VirtualNumber: c.virtualNumber,
		Participants:  c.participants,
		TTLSeconds:    c.ttlSeconds,
		Before:        rawJSON(c.before),
		After:         rawJSON(c.after),
		Actor: wire.Actor{
			Author:    wire.AuthorAdmin,
			Token:     h.s.fingerprint(r),
			Address:   remoteAddr(r).String(),
			UserAgent: truncate(r.UserAgent(), 256),
		},
	}
	if err := h.rec.Record(a.Record(h.s.cfg.Instance, now)); err != nil {
		h.s.metrics.auditFailures.Inc()
		h.s.requestLog(r).Error("audit record of a change not kept", "operation", op, "session", c.sessionID,
			"virtual_number", wire.Masked(c.virtualNumber), "error", err)
	}
}

// rawJSON encodes v for an audit record; nil stays absent.
func rawJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// fingerprint names the bearer token a request used without revealing it:
// the first 12 hex digits of its SHA-256.
func (s *Server) fingerprint(r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || s.auth.Load() == nil {
		return ""
	}
	sum := sha256.Sum256([]byte(tok))
	return "sha256:" + hex.EncodeToString(sum[:6])
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
