package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
)

// maxSessionBody bounds a session request body.
const maxSessionBody = 16 << 10

// MountSessions serves the session API on s under /v1/sessions, writing an
// audit record of every change through rec (nil: none):
//
//	POST   /v1/sessions                        create (201, 400, 409)
//	GET    /v1/sessions?virtualNumber=...      list the open sessions on a number
//	GET    /v1/sessions/{id}                   read (200, 404)
//	DELETE /v1/sessions/{id}                   end (204, 404)
func (s *Server) MountSessions(store *session.Store, rec Recorder) {
	h := &sessionsAPI{store: store, s: s, rec: rec}
	s.Handle("POST /v1/sessions", s.Protect(http.HandlerFunc(h.create)))
	s.Handle("GET /v1/sessions", s.Protect(http.HandlerFunc(h.list)))
	s.Handle("GET /v1/sessions/{id}", s.Protect(http.HandlerFunc(h.get)))
	s.Handle("DELETE /v1/sessions/{id}", s.Protect(http.HandlerFunc(h.delete)))
	s.Handle("/v1/", s.Protect(http.HandlerFunc(notAllowed)))
}

// notAllowed answers what the routes above do not match, in JSON: 405 with
// Allow for a known path, 404 otherwise.
func notAllowed(w http.ResponseWriter, r *http.Request) {
	rest, isItem := strings.CutPrefix(r.URL.Path, "/v1/sessions/")
	switch {
	case r.URL.Path == "/v1/sessions":
		w.Header().Set("Allow", "GET, POST")
	case isItem && rest != "" && !strings.Contains(rest, "/"):
		w.Header().Set("Allow", "GET, DELETE")
	default:
		writeError(w, http.StatusNotFound, "not found: "+r.Method+" "+r.URL.Path)
		return
	}
	writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path)
}

type sessionsAPI struct {
	store *session.Store
	s     *Server
	rec   Recorder
}

func (h *sessionsAPI) create(w http.ResponseWriter, r *http.Request) {
	req, err := ParseSessionRequest(http.MaxBytesReader(w, r.Body, maxSessionBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body larger than 16 KiB")
			return
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	sess, err := h.store.Create(r.Context(), req)
	switch {
	case errors.Is(err, session.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, session.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		h.s.cfg.Logger.Error("create session failed", "error", err)
		writeError(w, http.StatusServiceUnavailable, "session store unavailable")
	default:
		// Debug, not info: a call centre creates sessions at the rate of
		// its orders; at the default level the log stays one line per
		// notable event.
		h.s.cfg.Logger.Debug("session created", "id", sess.ID, "virtual_number", wire.Masked(sess.VirtualNumber),
			"participants", []string{wire.MaskNumber(sess.Participants[0]), wire.MaskNumber(sess.Participants[1])}, "ttl_seconds", sess.TTLSeconds)
		h.audit(r, wire.AuditCreate, sess)
		w.Header().Set("Location", "/v1/sessions/"+sess.ID)
		writeJSON(w, http.StatusCreated, sess)
	}
}

// ParseSessionRequest decodes a create request strictly: one JSON object,
// no unknown fields, so that a typo ("participant") is an error rather than
// a session silently made without it.
func ParseSessionRequest(body io.Reader) (session.Request, error) {
	var req session.Request
	dec := json.NewDecoder(body)
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return req, badJSON(err)
	}
	// Exactly one value, and nothing after it: Decoder.More would not see
	// a stray "}" or "]".
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, errors.New("body: more than one JSON value, or trailing characters")
	}
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] != '{' {
		return req, errors.New("body: expected a JSON object")
	}
	strict := json.NewDecoder(bytes.NewReader(raw))
	strict.DisallowUnknownFields()
	if err := strict.Decode(&req); err != nil {
		return req, badJSON(err)
	}
	return req, nil
}

func badJSON(err error) error {
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return err
	case errors.As(err, &typ) && typ.Field != "":
		return errors.New(typ.Field + ": wrong type, got " + typ.Value)
	case errors.Is(err, io.EOF):
		return errors.New("body: empty; expected a JSON object")
	default:
		return errors.New("body: " + err.Error())
	}
}

func (h *sessionsAPI) get(w http.ResponseWriter, r *http.Request) {
	sess, err := h.store.Get(r.Context(), r.PathValue("id"))
	h.answer(w, sess, err, http.StatusOK)
}

func (h *sessionsAPI) delete(w http.ResponseWriter, r *http.Request) {
	sess, err := h.store.Delete(r.Context(), r.PathValue("id"))
	if err == nil {
		h.audit(r, wire.AuditDelete, sess)
		h.s.cfg.Logger.Debug("session deleted", "id", sess.ID, "virtual_number", wire.Masked(sess.VirtualNumber))
	}
	h.answer(w, sess, err, http.StatusNoContent)
}

func (h *sessionsAPI) answer(w http.ResponseWriter, sess session.Session, err error, status int) {
	switch {
	case errors.Is(err, session.ErrNotFound):
		writeError(w, http.StatusNotFound, "session not found")
	case err != nil:
		h.s.cfg.Logger.Error("session store failed", "error", err)
		writeError(w, http.StatusServiceUnavailable, "session store unavailable")
	case status == http.StatusNoContent:
		w.WriteHeader(status)
	default:
		writeJSON(w, status, sess)
	}
}

func (h *sessionsAPI) list(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("virtualNumber")
	if raw == "" {
		writeError(w, http.StatusBadRequest, "virtualNumber: required query parameter")
		return
	}
	vn, err := wire.CleanNumber(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, "virtualNumber: "+raw+" is not a phone number (8 to 15 digits, optional +)")
		return
	}
	list, _, err := h.store.ListSessions(session.SessionFilter{VirtualNumber: vn}, session.Page{Limit: session.MaxLimit}, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": list})
}
