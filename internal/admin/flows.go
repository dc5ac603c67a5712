package admin

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
)

// maxFlowBody bounds the body of PUT /v1/flows/{id}: a flow of
// session.MaxFlowSteps steps with their prompts is larger than the
// other requests.
const maxFlowBody = 64 << 10

// ParseFlowRequest decodes a PUT /v1/flows/{id} body strictly (see
// session.ParseFlow): exactly one JSON object, no unknown field at any
// depth, no key given twice. Its errors name the field; a body past
// maxFlowBody is an *http.MaxBytesError when body is limited by
// http.MaxBytesReader.
func ParseFlowRequest(body io.Reader) (session.Flow, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return session.Flow{}, err
	}
	f, err := session.ParseFlow(b)
	if err != nil {
		return session.Flow{}, fmt.Errorf("%w: %s", errBadRequest, invalidMessage(err))
	}
	return f, nil
}

// flowBodyError answers an error of reading a flow body: 413 past
// maxFlowBody, else 400 naming the field.
func flowBodyError(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, fmt.Sprintf("body larger than %d KiB", maxFlowBody>>10))
		return
	}
	writeBadRequest(w, message(err))
}

// flowError answers an error of the flow store about flow id ("" for
// none: a list).
func (h *api) flowError(w http.ResponseWriter, r *http.Request, id, what string, err error) {
	switch {
	case errors.Is(err, session.ErrInvalid):
		writeBadRequest(w, invalidMessage(err))
	case errors.Is(err, session.ErrFlowNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, session.ErrFlowNotFound.Error())
	case errors.Is(err, session.ErrFlowInUse):
		writeErrorBody(w, http.StatusConflict, errorBody{Code: CodeInUse, Error: err.Error(), FlowID: id})
	case errors.Is(err, session.ErrFlowChanged):
		writeErrorBody(w, http.StatusConflict, errorBody{Code: CodeVersionConflict, Error: err.Error(), FlowID: id})
	default:
		h.unavailable(w, r, what, err)
	}
}

func (h *api) putFlow(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFlowRequest(http.MaxBytesReader(w, r.Body, maxFlowBody))
	if err != nil {
		flowBodyError(w, err)
		return
	}
	id := r.PathValue("id")
	switch {
	case !session.ValidFlowName(id):
		writeBadRequest(w, fmt.Sprintf("id: %q: want 1 to %d of A-Z a-z 0-9 _ -", id, session.MaxFlowName))
		return
	case f.ID == "":
		f.ID = id
	case f.ID != id:
		writeBadRequest(w, fmt.Sprintf("id: %q is not the id of the path (%q)", f.ID, id))
		return
	}
	scope := scopeOf(r)
	if f.SubAccountID == "" && len(scope) == 1 {
		f.SubAccountID = scope[0]
	}
	switch {
	case scope == nil:
	case f.SubAccountID == "":
		writeBadRequest(w, "subAccountId: required: this token covers the sub-accounts "+strings.Join(scope, ", "))
		return
	case !scope.Allows(f.SubAccountID):
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("subAccountId: no sub-account %q", f.SubAccountID))
		return
	}
	after, created, err := h.store.PutFlow(r.Context(), f, scope)
	if err != nil {
		h.flowError(w, r, id, "put flow", err)
		return
	}
	c := change{subAccount: after.SubAccountID, after: &after}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
		// The version replaced, kept in this process's index by PutFlow.
		if before, ok := h.store.FlowVersion(after.ID, after.Version-1); ok {
			c.before = before
		}
	} else {
		w.Header().Set("Location", "/v1/flows/"+url.PathEscape(after.ID))
	}
	h.audit(r, wire.AuditFlowPut, c)
	h.s.requestLog(r).Debug("flow put", "flow", after.ID, "sub_account", after.SubAccountID, "version", after.Version, "steps", len(after.Steps))
	writeJSON(w, status, after)
}

func (h *api) getFlow(w http.ResponseWriter, r *http.Request) {
	f, err := h.store.GetFlow(r.Context(), r.PathValue("id"), scopeOf(r))
	if err != nil {
		h.flowError(w, r, r.PathValue("id"), "read flow", err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

func (h *api) listFlows(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := queryParams(q, "subAccountId", "limit", "cursor"); err != nil {
		writeBadRequest(w, message(err))
		return
	}
	p, err := page(q)
	if err != nil {
		writeBadRequest(w, message(err))
		return
	}
	list, next, err := h.store.ListFlows(session.FlowFilter{Scope: scopeOf(r), SubAccountID: q.Get("subAccountId")}, p)
	if err != nil {
		h.flowError(w, r, "", "list flows", err)
		return
	}
	if list == nil {
		list = []session.Flow{}
	}
	writeJSON(w, http.StatusOK, listAnswer("flows", list, next))
}

// forceParam reads the optional force query parameter (the only one
// allowed); false once it has answered 400.
func forceParam(w http.ResponseWriter, r *http.Request) (bool, bool) {
	q := r.URL.Query()
	if err := queryParams(q, "force"); err != nil {
		writeBadRequest(w, message(err))
		return false, false
	}
	raw := q.Get("force")
	if raw == "" {
		return false, true
	}
	force, err := strconv.ParseBool(raw)
	if err != nil {
		writeBadRequest(w, fmt.Sprintf("force: %q: want true or false", raw))
		return false, false
	}
	return force, true
}

func (h *api) deleteFlow(w http.ResponseWriter, r *http.Request) {
	force, ok := forceParam(w, r)
	if !ok {
		return
	}
	f, det, err := h.store.DeleteFlow(r.Context(), r.PathValue("id"), force, scopeOf(r))
	// What was detached before an error is detached all the same.
	for _, c := range det.Numbers {
		h.audit(r, wire.AuditNumberPut, numberChange(c.Before, c.After))
	}
	for _, c := range det.SubAccounts {
		h.audit(r, wire.AuditSubAccountPut, subAccountChange(c))
	}
	if err != nil {
		h.flowError(w, r, r.PathValue("id"), "delete flow", err)
		return
	}
	h.audit(r, wire.AuditFlowDelete, change{subAccount: f.SubAccountID, before: &f})
	h.s.requestLog(r).Debug("flow deleted", "flow", f.ID, "sub_account", f.SubAccountID, "version", f.Version,
		"numbers_detached", len(det.Numbers), "subaccounts_detached", len(det.SubAccounts))
	w.WriteHeader(http.StatusNoContent)
}
