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

// numberBody is a PUT /v1/numbers/{number} request as the client sends
// it. OutOfSession and Flow are raw so that null (remove) differs from
// absent (keep).
type numberBody struct {
	SubAccountID *string         `json:"subAccountId"`
	CountryCode  *string         `json:"countryCode"`
	Status       *string         `json:"status"`
	OutOfSession json.RawMessage `json:"outOfSession"`
	Flow         json.RawMessage `json:"flow"`
}

// ParseNumberRequest decodes a PUT /v1/numbers/{number} request strictly
// (see ParseSessionRequest): outOfSession null removes the number's
// policy, flow null (or "") detaches its flow; other fields may not be
// null.
func ParseNumberRequest(body io.Reader) (session.NumberRequest, error) {
	var req session.NumberRequest
	var raw json.RawMessage
	if err := decodeStrict(body, &raw); err != nil {
		return req, err
	}
	var b numberBody
	if err := decodeObject(raw, &b, ""); err != nil {
		return req, err
	}
	if err := noNulls(raw, "outOfSession", "flow"); err != nil {
		return req, err
	}
	var err error
	if req.Flow, err = parseFlowID(b.Flow, "flow"); err != nil {
		return req, err
	}
	req.SubAccountID, req.Status = b.SubAccountID, b.Status
	if b.CountryCode != nil {
		c := strings.ToUpper(*b.CountryCode)
		req.CountryCode = &c
	}
	p, clear, err := parsePolicy(b.OutOfSession)
	if err != nil {
		return req, err
	}
	req.OutOfSession, req.ClearOutOfSession = p, clear
	return req, nil
}

// noNulls refuses a field given as null, except those named: a null
// would otherwise read as absent and change nothing, silently.
func noNulls(raw json.RawMessage, nullable ...string) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return badRequest("body", "%v", err)
	}
	for name, v := range fields {
		ok := false
		for _, n := range nullable {
			ok = ok || strings.EqualFold(n, name) // as encoding/json matches them
		}
		if !ok && isNull(v) {
			return badRequest(name, "cannot be null")
		}
	}
	return nil
}

// parseFlowID decodes a flow attachment named field: absent (nil), null
// or "" (detach: a pointer to ""), or a flow id.
func parseFlowID(raw json.RawMessage, field string) (*string, error) {
	if raw == nil {
		return nil, nil
	}
	id := ""
	if !isNull(raw) {
		if err := json.Unmarshal(raw, &id); err != nil {
			return nil, badRequest(field, "wrong type: want a flow id, or null to detach it")
		}
	}
	return &id, nil
}

// parsePolicy decodes an outOfSession value: absent (nil, false), null
// (nil, true: remove it), or a policy.
func parsePolicy(raw json.RawMessage) (*session.Policy, bool, error) {
	switch {
	case raw == nil:
		return nil, false, nil
	case isNull(raw):
		return nil, true, nil
	}
	var p session.Policy
	if err := decodeObject(raw, &p, "outOfSession."); err != nil {
		return nil, false, err
	}
	return &p, false, nil
}

// numberPath reads the number of the path; false once it has answered.
func numberPath(w http.ResponseWriter, r *http.Request, notFound bool) (string, bool) {
	raw := r.PathValue("number")
	n, err := wire.CleanNumber(raw)
	if err != nil {
		if notFound {
			writeError(w, http.StatusNotFound, CodeNotFound, "number not in the pool")
		} else {
			writeBadRequest(w, fmt.Sprintf("number: %q is not a phone number (8 to 15 digits, optional +)", raw))
		}
		return "", false
	}
	return n, true
}

// numberError answers an error of the pool about number.
func (h *api) numberError(w http.ResponseWriter, r *http.Request, number, what string, err error) {
	switch {
	case errors.Is(err, session.ErrInvalid):
		writeBadRequest(w, invalidMessage(err))
	case errors.Is(err, session.ErrNumberNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, session.ErrNumberNotFound.Error())
	case errors.Is(err, session.ErrNumberInUse):
		writeErrorBody(w, http.StatusConflict, errorBody{Code: CodeInUse, Error: err.Error(), Number: number})
	default:
		h.unavailable(w, r, what, err)
	}
}

func (h *api) putNumber(w http.ResponseWriter, r *http.Request) {
	req, err := ParseNumberRequest(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		bodyError(w, err)
		return
	}
	number, ok := numberPath(w, r, false)
	if !ok {
		return
	}
	scope := scopeOf(r)
	if req.SubAccountID == nil && len(scope) == 1 {
		req.SubAccountID = &scope[0]
	}
	if req.SubAccountID != nil && !scope.Allows(*req.SubAccountID) {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("subAccountId: no sub-account %q", *req.SubAccountID))
		return
	}
	view, before, err := h.store.PutNumber(r.Context(), number, req, scope)
	if err != nil {
		h.numberError(w, r, number, "put number", err)
		return
	}
	after := view.Number
	h.audit(r, wire.AuditNumberPut, numberChange(before, &after))
	status := http.StatusOK
	if before == nil {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/numbers/"+url.PathEscape(view.Number.Number))
	}
	h.s.requestLog(r).Debug("number put", "number", wire.Masked(view.Number.Number), "sub_account", view.SubAccountID, "status", view.Status, "new", before == nil)
	writeJSON(w, status, view)
}

func (h *api) getNumber(w http.ResponseWriter, r *http.Request) {
	number, ok := numberPath(w, r, true)
	if !ok {
		return
	}
	view, err := h.store.GetNumber(r.Context(), number, scopeOf(r))
	if err != nil {
		h.numberError(w, r, number, "read number", err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

func (h *api) deleteNumber(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := queryParams(q, "force"); err != nil {
		writeBadRequest(w, message(err))
		return
	}
	force := false
	if raw := q.Get("force"); raw != "" {
		var err error
		if force, err = strconv.ParseBool(raw); err != nil {
			writeBadRequest(w, fmt.Sprintf("force: %q: want true or false", raw))
			return
		}
	}
	number, ok := numberPath(w, r, true)
	if !ok {
		return
	}
	n, closed, err := h.store.DeleteNumber(r.Context(), number, force, scopeOf(r))
	// Sessions closed before an error are closed all the same.
	for i := range closed {
		h.audit(r, wire.AuditClose, change{
			subAccount: closed[i].SubAccountID, sessionID: closed[i].ID, virtualNumber: closed[i].VirtualNumber,
			participants: closed[i].Participants[:], ttlSeconds: closed[i].TTLSeconds, after: &closed[i],
		})
		h.logChange(r, wire.AuditClose, closed[i])
	}
	if err != nil {
		h.numberError(w, r, number, "remove number", err)
		return
	}
	h.audit(r, wire.AuditNumberDelete, numberChange(&n, nil))
	h.s.requestLog(r).Debug("number removed", "number", wire.Masked(n.Number), "sub_account", n.SubAccountID, "sessions_closed", len(closed))
	w.WriteHeader(http.StatusNoContent)
}

func (h *api) listNumbers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := queryParams(q, "subAccountId", "status", "limit", "cursor"); err != nil {
		writeBadRequest(w, message(err))
		return
	}
	p, err := page(q)
	if err != nil {
		writeBadRequest(w, message(err))
		return
	}
	f := session.NumberFilter{Scope: scopeOf(r), SubAccountID: q.Get("subAccountId"), Status: q.Get("status")}
	list, next, err := h.store.ListNumbers(f, p, time.Now())
	switch {
	case errors.Is(err, session.ErrInvalid):
		writeBadRequest(w, invalidMessage(err))
	case err != nil:
		h.unavailable(w, r, "list numbers", err)
	default:
		if list == nil {
			list = []session.NumberView{}
		}
		writeJSON(w, http.StatusOK, listAnswer("numbers", list, next))
	}
}

// subAccountBody is a PUT /v1/subaccounts/{id} request. Its fields are
// raw so that null (remove) differs from absent (keep).
type subAccountBody struct {
	OutOfSession json.RawMessage `json:"outOfSession"`
	DefaultFlow  json.RawMessage `json:"defaultFlow"`
}

// ParseSubAccountRequest decodes a PUT /v1/subaccounts/{id} request
// strictly: {"outOfSession": {...}} sets the policy, null removes it;
// {"defaultFlow": "main-menu"} sets the default flow, null (or "")
// removes it; at least one of them, and what is left out is kept.
func ParseSubAccountRequest(body io.Reader) (session.SubAccountRequest, error) {
	var req session.SubAccountRequest
	var b subAccountBody
	if err := decodeStrict(body, &b); err != nil {
		return req, err
	}
	if b.OutOfSession == nil && b.DefaultFlow == nil {
		return req, badRequest("body", "nothing to change; give outOfSession (a policy, or null to remove it) or defaultFlow (a flow id, or null to remove it)")
	}
	p, clear, err := parsePolicy(b.OutOfSession)
	if err != nil {
		return req, err
	}
	req.OutOfSession, req.ClearOutOfSession = p, clear
	req.DefaultFlow, err = parseFlowID(b.DefaultFlow, "defaultFlow")
	return req, err
}

func (h *api) putSubAccount(w http.ResponseWriter, r *http.Request) {
	req, err := ParseSubAccountRequest(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		bodyError(w, err)
		return
	}
	c, err := h.store.UpdateSubAccount(r.Context(), r.PathValue("id"), req, scopeOf(r))
	switch {
	case errors.Is(err, session.ErrInvalid):
		writeBadRequest(w, invalidMessage(err))
	case errors.Is(err, session.ErrNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, "sub-account not found")
	case err != nil:
		h.unavailable(w, r, "put sub-account", err)
	default:
		status := http.StatusOK
		if c.Before == nil {
			status = http.StatusCreated
		}
		h.audit(r, wire.AuditSubAccountPut, subAccountChange(c))
		h.s.requestLog(r).Debug("sub-account settings put", "sub_account", c.After.SubAccountID, "policy", c.After.OutOfSession != nil, "default_flow", c.After.DefaultFlow)
		writeJSON(w, status, subAccountOf(c.After))
	}
}

func (h *api) getSubAccount(w http.ResponseWriter, r *http.Request) {
	a, err := h.store.GetSubAccount(r.Context(), r.PathValue("id"), scopeOf(r))
	switch {
	case errors.Is(err, session.ErrNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, "sub-account not found")
	case err != nil:
		h.unavailable(w, r, "read sub-account", err)
	default:
		writeJSON(w, http.StatusOK, subAccountOf(a))
	}
}

// subAccountView is a sub-account's settings as the API shows them:
// defaultFlow is null without one, updatedAt for settings never set.
type subAccountView struct {
	SubAccountID string          `json:"subAccountId"`
	OutOfSession *session.Policy `json:"outOfSession"`
	DefaultFlow  *string         `json:"defaultFlow"`
	UpdatedAt    *time.Time      `json:"updatedAt"`
}

func subAccountOf(a session.SubAccount) subAccountView {
	v := subAccountView{SubAccountID: a.SubAccountID, OutOfSession: a.OutOfSession}
	if a.DefaultFlow != "" {
		v.DefaultFlow = &a.DefaultFlow
	}
	if !a.UpdatedAt.IsZero() {
		v.UpdatedAt = &a.UpdatedAt
	}
	return v
}
