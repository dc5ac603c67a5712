package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
)

// MountSessions serves the masking API on s under /v1/, writing an audit
// record of every change through rec (nil: none). Sessions:
//
//	POST   /v1/sessions                     create (201, 400, 404, 409)
//	GET    /v1/sessions?subAccountId=&virtualNumber=&participant=&ref=&pin=&status=&limit=&cursor=
//	                                        list, a page at a time
//	GET    /v1/sessions/{id}                read, open or closed (200, 404)
//	PATCH  /v1/sessions/{id}                change or close (200, 400, 404, 409)
//	DELETE /v1/sessions/{id}                remove at once (204, 404)
//	GET    /v1/sessions/{id}/interactions   its calls, from the archive (200, 404, 503)
//
// the number pool and the sub-accounts' settings:
//
//	PUT    /v1/numbers/{number}             register or update (201, 200)
//	GET    /v1/numbers/{number}             read (200, 404)
//	GET    /v1/numbers?subAccountId=&status=&limit=&cursor=   list
//	DELETE /v1/numbers/{number}[?force=true]   remove (204; 409 while sessions are open)
//	PUT    /v1/subaccounts/{id}             set the out-of-session policy, the default flow (201, 200)
//	GET    /v1/subaccounts/{id}             read them (200, 404)
//
// and the IVR flows numbers and sub-accounts attach:
//
//	PUT    /v1/flows/{id}                   store a new version (201 the first, 200 after; 400, 404, 409)
//	GET    /v1/flows/{id}                   read the current version (200, 404)
//	GET    /v1/flows?subAccountId=&limit=&cursor=   list
//	DELETE /v1/flows/{id}[?force=true]      delete (204; 409 while attached, unless force detaches it)
//
// Every route needs a token when tokens are configured; a token limited
// to sub-accounts gets 404 for what belongs to others.
func (s *Server) MountSessions(store *session.Store, rec Recorder) {
	h := &api{store: store, s: s, rec: rec}
	for _, rt := range routes {
		for method, handler := range rt.handlers(h) {
			s.Handle(method+" "+rt.pattern, s.Protect(http.HandlerFunc(handler)))
		}
	}
	s.Handle("/v1/", s.Protect(http.HandlerFunc(notAllowed)))
}

// api serves the /v1/ routes.
type api struct {
	store *session.Store
	s     *Server
	rec   Recorder
}

// createBody is a create request as the client sends it.
type createBody struct {
	session.Request
	ExpiresAt *rfc3339 `json:"expiresAt"`
}

// ParseSessionRequest decodes a create request strictly: one JSON object,
// no unknown fields, so that a typo ("participant") is an error rather than
// a session silently made without it. Its errors name the field.
func ParseSessionRequest(body io.Reader) (session.Request, error) {
	var b createBody
	if err := decodeStrict(body, &b); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return session.Request{}, err
		}
		return session.Request{}, errors.New(message(err))
	}
	req := b.Request
	if b.ExpiresAt != nil {
		t := time.Time(*b.ExpiresAt)
		req.ExpiresAt = &t
	}
	return req, nil
}

func (h *api) create(w http.ResponseWriter, r *http.Request) {
	req, err := ParseSessionRequest(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		bodyError(w, err)
		return
	}
	scope := scopeOf(r)
	if req.SubAccountID == "" && len(scope) == 1 {
		req.SubAccountID = scope[0]
	}
	switch {
	case scope == nil:
	case req.SubAccountID == "":
		writeError(w, http.StatusBadRequest, "subAccountId: required: this token covers the sub-accounts "+strings.Join(scope, ", "))
		return
	case !scope.Allows(req.SubAccountID):
		writeError(w, http.StatusNotFound, fmt.Sprintf("subAccountId: no sub-account %q", req.SubAccountID))
		return
	}
	req.CountryCode = strings.ToUpper(req.CountryCode)
	allocating := req.VirtualNumber == ""
	sess, err := h.store.Create(r.Context(), req)
	if allocating && !errors.Is(err, session.ErrInvalid) {
		result := AllocationAllocated
		switch {
		case errors.Is(err, session.ErrPoolExhausted):
			result = AllocationExhausted
		case err != nil:
			result = AllocationError
		}
		h.s.metrics.allocations.WithLabelValues(result).Inc()
	}
	switch {
	case errors.Is(err, session.ErrInvalid):
		writeError(w, http.StatusBadRequest, invalidMessage(err))
	case errors.Is(err, session.ErrPoolExhausted):
		writeError(w, http.StatusConflict, err.Error()+"; close sessions of these participants, or add numbers to the pool")
	case errors.Is(err, session.ErrNumberUnavailable) && scope != nil:
		// Whose the number is, is not this token's business.
		writeError(w, http.StatusConflict, "virtualNumber: "+req.VirtualNumber+" is not available for new sessions of sub-account "+req.SubAccountID)
	case errors.Is(err, session.ErrNumberUnavailable):
		writeError(w, http.StatusConflict, "virtualNumber: "+err.Error())
	case errors.Is(err, session.ErrPINConflict):
		writeError(w, http.StatusConflict, "pin: "+session.ErrPINConflict.Error())
	case errors.Is(err, session.ErrConflict) && scope != nil:
		writeError(w, http.StatusConflict, "participants: "+session.ErrConflict.Error())
	case errors.Is(err, session.ErrConflict):
		writeError(w, http.StatusConflict, "participants: "+err.Error())
	case err != nil:
		h.unavailable(w, "create session", err)
	default:
		// Debug, not info: a call centre creates sessions at the rate of
		// its orders; at the default level the log stays one line per
		// notable event.
		h.s.cfg.Logger.Debug("session created", "id", sess.ID, "sub_account", sess.SubAccountID, "virtual_number", wire.Masked(sess.VirtualNumber),
			"participants", []string{wire.MaskNumber(sess.Participants[0]), wire.MaskNumber(sess.Participants[1])},
			"ttl_seconds", sess.TTLSeconds, "allocated", allocating)
		h.audit(r, wire.AuditCreate, sessionChange(nil, &sess))
		w.Header().Set("Location", "/v1/sessions/"+sess.ID)
		writeJSON(w, http.StatusCreated, sess)
	}
}

// invalidMessage is the message of a session.ErrInvalid error: the field
// and what is wrong with it.
func invalidMessage(err error) string {
	return strings.TrimPrefix(err.Error(), session.ErrInvalid.Error()+": ")
}

// unavailable answers a store failure: 503, logged.
func (h *api) unavailable(w http.ResponseWriter, what string, err error) {
	h.s.cfg.Logger.Error(what+" failed", "error", err)
	writeError(w, http.StatusServiceUnavailable, "session store unavailable")
}

// session reads the session named by the path within the request's scope;
// false once it has answered 404 or 503.
func (h *api) session(w http.ResponseWriter, r *http.Request) (session.Session, bool) {
	sess, err := h.store.Get(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, session.ErrNotFound):
	case err != nil:
		h.unavailable(w, "read session", err)
		return sess, false
	case scopeOf(r).Allows(sess.SubAccountID):
		return sess, true
	}
	writeError(w, http.StatusNotFound, "session not found")
	return sess, false
}

func (h *api) get(w http.ResponseWriter, r *http.Request) {
	if sess, ok := h.session(w, r); ok {
		writeJSON(w, http.StatusOK, sess)
	}
}

func (h *api) delete(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.session(w, r); !ok {
		return
	}
	sess, err := h.store.Delete(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, session.ErrNotFound):
		writeError(w, http.StatusNotFound, "session not found")
	case err != nil:
		h.unavailable(w, "delete session", err)
	default:
		h.audit(r, wire.AuditDelete, sessionChange(&sess, nil))
		h.s.cfg.Logger.Debug("session deleted", "id", sess.ID, "virtual_number", wire.Masked(sess.VirtualNumber))
		w.WriteHeader(http.StatusNoContent)
	}
}

// patchBody is a PATCH request as the client sends it. Greeting is raw so
// that null (remove it) differs from absent (keep it).
type patchBody struct {
	TTLSeconds    *int64          `json:"ttlSeconds"`
	ExpiresAt     *rfc3339        `json:"expiresAt"`
	Greeting      json.RawMessage `json:"greeting"`
	CallRecording *bool           `json:"callRecording"`
	MaxCalls      *int64          `json:"maxCalls"`
	Ref           *string         `json:"ref"`
	Status        *string         `json:"status"`
	// PIN is refused by name: a session's pin never changes.
	PIN *string `json:"pin"`
}

// patchFields are the fields a PATCH may carry, for its error messages.
const patchFields = "ttlSeconds, expiresAt, greeting, callRecording, maxCalls, ref or status"

// ParsePatch decodes a PATCH request strictly (see ParseSessionRequest):
// greeting null removes the greeting, {"status": "closed"} closes the
// session, and no other status can be set.
func ParsePatch(body io.Reader) (session.Patch, error) {
	var p session.Patch
	var raw json.RawMessage
	if err := decodeStrict(body, &raw); err != nil {
		return p, err
	}
	// Fields given as null, other than greeting, are refused by name: a
	// null would otherwise read as absent and change nothing, silently.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return p, badRequest("body", "%v", err)
	}
	if len(fields) == 0 {
		return p, badRequest("body", "nothing to change; give %s", patchFields)
	}
	var b patchBody
	if err := decodeObject(raw, &b, ""); err != nil {
		return p, err
	}
	for name, v := range fields {
		// encoding/json matches field names without regard to case.
		if !strings.EqualFold(name, "greeting") && isNull(v) {
			return p, badRequest(name, "cannot be null")
		}
	}
	if b.PIN != nil {
		// Callers were told the pin: a new one is a new session.
		return p, badRequest("pin", "cannot be changed; close the session and create one with the new pin")
	}
	p.TTLSeconds, p.CallRecording, p.MaxCalls, p.Ref = b.TTLSeconds, b.CallRecording, b.MaxCalls, b.Ref
	if b.ExpiresAt != nil {
		t := time.Time(*b.ExpiresAt)
		p.ExpiresAt = &t
	}
	switch {
	case b.Greeting == nil:
	case isNull(b.Greeting):
		p.ClearGreeting = true
	default:
		var g wire.Say
		if err := decodeObject(b.Greeting, &g, "greeting."); err != nil {
			return p, err
		}
		p.Greeting = &g
	}
	if b.Status != nil {
		if *b.Status != session.StatusClosed {
			return p, badRequest("status", "%q: only %q can be set (a closed session never reopens)", *b.Status, session.StatusClosed)
		}
		p.Close = true
	}
	return p, nil
}

func (h *api) patch(w http.ResponseWriter, r *http.Request) {
	p, err := ParsePatch(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		bodyError(w, err)
		return
	}
	before, ok := h.session(w, r)
	if !ok {
		return
	}
	after, err := h.store.Update(r.Context(), before.ID, p)
	switch {
	case errors.Is(err, session.ErrInvalid):
		writeError(w, http.StatusBadRequest, invalidMessage(err))
	case errors.Is(err, session.ErrClosed):
		writeError(w, http.StatusConflict, err.Error()+"; a closed session never reopens")
	case errors.Is(err, session.ErrNotFound):
		writeError(w, http.StatusNotFound, "session not found")
	case err != nil:
		h.unavailable(w, "update session", err)
	default:
		op := wire.AuditUpdate
		if after.Status == session.StatusClosed {
			op = wire.AuditClose
		}
		h.audit(r, op, sessionChange(&before, &after))
		h.s.cfg.Logger.Debug("session changed", "id", after.ID, "operation", op, "status", after.Status)
		writeJSON(w, http.StatusOK, after)
	}
}

// queryParams checks that the query names only the parameters allowed,
// so that a typo is an error rather than a filter silently ignored.
func queryParams(q url.Values, allowed ...string) error {
	for name, vs := range q {
		known := false
		for _, a := range allowed {
			known = known || name == a
		}
		if !known {
			return badRequest(name, "unknown query parameter; known: %s", strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return badRequest(name, "given %d times", len(vs))
		}
	}
	return nil
}

// page reads limit and cursor.
func page(q url.Values) (session.Page, error) {
	p := session.Page{Cursor: q.Get("cursor")}
	if raw := q.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > session.MaxLimit {
			return p, badRequest("limit", "%q: want 1 to %d", raw, session.MaxLimit)
		}
		p.Limit = n
	}
	return p, nil
}

// numberParam reads an optional phone number from the query.
func numberParam(q url.Values, name string) (string, error) {
	raw := q.Get(name)
	if raw == "" {
		return "", nil
	}
	n, err := wire.CleanNumber(raw)
	if err != nil {
		return "", badRequest(name, "%q is not a phone number (8 to 15 digits, optional +)", raw)
	}
	return n, nil
}

// listAnswer is a page of a list: items under name, and the cursor of the
// next page (null on the last).
func listAnswer(name string, items any, next string) map[string]any {
	var cursor *string
	if next != "" {
		cursor = &next
	}
	return map[string]any{name: items, "nextCursor": cursor}
}

func (h *api) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := queryParams(q, "subAccountId", "virtualNumber", "participant", "ref", "pin", "status", "limit", "cursor"); err != nil {
		writeError(w, http.StatusBadRequest, message(err))
		return
	}
	f := session.SessionFilter{Scope: scopeOf(r), SubAccountID: q.Get("subAccountId"), Ref: q.Get("ref"), PIN: q.Get("pin"), Status: q.Get("status")}
	var err error
	if f.VirtualNumber, err = numberParam(q, "virtualNumber"); err != nil {
		writeError(w, http.StatusBadRequest, message(err))
		return
	}
	if f.Participant, err = numberParam(q, "participant"); err != nil {
		writeError(w, http.StatusBadRequest, message(err))
		return
	}
	p, err := page(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, message(err))
		return
	}
	list, next, err := h.store.ListSessions(f, p, time.Now())
	switch {
	case errors.Is(err, session.ErrInvalid):
		writeError(w, http.StatusBadRequest, invalidMessage(err))
	case err != nil:
		h.unavailable(w, "list sessions", err)
	default:
		if list == nil {
			list = []session.Session{}
		}
		writeJSON(w, http.StatusOK, listAnswer("sessions", list, next))
	}
}
