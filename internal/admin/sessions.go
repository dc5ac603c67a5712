package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
//	POST   /v1/sessions                     create (201, 400, 404, 409; 422 for an
//	                                        Idempotency-Key used with another body)
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

// idempotencyHeader names the header that makes a create safe to retry.
const idempotencyHeader = "Idempotency-Key"

// keyedCreateTimeout bounds a create with an Idempotency-Key, which goes
// on when its client goes away (the client's retry gets its result); it
// is well below the claim's grace (session.Idempotent), after which a
// retry would take the key over.
const keyedCreateTimeout = 15 * time.Second

func (h *api) create(w http.ResponseWriter, r *http.Request) {
	req, err := ParseSessionRequest(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		bodyError(w, err)
		return
	}
	keys := r.Header.Values(idempotencyHeader)
	switch {
	case len(keys) > 1:
		writeBadRequest(w, fmt.Sprintf("%s: given %d times", idempotencyHeader, len(keys)))
		return
	case len(keys) == 1:
		if err := session.ValidIdempotencyKey(keys[0]); err != nil {
			writeBadRequest(w, invalidMessage(err))
			return
		}
	}
	scope := scopeOf(r)
	if req.SubAccountID == "" && len(scope) == 1 {
		req.SubAccountID = scope[0]
	}
	switch {
	case scope == nil:
	case req.SubAccountID == "":
		writeBadRequest(w, "subAccountId: required: this token covers the sub-accounts "+strings.Join(scope, ", "))
		return
	case !scope.Allows(req.SubAccountID):
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("subAccountId: no sub-account %q", req.SubAccountID))
		return
	}
	req.CountryCode = strings.ToUpper(req.CountryCode)
	if len(keys) == 0 {
		h.answerCreate(w, r, nil, h.createSession(r.Context(), r, req, scope))
		return
	}
	h.createOnce(w, r, keys[0], req, scope)
}

// createOnce serves a create with an Idempotency-Key: the first request
// with the key (within the token's scope, for 24 hours, in any admin
// process) creates the session; a retry with the same request gets the
// first one's answer again; one with another request, 422. A create that
// changes nothing (a refusal) keeps no result: its retry is served anew.
func (h *api) createOnce(w http.ResponseWriter, r *http.Request, key string, req session.Request, scope session.Scope) {
	// Not cancelled with the request: a client that gave up retries,
	// and then gets this create's result.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), keyedCreateTimeout)
	defer cancel()
	claim, first, err := h.store.Idempotent(ctx, scope, key, fingerprintOf(req), h.s.cfg.IdempotencyWait)
	switch {
	case errors.Is(err, session.ErrIdempotencyMismatch):
		writeError(w, http.StatusUnprocessableEntity, CodeIdempotencyMismatch,
			idempotencyHeader+": already used with another request body within 24 hours; send this request with a new key")
		return
	case errors.Is(err, session.ErrIdempotencyInFlight):
		writeError(w, http.StatusConflict, CodeIdempotencyInFlight,
			idempotencyHeader+": the first request with this key is still in flight; retry later")
		return
	case err != nil:
		h.unavailable(w, r, "claim idempotency key", err)
		return
	case first != nil:
		h.s.requestLog(r).Debug("session create answered again", "id", first.SessionID, "status", first.Status)
		w.Header().Set("Idempotent-Replayed", "true")
		w.Header().Set("Location", "/v1/sessions/"+first.SessionID)
		writeRawJSON(w, first.Status, first.Body)
		return
	}
	h.answerCreate(w, r, claim, h.createSession(ctx, r, req, scope))
}

// createAnswer is the outcome of a create: the session (status 201) and
// its encoding, or an error answer.
type createAnswer struct {
	status int
	sess   session.Session
	body   []byte
	err    errorBody
}

// answerCreate writes a's answer; with a claim, it first keeps the result
// of a create for the key's retries, or releases the key of a refusal.
func (h *api) answerCreate(w http.ResponseWriter, r *http.Request, claim *session.IdempotencyClaim, a createAnswer) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if a.status != http.StatusCreated {
		if claim != nil {
			if err := claim.Release(ctx); err != nil {
				h.s.requestLog(r).Warn("idempotency key not released; a retry waits for it to be taken over", "error", err)
			}
		}
		writeErrorBody(w, a.status, a.err)
		return
	}
	if claim != nil {
		res := session.IdempotentResult{Status: a.status, SessionID: a.sess.ID, Body: a.body}
		if err := claim.Complete(ctx, res); err != nil {
			h.s.requestLog(r).Error("session created, but its result is not kept for retries of its Idempotency-Key", "id", a.sess.ID, "error", err)
		}
	}
	w.Header().Set("Location", "/v1/sessions/"+a.sess.ID)
	writeRawJSON(w, a.status, a.body)
}

// fingerprintOf identifies a create request, as parsed and completed
// (the token's sub-account), so that the same request sent again with
// other spacing or field order is the same request.
func fingerprintOf(req session.Request) string {
	b, _ := json.Marshal(req) // a Request always encodes
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// createSession creates the session req describes and answers what the
// client is to be told.
func (h *api) createSession(ctx context.Context, r *http.Request, req session.Request, scope session.Scope) createAnswer {
	allocating := req.VirtualNumber == ""
	sess, err := h.store.Create(ctx, req)
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
	refused := func(status int, b errorBody) createAnswer { return createAnswer{status: status, err: b} }
	conflict := func(code, msg string) createAnswer {
		return refused(http.StatusConflict, errorBody{Code: code, Error: msg})
	}
	switch {
	case errors.Is(err, session.ErrInvalid):
		return refused(http.StatusBadRequest, errorBody{Code: CodeInvalidField, Error: invalidMessage(err)})
	case errors.Is(err, session.ErrPoolExhausted):
		a := conflict(CodePoolExhausted, err.Error()+"; close sessions of these participants, or add numbers to the pool")
		a.err.SubAccountID = req.SubAccountID
		return a
	case errors.Is(err, session.ErrNumberUnavailable):
		msg := "virtualNumber: " + err.Error()
		if scope != nil {
			// Whose the number is, is not this token's business.
			msg = "virtualNumber: " + req.VirtualNumber + " is not available for new sessions of sub-account " + req.SubAccountID
		}
		a := conflict(CodeNumberUnavailable, msg)
		a.err.VirtualNumber, _ = wire.CleanNumber(req.VirtualNumber)
		return a
	case errors.Is(err, session.ErrPINConflict):
		a := conflict(CodeConflict, "pin: "+session.ErrPINConflict.Error())
		a.err.SessionID = h.visibleHolder(ctx, err, scope)
		return a
	case errors.Is(err, session.ErrConflict):
		msg := "participants: " + err.Error()
		if scope != nil {
			msg = "participants: " + session.ErrConflict.Error()
		}
		a := conflict(CodeConflict, msg)
		a.err.SessionID = h.visibleHolder(ctx, err, scope)
		return a
	case err != nil:
		h.s.requestLog(r).Error("create session failed", "error", err)
		return refused(http.StatusServiceUnavailable, errorBody{Code: CodeUnavailable, Error: "session store unavailable"})
	}
	body, err := json.Marshal(sess)
	if err != nil {
		h.s.requestLog(r).Error("encode session failed", "id", sess.ID, "error", err)
		return refused(http.StatusInternalServerError, errorBody{Code: CodeInternal, Error: "cannot encode the session"})
	}
	h.s.requestLog(r).Info("session created", "id", sess.ID, "sub_account", sess.SubAccountID, "virtual_number", wire.Masked(sess.VirtualNumber),
		"participants", maskedParticipants(sess), "ttl_seconds", sess.TTLSeconds, "allocated", allocating)
	h.audit(r, wire.AuditCreate, sessionChange(nil, &sess))
	return createAnswer{status: http.StatusCreated, sess: sess, body: body}
}

// visibleHolder is the id of the session a create conflicts with (err
// holds it), when the token may see that session; "" otherwise.
func (h *api) visibleHolder(ctx context.Context, err error, scope session.Scope) string {
	var held *session.HeldError
	if !errors.As(err, &held) {
		return ""
	}
	if scope == nil {
		return held.SessionID
	}
	if s, err := h.store.Get(ctx, held.SessionID); err == nil && scope.Allows(s.SubAccountID) {
		return held.SessionID
	}
	return ""
}

// logChange logs a change (op, a wire.Audit operation) of session s at
// info level: session changes are notable events. Its numbers are masked.
func (h *api) logChange(r *http.Request, op string, s session.Session) {
	h.s.requestLog(r).Info("session changed", "id", s.ID, "operation", op, "status", s.Status, "sub_account", s.SubAccountID,
		"virtual_number", wire.Masked(s.VirtualNumber), "participants", maskedParticipants(s))
}

// maskedParticipants are a session's participants for a log line.
func maskedParticipants(s session.Session) []string {
	return []string{wire.MaskNumber(s.Participants[0]), wire.MaskNumber(s.Participants[1])}
}

// invalidMessage is the message of a session.ErrInvalid error: the field
// and what is wrong with it.
func invalidMessage(err error) string {
	return strings.TrimPrefix(err.Error(), session.ErrInvalid.Error()+": ")
}

// unavailable answers a store failure: 503, logged.
func (h *api) unavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.s.requestLog(r).Error(what+" failed", "error", err)
	writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "session store unavailable")
}

// session reads the session named by the path within the request's scope;
// false once it has answered 404 or 503.
func (h *api) session(w http.ResponseWriter, r *http.Request) (session.Session, bool) {
	sess, err := h.store.Get(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, session.ErrNotFound):
	case err != nil:
		h.unavailable(w, r, "read session", err)
		return sess, false
	case scopeOf(r).Allows(sess.SubAccountID):
		return sess, true
	}
	writeError(w, http.StatusNotFound, CodeNotFound, "session not found")
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
		writeError(w, http.StatusNotFound, CodeNotFound, "session not found")
	case err != nil:
		h.unavailable(w, r, "delete session", err)
	default:
		h.audit(r, wire.AuditDelete, sessionChange(&sess, nil))
		h.s.requestLog(r).Info("session deleted", "id", sess.ID, "sub_account", sess.SubAccountID, "virtual_number", wire.Masked(sess.VirtualNumber),
			"participants", maskedParticipants(sess))
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
		writeBadRequest(w, invalidMessage(err))
	case errors.Is(err, session.ErrClosed):
		writeErrorBody(w, http.StatusConflict, errorBody{Code: CodeSessionClosed, Error: err.Error() + "; a closed session never reopens", SessionID: before.ID})
	case errors.Is(err, session.ErrNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, "session not found")
	case err != nil:
		h.unavailable(w, r, "update session", err)
	default:
		op := wire.AuditUpdate
		if after.Status == session.StatusClosed {
			op = wire.AuditClose
		}
		h.audit(r, op, sessionChange(&before, &after))
		h.logChange(r, op, after)
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
		writeBadRequest(w, message(err))
		return
	}
	f := session.SessionFilter{Scope: scopeOf(r), SubAccountID: q.Get("subAccountId"), Ref: q.Get("ref"), PIN: q.Get("pin"), Status: q.Get("status")}
	var err error
	if f.VirtualNumber, err = numberParam(q, "virtualNumber"); err != nil {
		writeBadRequest(w, message(err))
		return
	}
	if f.Participant, err = numberParam(q, "participant"); err != nil {
		writeBadRequest(w, message(err))
		return
	}
	p, err := page(q)
	if err != nil {
		writeBadRequest(w, message(err))
		return
	}
	list, next, err := h.store.ListSessions(f, p, time.Now())
	switch {
	case errors.Is(err, session.ErrInvalid):
		writeBadRequest(w, invalidMessage(err))
	case err != nil:
		h.unavailable(w, r, "list sessions", err)
	default:
		if list == nil {
			list = []session.Session{}
		}
		writeJSON(w, http.StatusOK, listAnswer("sessions", list, next))
	}
}
