package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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

// audit records a change of a session: who (the token's fingerprint, the
// client's address and user agent), what, when. The change is made when
// this runs; a record that cannot be kept is logged and counted, and the
// client still gets the change's answer.
func (h *sessionsAPI) audit(r *http.Request, op string, sess session.Session) {
	if h.rec == nil {
		return
	}
	now := time.Now().UTC()
	a := wire.Audit{
		ID:            "audit-" + randomID(),
		Timestamp:     now,
		Operation:     op,
		SessionID:     sess.ID,
		VirtualNumber: sess.VirtualNumber,
		Participants:  sess.Participants[:],
		TTLSeconds:    sess.TTLSeconds,
		SubAccountID:  sess.SubAccountID,
		Actor: wire.Actor{
			Author:    wire.AuthorAdmin,
			Token:     h.s.fingerprint(r),
			Address:   remoteAddr(r).String(),
			UserAgent: truncate(r.UserAgent(), 256),
		},
	}
	if err := h.rec.Record(a.Record(h.s.cfg.Instance, now)); err != nil {
		h.s.metrics.auditFailures.Inc()
		h.s.cfg.Logger.Error("audit record of a session change not kept", "operation", op, "session", sess.ID, "error", err)
	}
}

// fingerprint names the bearer token a request used without revealing it:
// the first 12 hex digits of its SHA-256.
func (s *Server) fingerprint(r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || len(s.cfg.Tokens) == 0 {
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
