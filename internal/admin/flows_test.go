package admin

// The IVR flows API and the flow and pin fields of the other endpoints,
// through HTTP against a real NATS server: versions, refusals naming the
// step and field, attachments, deletes with and without force, tenancy,
// audits; sessions with pins.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
)

// menuFlow is the flow of issue 13, without id and sub-account.
const menuFlow = `"start": "welcome",
  "steps": {
    "welcome": {"menu": {"say": {"text": "For sales press 1. For your driver press 2."},
                         "maxDigits": 1, "timeoutSeconds": 5, "tries": 3,
                         "options": {"1": "sales", "2": "driver"}, "onFailure": "bye"}},
    "sales":   {"transfer": {"destination": "+6560000001", "say": {"text": "Connecting you to sales."}}},
    "driver":  {"pin": {"say": {"text": "Enter your order PIN, then hash."},
                        "minDigits": 4, "maxDigits": 8, "tries": 2, "onFailure": "bye"}},
    "bye":     {"hangup": {"say": {"text": "Goodbye."}}}
  }`

// flowBody is a flow document of sub-account sub ("" for none) whose
// goodbye says bye.
func flowBody(sub, bye string) string {
	head := "{"
	if sub != "" {
		head += fmt.Sprintf(`"subAccountId": %q, `, sub)
	}
	return head + strings.Replace(menuFlow, "Goodbye.", bye, 1) + "}"
}

// flowList is a page of GET /v1/flows.
type flowList struct {
	Flows      []session.Flow `json:"flows"`
	NextCursor *string        `json:"nextCursor"`
}

// TestFlowsAPI: PUT stores a flow (201 with Location and version 1, then
// 200 with version 2, ...), validated whole: each refusal is a 400 naming
// the step and field, and changes nothing; a stale version is 409; GET
// reads it back, lists page and filter; DELETE removes it (204), then 404.
func TestFlowsAPI(t *testing.T) {
	e := newAPIEnv(t)
	var f session.Flow
	r := e.must(http.StatusCreated, http.MethodPut, "/v1/flows/main-menu", tokRoot, flowBody("acme", "Goodbye."), &f)
	if loc := r.header.Get("Location"); loc != "/v1/flows/main-menu" {
		t.Errorf("Location %q", loc)
	}
	if f.ID != "main-menu" || f.SubAccountID != "acme" || f.Version != 1 || f.UpdatedAt.IsZero() || f.Start != "welcome" || len(f.Steps) != 4 {
		t.Errorf("created %+v", f)
	}
	// Answered with the defaults filled in.
	if d := f.Steps["driver"].PIN; d == nil || d.TimeoutSeconds != session.DefaultPINTimeoutSeconds || d.Say.VoiceProfile != session.DefaultVoiceProfile {
		t.Errorf("driver %+v", d)
	}
	// The body may name the id of the path, and the version it replaces.
	e.must(http.StatusOK, http.MethodPut, "/v1/flows/main-menu", tokRoot, `{"id": "main-menu", "version": 1, `+flowBody("acme", "Bye now.")[1:], &f)
	if f.Version != 2 || f.Steps["bye"].Hangup.Say.Text != "Bye now." {
		t.Errorf("second version %+v", f)
	}
	// What GET answers can be PUT back as it is.
	get := e.must(http.StatusOK, http.MethodGet, "/v1/flows/main-menu", tokRoot, "", &f)
	e.must(http.StatusOK, http.MethodPut, "/v1/flows/main-menu", tokRoot, string(get.body), &f)
	if f.Version != 3 {
		t.Errorf("version %d after a GET put back, want 3", f.Version)
	}
	wantError(t, e.req(http.MethodPut, "/v1/flows/main-menu", tokRoot, string(get.body)), 409, "version 2 is not the current one (3)")

	bad := []struct {
		name, path, body string
		status           int
		names            string
	}{
		{"dangling option", "/v1/flows/main-menu", strings.Replace(flowBody("acme", "x"), `"2": "driver"`, `"3": "nowhere"`, 1), 400, `steps.welcome.menu.options.3: step "nowhere" does not exist`},
		{"unknown kind", "/v1/flows/main-menu", strings.Replace(flowBody("acme", "x"), `"hangup"`, `"hangUp"`, 1), 400, `steps.bye: unknown step kind "hangUp"`},
		{"unreachable step", "/v1/flows/main-menu", strings.Replace(flowBody("acme", "x"), `"2": "driver"`, `"2": "sales"`, 1), 400, `steps.driver: no path from start "welcome" reaches it`},
		{"bad option", "/v1/flows/main-menu", strings.Replace(flowBody("acme", "x"), `"2": "driver"`, `"#": "driver"`, 1), 400, `steps.welcome.menu.options: key "#"`},
		{"no start", "/v1/flows/main-menu", strings.Replace(flowBody("acme", "x"), `"start": "welcome"`, `"start": "hello"`, 1), 400, `start: step "hello" does not exist`},
		{"tries out of range", "/v1/flows/main-menu", strings.Replace(flowBody("acme", "x"), `"tries": 3`, `"tries": 11`, 1), 400, "steps.welcome.menu.tries: 11"},
		{"http file", "/v1/flows/main-menu", strings.Replace(flowBody("acme", "Goodbye."), `"say": {"text": "Goodbye."}`, `"playFile": {"fileUrl": "http://x.example/bye.wav"}`, 1), 400, "steps.bye.hangup.playFile.fileUrl"},
		{"unknown field", "/v1/flows/main-menu", strings.Replace(flowBody("acme", "x"), `"tries": 3`, `"retries": 3`, 1), 400, "steps.welcome.menu.retries: unknown field"},
		{"wrong type", "/v1/flows/main-menu", strings.Replace(flowBody("acme", "x"), `"tries": 3`, `"tries": "3"`, 1), 400, "steps.welcome.menu.tries: wrong type"},
		{"id differs", "/v1/flows/main-menu", `{"id": "other", ` + flowBody("acme", "x")[1:], 400, `id: "other" is not the id of the path`},
		{"bad id", "/v1/flows/main.menu", flowBody("acme", "x"), 400, `id: "main.menu"`},
		{"bad sub-account", "/v1/flows/main-menu", flowBody("a b", "x"), 400, "subAccountId"},
		{"not JSON", "/v1/flows/main-menu", `{"start":`, 400, "body"},
		{"two values", "/v1/flows/main-menu", flowBody("acme", "x") + "{}", 400, "body"},
		{"stale version", "/v1/flows/main-menu", `{"version": 1, ` + flowBody("acme", "x")[1:], 409, "version 1 is not the current one"},
		{"too big", "/v1/flows/main-menu", `{"id": "main-menu", "pad": "` + strings.Repeat("x", maxFlowBody) + `"}`, 413, "64 KiB"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.records())
			wantError(t, e.req(http.MethodPut, tt.path, tokRoot, tt.body), tt.status, tt.names)
			if n := len(e.records()); n != before {
				t.Errorf("%d audit records for a refused PUT", n-before)
			}
		})
	}
	e.must(http.StatusOK, http.MethodGet, "/v1/flows/main-menu", tokRoot, "", &f)
	if f.Version != 3 {
		t.Errorf("refused PUTs changed the flow: version %d", f.Version)
	}
	// A flow of nearly 64 KiB is taken: flows are larger than sessions.
	var big strings.Builder
	big.WriteString(`{"start": "s0", "steps": {`)
	for i := range session.MaxFlowSteps {
		if i > 0 {
			big.WriteString(",")
		}
		next := fmt.Sprintf(`, "next": "s%d"`, i+1)
		if i == session.MaxFlowSteps-1 {
			next = ""
		}
		fmt.Fprintf(&big, `"s%d": {"play": {"say": {"text": %q}%s}}`, i, strings.Repeat("y", 500), next)
	}
	big.WriteString(`}}`)
	e.must(http.StatusCreated, http.MethodPut, "/v1/flows/long-play", tokRoot, big.String(), nil)

	// Lists, a page at a time, by sub-account.
	e.must(http.StatusCreated, http.MethodPut, "/v1/flows/globex-menu", tokRoot, flowBody("globex", "x"), nil)
	e.must(http.StatusCreated, http.MethodPut, "/v1/flows/acme-b", tokRoot, flowBody("acme", "x"), nil)
	lists := []struct {
		path string
		want []string
	}{
		{"/v1/flows", []string{"acme-b", "globex-menu", "long-play", "main-menu"}},
		{"/v1/flows?subAccountId=acme", []string{"acme-b", "main-menu"}},
		{"/v1/flows?subAccountId=initech", nil},
	}
	for _, l := range lists {
		var got []string
		sep := "?"
		if strings.Contains(l.path, "?") {
			sep = "&"
		}
		path := l.path + sep + "limit=1"
		for {
			var page flowList
			e.must(http.StatusOK, http.MethodGet, path, tokRoot, "", &page)
			for _, f := range page.Flows {
				got = append(got, f.ID)
			}
			if page.NextCursor == nil {
				break
			}
			path = l.path + sep + "limit=1&cursor=" + *page.NextCursor
		}
		if !slices.Equal(got, l.want) {
			t.Errorf("%s: %v, want %v", l.path, got, l.want)
		}
	}
	var empty map[string]json.RawMessage
	e.must(http.StatusOK, http.MethodGet, "/v1/flows?subAccountId=initech", tokRoot, "", &empty)
	if string(empty["flows"]) != "[]" || string(empty["nextCursor"]) != "null" {
		t.Errorf("empty list %s", empty)
	}
	for _, q := range []string{"?limit=0", "?cursor=%21", "?status=open", "?limit=1&limit=2"} {
		wantError(t, e.req(http.MethodGet, "/v1/flows"+q, tokRoot, ""), 400, "")
	}

	// Delete.
	e.must(http.StatusNoContent, http.MethodDelete, "/v1/flows/acme-b", tokRoot, "", nil)
	wantError(t, e.req(http.MethodGet, "/v1/flows/acme-b", tokRoot, ""), 404, "flow not found")
	wantError(t, e.req(http.MethodDelete, "/v1/flows/acme-b", tokRoot, ""), 404, "flow not found")
	wantError(t, e.req(http.MethodGet, "/v1/flows/no-such", tokRoot, ""), 404, "flow not found")
	wantError(t, e.req(http.MethodDelete, "/v1/flows/main-menu?force=yes", tokRoot, ""), 400, "force")
	wantError(t, e.req(http.MethodDelete, "/v1/flows/main-menu?forced=true", tokRoot, ""), 400, "forced")
	// Made again, it is new (201), its versions counted on.
	e.must(http.StatusCreated, http.MethodPut, "/v1/flows/acme-b", tokRoot, flowBody("acme", "x"), &f)
	if f.Version != 2 {
		t.Errorf("made again: version %d, want 2", f.Version)
	}
}

// TestFlowAttachAPI: numbers take a flow and sub-accounts a default flow
// (validated: it exists and is theirs or shared); fields left out are
// kept; null detaches; a flow attached cannot be deleted without force,
// which detaches it, and every detach is audited.
func TestFlowAttachAPI(t *testing.T) {
	e := newAPIEnv(t)
	e.putNumber("+6560000001", "acme", "SG", session.NumberActive)
	e.putNumber("+6560000002", "acme", "SG", session.NumberActive)
	e.must(http.StatusCreated, http.MethodPut, "/v1/flows/main-menu", tokRoot, flowBody("acme", "Goodbye."), nil)
	e.must(http.StatusCreated, http.MethodPut, "/v1/flows/globex-menu", tokRoot, flowBody("globex", "Goodbye."), nil)
	e.must(http.StatusCreated, http.MethodPut, "/v1/flows/shared", tokRoot, flowBody("", "Goodbye."), nil)

	var n session.NumberView
	e.must(http.StatusOK, http.MethodPut, "/v1/numbers/+6560000001", tokAcme, `{"flow": "main-menu", "outOfSession": {"action": "hangup"}}`, &n)
	if n.Flow != "main-menu" || n.OutOfSession == nil {
		t.Errorf("attached: %+v", n)
	}
	// Fields left out are kept.
	e.must(http.StatusOK, http.MethodPut, "/v1/numbers/+6560000001", tokAcme, `{"status": "Unhealthy"}`, &n)
	if n.Flow != "main-menu" || n.Status != session.NumberUnhealthy {
		t.Errorf("after a status change: %+v", n)
	}
	e.must(http.StatusOK, http.MethodPut, "/v1/numbers/+6560000002", tokRoot, `{"flow": "shared"}`, &n)
	var a subAccountView
	e.must(http.StatusCreated, http.MethodPut, "/v1/subaccounts/acme", tokAcme, `{"defaultFlow": "main-menu"}`, &a)
	if a.DefaultFlow == nil || *a.DefaultFlow != "main-menu" || a.OutOfSession != nil {
		t.Errorf("default flow: %+v", a)
	}
	e.must(http.StatusOK, http.MethodPut, "/v1/subaccounts/acme", tokAcme, `{"outOfSession": {"action": "hangup"}}`, &a)
	if a.DefaultFlow == nil || *a.DefaultFlow != "main-menu" || a.OutOfSession == nil {
		t.Errorf("after setting the policy: %+v", a)
	}
	e.must(http.StatusOK, http.MethodGet, "/v1/subaccounts/acme", tokAcme, "", &a)
	if a.DefaultFlow == nil || *a.DefaultFlow != "main-menu" {
		t.Errorf("read back: %+v", a)
	}
	bad := []struct {
		name, method, path, token, body string
		status                          int
		names                           string
	}{
		{"no such flow", "PUT", "/v1/numbers/+6560000002", tokRoot, `{"flow": "nowhere"}`, 400, `flow: no flow "nowhere"`},
		{"another sub-account's flow", "PUT", "/v1/numbers/+6560000002", tokRoot, `{"flow": "globex-menu"}`, 400, `flow: flow "globex-menu" is sub-account globex's, not acme's`},
		{"a shared flow, for a limited token", "PUT", "/v1/numbers/+6560000001", tokAcme, `{"flow": "shared"}`, 400, `flow: no flow "shared"`},
		{"a flow id of the wrong type", "PUT", "/v1/numbers/+6560000002", tokRoot, `{"flow": 7}`, 400, "flow: wrong type"},
		{"default: no such flow", "PUT", "/v1/subaccounts/acme", tokRoot, `{"defaultFlow": "nowhere"}`, 400, `defaultFlow: no flow "nowhere"`},
		{"default: another sub-account's", "PUT", "/v1/subaccounts/acme", tokRoot, `{"defaultFlow": "globex-menu"}`, 400, "defaultFlow: flow \"globex-menu\" is sub-account globex's"},
		{"default: wrong type", "PUT", "/v1/subaccounts/acme", tokRoot, `{"defaultFlow": {"id": "x"}}`, 400, "defaultFlow: wrong type"},
		{"settings: nothing", "PUT", "/v1/subaccounts/acme", tokRoot, `{}`, 400, "defaultFlow"},
		{"delete attached", "DELETE", "/v1/flows/main-menu", tokAcme, "", 409, "1 number(s) (+6560000001) and the default of sub-account(s) acme"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.records())
			wantError(t, e.req(tt.method, tt.path, tt.token, tt.body), tt.status, tt.names)
			if n := len(e.records()); n != before {
				t.Errorf("%d audit records for a refusal", n-before)
			}
		})
	}
	// The deciders' view: the number's flow, else the sub-account's.
	forCall := func(virtual string) string {
		if f, ok := e.store.FlowFor(virtual, "acme"); ok {
			return f.ID
		}
		return ""
	}
	if got := forCall("+6560000001"); got != "main-menu" {
		t.Errorf("FlowFor(+6560000001) = %q", got)
	}
	if got := forCall("+6560000002"); got != "shared" {
		t.Errorf("FlowFor(+6560000002) = %q", got)
	}
	// null detaches: the sub-account's default applies.
	n = session.NumberView{}
	e.must(http.StatusOK, http.MethodPut, "/v1/numbers/+6560000002", tokRoot, `{"flow": null}`, &n)
	if n.Flow != "" {
		t.Errorf("detached: %+v", n)
	}
	var shown map[string]json.RawMessage
	e.must(http.StatusOK, http.MethodGet, "/v1/numbers/+6560000002", tokRoot, "", &shown)
	if string(shown["flow"]) != "null" {
		t.Errorf("a number without a flow shows flow %s, want null", shown["flow"])
	}
	if got := forCall("+6560000002"); got != "main-menu" {
		t.Errorf("FlowFor after detaching = %q, want the sub-account's default", got)
	}
	// A forced delete detaches it from the number and the sub-account,
	// each an audit record, then the flow's.
	before := len(e.records())
	e.must(http.StatusNoContent, http.MethodDelete, "/v1/flows/main-menu?force=true", tokAcme, "", nil)
	recs := e.records()[before:]
	var ops []string
	for _, m := range recs {
		a := auditOf(t, m)
		ops = append(ops, a.Operation)
		if a.SubAccountID != "acme" || a.Actor.Token != fingerprint(tokAcme) {
			t.Errorf("%s record: sub-account %q actor %+v", a.Operation, a.SubAccountID, a.Actor)
		}
		switch a.Operation {
		case wire.AuditNumberPut:
			var b, c session.Number
			_ = json.Unmarshal(a.Before, &b)
			_ = json.Unmarshal(a.After, &c)
			if b.Flow != "main-menu" || c.Flow != "" || a.VirtualNumber != "+6560000001" {
				t.Errorf("detach record: %s -> %s", a.Before, a.After)
			}
		case wire.AuditSubAccountPut:
			var b, c session.SubAccount
			_ = json.Unmarshal(a.Before, &b)
			_ = json.Unmarshal(a.After, &c)
			if b.DefaultFlow != "main-menu" || c.DefaultFlow != "" || c.OutOfSession == nil {
				t.Errorf("detach record: %s -> %s", a.Before, a.After)
			}
		case wire.AuditFlowDelete:
			var b session.Flow
			if err := json.Unmarshal(a.Before, &b); err != nil || b.ID != "main-menu" || len(a.After) != 0 {
				t.Errorf("delete record: %s / %s", a.Before, a.After)
			}
		}
	}
	if want := []string{wire.AuditNumberPut, wire.AuditSubAccountPut, wire.AuditFlowDelete}; !slices.Equal(ops, want) {
		t.Errorf("audit operations %v, want %v", ops, want)
	}
	n, a = session.NumberView{}, subAccountView{}
	e.must(http.StatusOK, http.MethodGet, "/v1/numbers/+6560000001", tokAcme, "", &n)
	e.must(http.StatusOK, http.MethodGet, "/v1/subaccounts/acme", tokAcme, "", &a)
	if n.Flow != "" || a.DefaultFlow != nil || a.OutOfSession == nil {
		t.Errorf("after a forced delete: number %+v, sub-account %+v", n, a)
	}
	if got := forCall("+6560000001"); got != "" {
		t.Errorf("FlowFor after the delete = %q", got)
	}
}

// TestFlowTenancyAPI: a token limited to sub-accounts sees, changes,
// lists and deletes only its sub-accounts' flows; others' flows, and
// flows without a sub-account, answer 404 as if they did not exist; a
// flow it PUTs without subAccountId is its one sub-account's.
func TestFlowTenancyAPI(t *testing.T) {
	e := newAPIEnv(t)
	e.must(http.StatusCreated, http.MethodPut, "/v1/flows/globex-menu", tokRoot, flowBody("globex", "g"), nil)
	e.must(http.StatusCreated, http.MethodPut, "/v1/flows/shared", tokRoot, flowBody("", "s"), nil)
	var f session.Flow
	e.must(http.StatusCreated, http.MethodPut, "/v1/flows/acme-menu", tokAcme, flowBody("", "a"), &f)
	if f.SubAccountID != "acme" {
		t.Errorf("acme token's flow in %q", f.SubAccountID)
	}
	hidden := []struct{ name, method, path, body string }{
		{"another's flow", "GET", "/v1/flows/globex-menu", ""},
		{"a shared flow", "GET", "/v1/flows/shared", ""},
		{"overwrite another's flow", "PUT", "/v1/flows/globex-menu", flowBody("acme", "x")},
		{"overwrite a shared flow", "PUT", "/v1/flows/shared", flowBody("acme", "x")},
		{"delete another's flow", "DELETE", "/v1/flows/globex-menu?force=true", ""},
		{"delete a shared flow", "DELETE", "/v1/flows/shared", ""},
		{"put into another sub-account", "PUT", "/v1/flows/new", flowBody("initech", "x")},
	}
	for _, tt := range hidden {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.records())
			wantJSONError(t, e.req(tt.method, tt.path, tokAcme, tt.body), http.StatusNotFound)
			if n := len(e.records()); n != before {
				t.Errorf("a hidden flow was changed: %d audit records", n-before)
			}
		})
	}
	wantError(t, e.req(http.MethodPut, "/v1/flows/new", tokMulti, flowBody("", "x")), 400, "subAccountId: required")
	var list flowList
	e.must(http.StatusOK, http.MethodGet, "/v1/flows", tokAcme, "", &list)
	if len(list.Flows) != 1 || list.Flows[0].ID != "acme-menu" {
		t.Errorf("acme token lists %+v", list.Flows)
	}
	e.must(http.StatusOK, http.MethodGet, "/v1/flows", tokMulti, "", &list)
	if len(list.Flows) != 2 || list.Flows[0].ID != "acme-menu" || list.Flows[1].ID != "globex-menu" {
		t.Errorf("multi token lists %+v", list.Flows)
	}
	e.must(http.StatusOK, http.MethodGet, "/v1/flows/globex-menu", tokRoot, "", &f)
	if f.Version != 1 || f.Steps["bye"].Hangup.Say.Text != "g" {
		t.Errorf("globex's flow changed: %+v", f)
	}
	e.must(http.StatusOK, http.MethodPut, "/v1/flows/globex-menu", tokMulti, flowBody("globex", "g2"), nil)
	e.must(http.StatusNoContent, http.MethodDelete, "/v1/flows/acme-menu", tokAcme, "", nil)
}

// TestFlowAudit: each PUT is a flow_put record with the version before
// (none for the first) and after; a delete a flow_delete record with the
// version deleted.
func TestFlowAudit(t *testing.T) {
	e := newAPIEnv(t)
	steps := []struct {
		method, path, token, body string
		op                        string
		before, after             uint64 // versions in the record; 0: absent
	}{
		{"PUT", "/v1/flows/main-menu", tokAcme, flowBody("", "one"), wire.AuditFlowPut, 0, 1},
		{"PUT", "/v1/flows/main-menu", tokRoot, flowBody("acme", "two"), wire.AuditFlowPut, 1, 2},
		{"DELETE", "/v1/flows/main-menu", tokAcme, "", wire.AuditFlowDelete, 2, 0},
	}
	for _, st := range steps {
		before := len(e.records())
		if r := e.req(st.method, st.path, st.token, st.body); r.status/100 != 2 {
			t.Fatalf("%s %s: %s", st.method, st.path, r)
		}
		recs := e.records()[before:]
		if len(recs) != 1 {
			t.Fatalf("%s %s: %d records", st.method, st.path, len(recs))
		}
		a := auditOf(t, recs[0])
		if recs[0].subject != "calls.audit."+st.op || a.Operation != st.op || a.SubAccountID != "acme" || a.Actor.Token != fingerprint(st.token) {
			t.Errorf("record %s: %+v", recs[0].subject, a)
		}
		for _, side := range []struct {
			raw  json.RawMessage
			want uint64
		}{{a.Before, st.before}, {a.After, st.after}} {
			if side.want == 0 {
				if len(side.raw) != 0 {
					t.Errorf("%s: unexpected %s", st.op, side.raw)
				}
				continue
			}
			var f session.Flow
			if err := json.Unmarshal(side.raw, &f); err != nil || f.Version != side.want || f.ID != "main-menu" {
				t.Errorf("%s: %s, want version %d", st.op, side.raw, side.want)
			}
		}
	}
}

// TestPINSessionsAPI: a session create takes a pin, or "auto" for one
// made and returned; a pin taken on the number is 409 naming pin;
// sessions with pins share participants; PATCH cannot change a pin; lists
// show pins and filter by them.
func TestPINSessionsAPI(t *testing.T) {
	e := newAPIEnv(t)
	e.putNumber("+6560000001", "acme", "SG", session.NumberActive)
	var s session.Session
	e.must(http.StatusCreated, http.MethodPost, "/v1/sessions", tokAcme, `{"participants": ["+6581000001", "+6582000001"], "pin": "auto"}`, &s)
	if len(s.PIN) != session.AutoPINLength || !session.ValidPIN(s.PIN) || s.VirtualNumber != "+6560000001" {
		t.Fatalf("auto pin session %+v", s)
	}
	var again session.Session
	e.must(http.StatusCreated, http.MethodPost, "/v1/sessions", tokAcme, `{"participants": ["+6581000001", "+6582000001"], "pin": "1234"}`, &again)
	if again.PIN != "1234" || again.VirtualNumber != s.VirtualNumber {
		t.Errorf("a second pin session of the same participants: %+v", again)
	}
	bad := []struct {
		name, method, path, body string
		status                   int
		names                    string
	}{
		{"pin taken on the number", "POST", "/v1/sessions", `{"virtualNumber": "+6560000001", "participants": ["+6581000002", "+6582000002"], "pin": "1234"}`, 409, "pin: "},
		{"pin too short", "POST", "/v1/sessions", `{"participants": ["+6581000002", "+6582000002"], "pin": "123"}`, 400, "pin: "},
		{"pin a number", "POST", "/v1/sessions", `{"participants": ["+6581000002", "+6582000002"], "pin": 1234}`, 400, "pin"},
		{"pin changed", "PATCH", "/v1/sessions/" + again.ID, `{"pin": "4321"}`, 400, "pin: cannot be changed"},
		{"pin changed among others", "PATCH", "/v1/sessions/" + again.ID, `{"ref": "x", "pin": "4321"}`, 400, "pin: cannot be changed"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.req(tt.method, tt.path, tokAcme, tt.body), tt.status, tt.names)
		})
	}
	var list sessionList
	e.must(http.StatusOK, http.MethodGet, "/v1/sessions?pin=1234", tokAcme, "", &list)
	if len(list.Sessions) != 1 || list.Sessions[0].ID != again.ID || list.Sessions[0].PIN != "1234" {
		t.Errorf("list by pin: %+v", list.Sessions)
	}
	// The deciders find it by pin; closed, the pin is free again.
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got, ok := e.store.LookupPIN("+6560000001", "1234", "acme", time.Now()); !ok || got.ID != again.ID {
			return fmt.Errorf("LookupPIN = %v, %v", got, ok)
		}
		return nil
	})
	e.must(http.StatusOK, http.MethodPatch, "/v1/sessions/"+again.ID, tokAcme, `{"status": "closed"}`, nil)
	e.must(http.StatusCreated, http.MethodPost, "/v1/sessions", tokAcme, `{"virtualNumber": "+6560000001", "participants": ["+6581000002", "+6582000002"], "pin": "1234"}`, nil)
}
