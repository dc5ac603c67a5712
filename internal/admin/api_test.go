package admin

// The masking API through HTTP against a real NATS server: each endpoint's
// answers and refusals, the session lifecycle, lists a page at a time,
// tenants, allocation from the pool (on two admin servers sharing one
// bucket), and the audit record of every change.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Tokens of the tenancy tests: one for every sub-account, one for acme,
// one for acme and globex.
const (
	tokRoot  = "root-7d1c0e9b"
	tokAcme  = "acme-2f6a8d41"
	tokMulti = "multi-9e3b5c70"
)

// newAPIEnv is an admin env whose tokens are tokRoot (every sub-account),
// tokAcme (acme only) and tokMulti (acme and globex).
func newAPIEnv(t *testing.T) *adminEnv {
	t.Helper()
	return newAdminEnv(t, adminOptions{cfg: func(c *Config) {
		c.Tokens = []string{tokRoot, tokAcme + "@acme", tokMulti + "@acme/globex"}
	}})
}

// req sends method path with token (none when "") and body.
func (e *adminEnv) req(method, path, token, body string) reply {
	e.t.Helper()
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	return e.send(call{method: method, path: path, auth: auth, body: []byte(body)})
}

// must sends a request that must answer status, and decodes its body into
// v (when not nil).
func (e *adminEnv) must(status int, method, path, token, body string, v any) reply {
	e.t.Helper()
	r := e.req(method, path, token, body)
	if r.status != status {
		e.t.Fatalf("%s %s %s: %s, want %d", method, path, body, r, status)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			e.t.Fatalf("%s %s answered %s: %v", method, path, r.body, err)
		}
	}
	return r
}

// errorOf is the API's error message in r.
func errorOf(r reply) string {
	var body struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(r.body, &body)
	return body.Error
}

// putNumber registers number in sub-account with the root token.
func (e *adminEnv) putNumber(number, sub, country, status string) {
	e.t.Helper()
	body := fmt.Sprintf(`{"subAccountId":%q,"countryCode":%q,"status":%q}`, sub, country, status)
	if r := e.req(http.MethodPut, "/v1/numbers/"+number, tokRoot, body); r.status != http.StatusCreated && r.status != http.StatusOK {
		e.t.Fatalf("put number %s: %s", number, r)
	}
}

// sessionList is a page of GET /v1/sessions.
type sessionList struct {
	Sessions   []session.Session `json:"sessions"`
	NextCursor *string           `json:"nextCursor"`
}

// numberList is a page of GET /v1/numbers.
type numberList struct {
	Numbers    []session.NumberView `json:"numbers"`
	NextCursor *string              `json:"nextCursor"`
}

// wantError checks a refusal: status, a JSON error, and that the message
// names what it should.
func wantError(t *testing.T, r reply, status int, names string) {
	t.Helper()
	wantJSONError(t, r, status)
	if names != "" && !strings.Contains(errorOf(r), names) {
		t.Errorf("error %q does not name %q", errorOf(r), names)
	}
}

// TestCreateSessionAPI: POST /v1/sessions with the lifecycle fields reads
// them back (201 with Location); each bad field is a 400 naming it, and
// nothing is created by a refused request.
func TestCreateSessionAPI(t *testing.T) {
	e := newAPIEnv(t)
	e.putNumber("+6560000001", "acme", "SG", session.NumberActive)
	e.putNumber("+6560000002", "acme", "SG", session.NumberUnhealthy)
	e.putNumber("+6560000003", "globex", "SG", session.NumberActive)
	soon := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	ok := []struct {
		name  string
		body  string
		check func(t *testing.T, s session.Session)
	}{
		{"today's fields", `{"virtualNumber":"+6590000001","participants":["+6581000001","+6582000001"],"ttlSeconds":600,"callRecording":true}`,
			func(t *testing.T, s session.Session) {
				if s.TTLMode != session.TTLAbsolute || s.TTLSeconds != 600 || s.ExpiresAt == nil || !s.CallRecording || s.SubAccountID != "" {
					t.Errorf("session %+v", s)
				}
			}},
		{"idle, maxCalls and ref", `{"virtualNumber":"+6590000001","participants":["+6581000002","+6582000002"],"ttlMode":"idle","ttlSeconds":300,"maxCalls":3,"ref":"order-42"}`,
			func(t *testing.T, s session.Session) {
				if s.TTLMode != session.TTLIdle || s.MaxCalls != 3 || s.Ref != "order-42" || s.Status != session.StatusOpen || s.ClosedReason != nil {
					t.Errorf("session %+v", s)
				}
			}},
		{"expiresAt", fmt.Sprintf(`{"virtualNumber":"+6590000001","participants":["+6581000003","+6582000003"],"expiresAt":%q}`, soon.Format(time.RFC3339)),
			func(t *testing.T, s session.Session) {
				if s.ExpiresAt == nil || !s.ExpiresAt.Equal(soon) || s.TTLSeconds != 0 {
					t.Errorf("expiresAt %v ttl %d, want %v", s.ExpiresAt, s.TTLSeconds, soon)
				}
			}},
		{"on a pool number, its sub-account", `{"virtualNumber":"+6560000001","participants":["+6581000004","+6582000004"]}`,
			func(t *testing.T, s session.Session) {
				if s.SubAccountID != "acme" {
					t.Errorf("sub-account %q, want the number's (acme)", s.SubAccountID)
				}
			}},
		{"allocated", `{"subAccountId":"acme","countryCode":"sg","participants":["+6581000005","+6582000005"]}`,
			func(t *testing.T, s session.Session) {
				if s.VirtualNumber != "+6560000001" || s.SubAccountID != "acme" {
					t.Errorf("allocated %s of %q, want acme's one Active number", s.VirtualNumber, s.SubAccountID)
				}
			}},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			var s session.Session
			r := e.must(http.StatusCreated, http.MethodPost, "/v1/sessions", tokRoot, tt.body, &s)
			if r.header.Get("Location") != "/v1/sessions/"+s.ID {
				t.Errorf("Location %q, want /v1/sessions/%s", r.header.Get("Location"), s.ID)
			}
			tt.check(t, s)
			var again session.Session
			e.must(http.StatusOK, http.MethodGet, "/v1/sessions/"+s.ID, tokRoot, "", &again)
			if again.ID != s.ID || again.Ref != s.Ref || again.MaxCalls != s.MaxCalls || again.TTLMode != s.TTLMode {
				t.Errorf("reads back %+v, created %+v", again, s)
			}
		})
	}

	const pair = `"participants":["+6581999999","+6582999999"]`
	bad := []struct {
		name, body string
		status     int
		names      string
	}{
		{"ttlSeconds and expiresAt", `{"virtualNumber":"+6590000002",` + pair + `,"ttlSeconds":60,"expiresAt":"` + soon.Format(time.RFC3339) + `"}`, 400, "expiresAt"},
		{"expiresAt not a time", `{"virtualNumber":"+6590000002",` + pair + `,"expiresAt":"tomorrow"}`, 400, "expiresAt"},
		{"expiresAt a number", `{"virtualNumber":"+6590000002",` + pair + `,"expiresAt":1767225599}`, 400, "expiresAt"},
		{"expiresAt in the past", `{"virtualNumber":"+6590000002",` + pair + `,"expiresAt":"2020-01-01T00:00:00Z"}`, 400, "expiresAt"},
		{"ttlMode unknown", `{"virtualNumber":"+6590000002",` + pair + `,"ttlMode":"sliding","ttlSeconds":60}`, 400, "ttlMode"},
		{"idle without ttlSeconds", `{"virtualNumber":"+6590000002",` + pair + `,"ttlMode":"idle"}`, 400, "ttlMode"},
		{"maxCalls negative", `{"virtualNumber":"+6590000002",` + pair + `,"maxCalls":-1}`, 400, "maxCalls"},
		{"maxCalls a string", `{"virtualNumber":"+6590000002",` + pair + `,"maxCalls":"3"}`, 400, "maxCalls"},
		{"ref too long", `{"virtualNumber":"+6590000002",` + pair + `,"ref":"` + strings.Repeat("r", 129) + `"}`, 400, "ref"},
		{"ref with a newline", `{"virtualNumber":"+6590000002",` + pair + `,"ref":"a\nb"}`, 400, "ref"},
		{"subAccountId with a space", `{"subAccountId":"ac me",` + pair + `}`, 400, "subAccountId"},
		{"countryCode with virtualNumber", `{"virtualNumber":"+6590000002","countryCode":"SG",` + pair + `}`, 400, "countryCode"},
		{"countryCode not a code", `{"subAccountId":"acme","countryCode":"SGP",` + pair + `}`, 400, "countryCode"},
		{"no number, no sub-account", `{` + pair + `}`, 400, "virtualNumber"},
		{"unknown field", `{"virtualNumber":"+6590000002",` + pair + `,"maxCall":3}`, 400, "maxCall"},
		{"unknown greeting field", `{"virtualNumber":"+6590000002",` + pair + `,"greeting":{"text":"hi","voice":"x"}}`, 400, "voice"},
		{"Unhealthy pool number", `{"virtualNumber":"+6560000002",` + pair + `}`, 409, "Unhealthy"},
		{"another sub-account's number", `{"subAccountId":"acme","virtualNumber":"+6560000003",` + pair + `}`, 409, "virtualNumber"},
		{"pool without numbers", `{"subAccountId":"initech",` + pair + `}`, 409, "exhausted"},
		{"pool without numbers of the country", `{"subAccountId":"acme","countryCode":"MY",` + pair + `}`, 409, "exhausted"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.records())
			wantError(t, e.req(http.MethodPost, "/v1/sessions", tokRoot, tt.body), tt.status, tt.names)
			if n := len(e.records()); n != before {
				t.Errorf("a refused create wrote %d audit records", n-before)
			}
		})
	}
	// Nothing was half-written: the pair of the refused requests is free.
	var list sessionList
	e.must(http.StatusOK, http.MethodGet, "/v1/sessions?participant=%2B6581999999&status=all", tokRoot, "", &list)
	if len(list.Sessions) != 0 {
		t.Errorf("refused creates left sessions: %+v", list.Sessions)
	}
}

// TestListSessionsAPI: GET /v1/sessions filters by any combination of
// subAccountId, virtualNumber, participant, ref and status (open by
// default), and a cursor walks every session once; bad parameters are 400
// naming them.
func TestListSessionsAPI(t *testing.T) {
	e := newAPIEnv(t)
	// 12 sessions: three sub-accounts (one none), two numbers, refs.
	var ids []string
	subs := []string{"acme", "globex", ""}
	for i := range 12 {
		body := map[string]any{
			"virtualNumber": fmt.Sprintf("+659000000%d", i%2),
			"participants":  []string{fmt.Sprintf("+658100%04d", i), fmt.Sprintf("+658200%04d", i)},
			"ref":           fmt.Sprintf("order-%d", i%4),
		}
		if sub := subs[i%3]; sub != "" {
			body["subAccountId"] = sub
		}
		b, _ := json.Marshal(body)
		var s session.Session
		e.must(http.StatusCreated, http.MethodPost, "/v1/sessions", tokRoot, string(b), &s)
		ids = append(ids, s.ID)
	}
	// Two of them closed.
	for _, id := range ids[:2] {
		e.must(http.StatusOK, http.MethodPatch, "/v1/sessions/"+id, tokRoot, `{"status":"closed"}`, nil)
	}
	tests := []struct {
		name  string
		query string
		want  []int // indexes into ids, in creation order
	}{
		{"open by default", "", []int{2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{"closed", "status=closed", []int{0, 1}},
		{"all", "status=all", []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{"sub-account", "subAccountId=acme", []int{3, 6, 9}},
		{"sub-account, all", "subAccountId=acme&status=all", []int{0, 3, 6, 9}},
		{"virtual number", "virtualNumber=%2B6590000001", []int{3, 5, 7, 9, 11}},
		{"virtual number, written loosely", "virtualNumber=65+9000+0001", []int{3, 5, 7, 9, 11}},
		{"participant", "participant=%2B6582000007", []int{7}},
		{"ref", "ref=order-1", []int{5, 9}},
		{"ref and sub-account", "ref=order-1&subAccountId=globex&status=all", []int{1}},
		{"number and ref", "virtualNumber=%2B6590000000&ref=order-2", []int{2, 6, 10}},
		{"nothing matches", "ref=order-9", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var list sessionList
			r := e.must(http.StatusOK, http.MethodGet, "/v1/sessions?"+tt.query, tokRoot, "", &list)
			var got []string
			for _, s := range list.Sessions {
				got = append(got, s.ID)
			}
			var want []string
			for _, i := range tt.want {
				want = append(want, ids[i])
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
			if list.NextCursor != nil || !strings.Contains(string(r.body), `"nextCursor":null`) {
				t.Errorf("one page: nextCursor %s, want null", r.body)
			}
			if !strings.Contains(string(r.body), `"sessions":[`) {
				t.Errorf("sessions is not an array: %s", r.body)
			}
		})
	}

	// Pages of 5 of all 12, then of 1: each session once, in order.
	for _, limit := range []int{5, 1, 12, 1000} {
		t.Run(fmt.Sprintf("pages of %d", limit), func(t *testing.T) {
			var got []string
			cursor, pages := "", 0
			for {
				q := url.Values{"status": {"all"}, "limit": {fmt.Sprint(limit)}}
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				var list sessionList
				e.must(http.StatusOK, http.MethodGet, "/v1/sessions?"+q.Encode(), tokRoot, "", &list)
				pages++
				if len(list.Sessions) > limit {
					t.Fatalf("page of %d, limit %d", len(list.Sessions), limit)
				}
				for _, s := range list.Sessions {
					got = append(got, s.ID)
				}
				if list.NextCursor == nil {
					break
				}
				if pages > 20 {
					t.Fatal("the cursor does not end")
				}
				cursor = *list.NextCursor
			}
			if !slices.Equal(got, ids) {
				t.Errorf("walked %v, want %v", got, ids)
			}
		})
	}

	bad := []struct{ query, names string }{
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=ten", "limit"},
		{"status=expired", "status"},
		{"cursor=not-a-cursor", "cursor"},
		{"participant=12ab", "participant"},
		{"virtualNumber=%2B65", "virtualNumber"},
		{"participants=%2B6582000007", "participants"},
		{"ref=a&ref=b", "ref"},
	}
	for _, tt := range bad {
		t.Run("bad "+tt.query, func(t *testing.T) {
			wantError(t, e.req(http.MethodGet, "/v1/sessions?"+tt.query, tokRoot, ""), 400, tt.names)
		})
	}
}

// TestPatchSessionAPI: PATCH extends and shortens a session, changes its
// greeting, recording, maxCalls and ref, and closes it with {"status":
// "closed"}; a closed session is 409 and never reopens (its participants
// are free again); maxCalls reached closes it; bad input is 400 naming the
// field and changes nothing.
func TestPatchSessionAPI(t *testing.T) {
	e := newAPIEnv(t)
	var s session.Session
	e.must(http.StatusCreated, http.MethodPost, "/v1/sessions", tokRoot,
		`{"virtualNumber":"+6590000001","participants":["+6581000001","+6582000001"],"ttlSeconds":600,"greeting":{"text":"Hello"}}`, &s)
	path := "/v1/sessions/" + s.ID
	patch := func(body string) session.Session {
		t.Helper()
		var out session.Session
		e.must(http.StatusOK, http.MethodPatch, path, tokRoot, body, &out)
		return out
	}
	created := *s.ExpiresAt

	longer := patch(`{"ttlSeconds":7200}`)
	if longer.ExpiresAt == nil || !longer.ExpiresAt.Equal(s.CreatedAt.Add(2*time.Hour)) || longer.TTLSeconds != 7200 {
		t.Errorf("extended: expiresAt %v ttl %d, want creation + 2h", longer.ExpiresAt, longer.TTLSeconds)
	}
	shorter := patch(`{"ttlSeconds":300}`)
	if !shorter.ExpiresAt.Before(created) {
		t.Errorf("shortened: expiresAt %v, want before %v", shorter.ExpiresAt, created)
	}
	at := time.Now().Add(3 * time.Hour).UTC().Truncate(time.Second)
	fixed := patch(fmt.Sprintf(`{"expiresAt":%q}`, at.Format(time.RFC3339)))
	if !fixed.ExpiresAt.Equal(at) || fixed.TTLSeconds != 0 {
		t.Errorf("expiresAt: %v ttl %d, want %v", fixed.ExpiresAt, fixed.TTLSeconds, at)
	}
	forever := patch(`{"ttlSeconds":0}`)
	if forever.ExpiresAt != nil {
		t.Errorf("ttlSeconds 0: expiresAt %v, want none", forever.ExpiresAt)
	}
	changed := patch(`{"greeting":{"text":"Hi again","language":"en-GB"},"callRecording":true,"maxCalls":5,"ref":"ticket-7"}`)
	if changed.Greeting == nil || changed.Greeting.Text != "Hi again" || !changed.CallRecording || changed.MaxCalls != 5 || changed.Ref != "ticket-7" {
		t.Errorf("changed: %+v", changed)
	}
	if !changed.UpdatedAt.After(s.UpdatedAt) {
		t.Errorf("updatedAt %v, not after %v", changed.UpdatedAt, s.UpdatedAt)
	}
	if g := patch(`{"greeting":null}`); g.Greeting != nil {
		t.Errorf("greeting null: %+v, want removed", g.Greeting)
	}

	bad := []struct{ name, body, names string }{
		{"empty", `{}`, "nothing to change"},
		{"not an object", `[]`, "body"},
		{"unknown field", `{"ttl":60}`, "ttl"},
		{"ttlSeconds null", `{"ttlSeconds":null}`, "ttlSeconds"},
		{"ttlSeconds negative", `{"ttlSeconds":-5}`, "ttlSeconds"},
		{"ttlSeconds and expiresAt", fmt.Sprintf(`{"ttlSeconds":60,"expiresAt":%q}`, at.Format(time.RFC3339)), "expiresAt"},
		{"expiresAt past", `{"expiresAt":"2001-01-01T00:00:00Z"}`, "expiresAt"},
		{"expiresAt garbage", `{"expiresAt":"soon"}`, "expiresAt"},
		{"maxCalls too big", `{"maxCalls":1000001}`, "maxCalls"},
		{"ref too long", `{"ref":"` + strings.Repeat("x", 200) + `"}`, "ref"},
		{"greeting unknown field", `{"greeting":{"text":"x","loud":true}}`, "greeting.loud"},
		{"greeting a string", `{"greeting":"hello"}`, "greeting"},
		{"greeting without text", `{"greeting":{"language":"en-US"}}`, "greeting"},
		{"status open", `{"status":"open"}`, "status"},
		{"status expired", `{"status":"expired"}`, "status"},
		{"callRecording a string", `{"callRecording":"yes"}`, "callRecording"},
		{"two objects", `{"ref":"a"}{"ref":"b"}`, "body"},
	}
	before := patch(`{"ref":"kept"}`)
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.req(http.MethodPatch, path, tokRoot, tt.body), 400, tt.names)
		})
	}
	var after session.Session
	e.must(http.StatusOK, http.MethodGet, path, tokRoot, "", &after)
	if after.Ref != "kept" || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("refused patches changed the session: %+v", after)
	}
	wantError(t, e.req(http.MethodPatch, "/v1/sessions/0123456789abcdef0123456789abcdef", tokRoot, `{"ref":"x"}`), 404, "not found")

	// Close: the session reads back closed, a PATCH is 409 and never
	// reopens it, and its participants are free on the number again.
	closed := patch(`{"status":"closed","ref":"done"}`)
	if closed.Status != session.StatusClosed || closed.ClosedReason == nil || *closed.ClosedReason != session.ClosedByClient || closed.Ref != "done" {
		t.Errorf("closed: %+v", closed)
	}
	for _, body := range []string{`{"ttlSeconds":3600}`, `{"status":"closed"}`, `{"ref":"again"}`} {
		wantError(t, e.req(http.MethodPatch, path, tokRoot, body), 409, "closed")
	}
	var read session.Session
	e.must(http.StatusOK, http.MethodGet, path, tokRoot, "", &read)
	if read.Status != session.StatusClosed || read.Ref != "done" {
		t.Errorf("closed session reads %+v", read)
	}
	e.must(http.StatusCreated, http.MethodPost, "/v1/sessions", tokRoot, `{"virtualNumber":"+6590000001","participants":["+6581000001","+6582000001"]}`, nil)

	// maxCalls: a session with calls already counted closes when the
	// limit is lowered to them; the calls are counted by the deciders
	// (RecordCall), after their answer.
	var m session.Session
	e.must(http.StatusCreated, http.MethodPost, "/v1/sessions", tokRoot,
		`{"virtualNumber":"+6590000002","participants":["+6581000002","+6582000002"],"maxCalls":10}`, &m)
	ctx := t.Context()
	for range 2 {
		if _, err := e.store.RecordCall(ctx, m.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	var still session.Session
	e.must(http.StatusOK, http.MethodPatch, "/v1/sessions/"+m.ID, tokRoot, `{"maxCalls":3}`, &still)
	if still.Status != session.StatusOpen || still.CallCount != 2 {
		t.Errorf("maxCalls 3 after 2 calls: %+v, want open", still)
	}
	var done session.Session
	e.must(http.StatusOK, http.MethodPatch, "/v1/sessions/"+m.ID, tokRoot, `{"maxCalls":2}`, &done)
	if done.Status != session.StatusClosed || done.ClosedReason == nil || *done.ClosedReason != session.ClosedMaxCalls {
		t.Errorf("maxCalls 2 after 2 calls: %+v, want closed (max_calls)", done)
	}
	wantError(t, e.req(http.MethodPatch, "/v1/sessions/"+m.ID, tokRoot, `{"maxCalls":0}`), 409, "max_calls")

	// Shortened into the near future, a session expires by itself and
	// reads back closed, "expired".
	var x session.Session
	e.must(http.StatusCreated, http.MethodPost, "/v1/sessions", tokRoot,
		`{"virtualNumber":"+6590000003","participants":["+6581000003","+6582000003"],"ttlSeconds":3600}`, &x)
	e.must(http.StatusOK, http.MethodPatch, "/v1/sessions/"+x.ID, tokRoot,
		fmt.Sprintf(`{"expiresAt":%q}`, time.Now().Add(1500*time.Millisecond).UTC().Format(time.RFC3339Nano)), nil)
	natstest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		var got session.Session
		e.must(http.StatusOK, http.MethodGet, "/v1/sessions/"+x.ID, tokRoot, "", &got)
		if got.Status != session.StatusClosed || got.ClosedReason == nil || *got.ClosedReason != session.ClosedExpired {
			return fmt.Errorf("status %s reason %v", got.Status, got.ClosedReason)
		}
		return nil
	})
	wantError(t, e.req(http.MethodPatch, "/v1/sessions/"+x.ID, tokRoot, `{"ttlSeconds":3600}`), 409, "expired")
}

// TestNumbersAPI: PUT registers (201) and updates (200) a pool number,
// GET reads it with its open sessions, the list filters and pages, and
// DELETE is 409 while sessions are open unless forced, which closes them;
// bad input is 400 naming the field.
func TestNumbersAPI(t *testing.T) {
	e := newAPIEnv(t)
	var n session.NumberView
	r := e.must(http.StatusCreated, http.MethodPut, "/v1/numbers/+65%206833%200001", tokRoot,
		`{"subAccountId":"acme","countryCode":"sg","outOfSession":{"action":"forward","destination":"+65 6000 0000","say":{"text":"Connecting you to our team"}}}`, &n)
	if r.header.Get("Location") != "/v1/numbers/+6568330001" {
		t.Errorf("Location %q", r.header.Get("Location"))
	}
	if n.Number.Number != "+6568330001" || n.SubAccountID != "acme" || n.CountryCode != "SG" || n.Status != session.NumberActive ||
		n.OutOfSession == nil || n.OutOfSession.Destination != "+6560000000" || n.OpenSessions != 0 {
		t.Errorf("registered %+v", n)
	}
	if !strings.Contains(string(r.body), `"openSessions":0`) || !strings.Contains(string(r.body), `"updatedAt"`) {
		t.Errorf("number reads %s", r.body)
	}
	e.must(http.StatusOK, http.MethodPut, "/v1/numbers/+6568330001", tokRoot, `{"status":"Unhealthy"}`, &n)
	if n.Status != session.NumberUnhealthy || n.OutOfSession == nil || n.CountryCode != "SG" {
		t.Errorf("status update lost fields: %+v", n)
	}
	e.must(http.StatusOK, http.MethodPut, "/v1/numbers/+6568330001", tokRoot, `{"outOfSession":null,"status":"Active"}`, &n)
	if n.OutOfSession != nil || n.Status != session.NumberActive {
		t.Errorf("outOfSession null: %+v", n)
	}

	var s session.Session
	e.must(http.StatusCreated, http.MethodPost, "/v1/sessions", tokRoot, `{"subAccountId":"acme","participants":["+6581000001","+6582000001"]}`, &s)
	e.must(http.StatusOK, http.MethodGet, "/v1/numbers/6568330001", tokRoot, "", &n)
	if n.OpenSessions != 1 {
		t.Errorf("openSessions %d, want 1", n.OpenSessions)
	}

	for i := 2; i <= 7; i++ {
		sub, status := "acme", session.NumberActive
		if i%3 == 0 {
			sub = "globex"
		}
		if i == 7 {
			status = session.NumberInactive
		}
		e.putNumber(fmt.Sprintf("+656833000%d", i), sub, "SG", status)
	}
	lists := []struct {
		query string
		want  []string
	}{
		{"", []string{"+6568330001", "+6568330002", "+6568330003", "+6568330004", "+6568330005", "+6568330006", "+6568330007"}},
		{"subAccountId=globex", []string{"+6568330003", "+6568330006"}},
		{"status=Inactive", []string{"+6568330007"}},
		{"subAccountId=acme&status=Active", []string{"+6568330001", "+6568330002", "+6568330004", "+6568330005"}},
		{"subAccountId=nobody", nil},
	}
	for _, tt := range lists {
		t.Run("list "+tt.query, func(t *testing.T) {
			var list numberList
			e.must(http.StatusOK, http.MethodGet, "/v1/numbers?"+tt.query, tokRoot, "", &list)
			var got []string
			for _, n := range list.Numbers {
				got = append(got, n.Number.Number)
			}
			if !slices.Equal(got, tt.want) || list.NextCursor != nil {
				t.Errorf("got %v (next %v), want %v", got, list.NextCursor, tt.want)
			}
		})
	}
	t.Run("pages of 3", func(t *testing.T) {
		var got []string
		cursor := ""
		for range 10 {
			var list numberList
			e.must(http.StatusOK, http.MethodGet, "/v1/numbers?limit=3&cursor="+url.QueryEscape(cursor), tokRoot, "", &list)
			for _, n := range list.Numbers {
				got = append(got, n.Number.Number)
			}
			if list.NextCursor == nil {
				break
			}
			cursor = *list.NextCursor
		}
		if len(got) != 7 || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != 7 {
			t.Errorf("walked %v, want the 7 numbers once each", got)
		}
	})

	bad := []struct {
		name, method, path, body string
		status                   int
		names                    string
	}{
		{"new without sub-account", "PUT", "/v1/numbers/+6568339999", `{"countryCode":"SG"}`, 400, "subAccountId"},
		{"bad path number", "PUT", "/v1/numbers/12ab", `{"subAccountId":"acme"}`, 400, "number"},
		{"unknown field", "PUT", "/v1/numbers/+6568339999", `{"subAccountId":"acme","country":"SG"}`, 400, "country"},
		{"bad status", "PUT", "/v1/numbers/+6568339999", `{"subAccountId":"acme","status":"Broken"}`, 400, "status"},
		{"bad country", "PUT", "/v1/numbers/+6568339999", `{"subAccountId":"acme","countryCode":"Singapore"}`, 400, "countryCode"},
		{"subAccountId null", "PUT", "/v1/numbers/+6568339999", `{"subAccountId":null}`, 400, "subAccountId"},
		{"policy without action", "PUT", "/v1/numbers/+6568339999", `{"subAccountId":"acme","outOfSession":{}}`, 400, "outOfSession.action"},
		{"policy action unknown", "PUT", "/v1/numbers/+6568339999", `{"subAccountId":"acme","outOfSession":{"action":"voicemail"}}`, 400, "outOfSession.action"},
		{"forward without destination", "PUT", "/v1/numbers/+6568339999", `{"subAccountId":"acme","outOfSession":{"action":"forward"}}`, 400, "outOfSession.destination"},
		{"hangup with destination", "PUT", "/v1/numbers/+6568339999", `{"subAccountId":"acme","outOfSession":{"action":"hangup","destination":"+6560000000"}}`, 400, "outOfSession.destination"},
		{"policy unknown field", "PUT", "/v1/numbers/+6568339999", `{"subAccountId":"acme","outOfSession":{"action":"hangup","text":"bye"}}`, 400, "outOfSession.text"},
		{"policy say without text", "PUT", "/v1/numbers/+6568339999", `{"subAccountId":"acme","outOfSession":{"action":"hangup","say":{}}}`, 400, "outOfSession.say"},
		{"empty body", "PUT", "/v1/numbers/+6568339999", ``, 400, "body"},
		{"move with open sessions", "PUT", "/v1/numbers/+6568330001", `{"subAccountId":"globex"}`, 409, "open sessions"},
		{"get unknown", "GET", "/v1/numbers/+6568339999", ``, 404, "not in the pool"},
		{"get not a number", "GET", "/v1/numbers/abc", ``, 404, "not in the pool"},
		{"list bad status", "GET", "/v1/numbers?status=active", ``, 400, "status"},
		{"list bad limit", "GET", "/v1/numbers?limit=-1", ``, 400, "limit"},
		{"list bad cursor", "GET", "/v1/numbers?cursor=%21", ``, 400, "cursor"},
		{"list unknown parameter", "GET", "/v1/numbers?sub=acme", ``, 400, "sub"},
		{"delete with open sessions", "DELETE", "/v1/numbers/+6568330001", ``, 409, "open sessions"},
		{"delete force maybe", "DELETE", "/v1/numbers/+6568330001?force=maybe", ``, 400, "force"},
		{"delete unknown", "DELETE", "/v1/numbers/+6568339999", ``, 404, "not in the pool"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.records())
			wantError(t, e.req(tt.method, tt.path, tokRoot, tt.body), tt.status, tt.names)
			if n := len(e.records()); n != before {
				t.Errorf("a refused request wrote %d audit records", n-before)
			}
		})
	}
	if r := e.req(http.MethodGet, "/v1/numbers/+6568339999", tokRoot, ""); r.status != http.StatusNotFound {
		t.Errorf("refused PUTs registered the number: %s", r)
	}

	// Forced: the open session closes, the number leaves the pool.
	e.must(http.StatusNoContent, http.MethodDelete, "/v1/numbers/+6568330001?force=true", tokRoot, "", nil)
	var gone session.Session
	e.must(http.StatusOK, http.MethodGet, "/v1/sessions/"+s.ID, tokRoot, "", &gone)
	if gone.Status != session.StatusClosed || gone.ClosedReason == nil || *gone.ClosedReason != session.ClosedByClient {
		t.Errorf("session on a removed number: %+v, want closed", gone)
	}
	wantError(t, e.req(http.MethodGet, "/v1/numbers/+6568330001", tokRoot, ""), 404, "")
	e.must(http.StatusNoContent, http.MethodDelete, "/v1/numbers/+6568330002", tokRoot, "", nil)
}

// TestSubAccountsAPI: PUT sets a sub-account's out-of-session policy (201
// the first time, 200 after), null removes it, GET reads it back; a
// policy is validated naming the field.
func TestSubAccountsAPI(t *testing.T) {
	e := newAPIEnv(t)
	var a subAccountView
	e.must(http.StatusOK, http.MethodGet, "/v1/subaccounts/acme", tokRoot, "", &a)
	if a.SubAccountID != "acme" || a.OutOfSession != nil || a.UpdatedAt != nil {
		t.Errorf("never set: %+v", a)
	}
	e.must(http.StatusCreated, http.MethodPut, "/v1/subaccounts/acme", tokRoot,
		`{"outOfSession":{"action":"forward","destination":"6560001111","say":{"text":"This conversation has ended; connecting you to our team"}}}`, &a)
	if a.OutOfSession == nil || a.OutOfSession.Action != session.PolicyForward || a.OutOfSession.Destination != "+6560001111" ||
		a.OutOfSession.Say == nil || a.OutOfSession.Say.VoiceProfile == "" || a.UpdatedAt == nil {
		t.Errorf("set: %+v", a)
	}
	e.must(http.StatusOK, http.MethodGet, "/v1/subaccounts/acme", tokRoot, "", &a)
	if a.OutOfSession == nil || a.OutOfSession.Destination != "+6560001111" {
		t.Errorf("reads back %+v", a)
	}
	e.must(http.StatusOK, http.MethodPut, "/v1/subaccounts/acme", tokRoot, `{"outOfSession":{"action":"hangup"}}`, &a)
	if a.OutOfSession == nil || a.OutOfSession.Action != session.PolicyHangup {
		t.Errorf("hangup: %+v", a)
	}
	e.must(http.StatusOK, http.MethodPut, "/v1/subaccounts/acme", tokRoot, `{"outOfSession":null}`, &a)
	if a.OutOfSession != nil {
		t.Errorf("null: %+v, want no policy", a)
	}
	bad := []struct{ name, path, body, names string }{
		{"empty object", "/v1/subaccounts/acme", `{}`, "outOfSession"},
		{"unknown field", "/v1/subaccounts/acme", `{"policy":{"action":"hangup"}}`, "policy"},
		{"bad action", "/v1/subaccounts/acme", `{"outOfSession":{"action":"ring"}}`, "outOfSession.action"},
		{"bad destination", "/v1/subaccounts/acme", `{"outOfSession":{"action":"forward","destination":"front desk"}}`, "outOfSession.destination"},
		{"say text too long", "/v1/subaccounts/acme", `{"outOfSession":{"action":"hangup","say":{"text":"` + strings.Repeat("a", 1001) + `"}}}`, "outOfSession.say.text"},
		{"bad id", "/v1/subaccounts/a%20b", `{"outOfSession":null}`, "subAccountId"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.req(http.MethodPut, tt.path, tokRoot, tt.body), 400, tt.names)
		})
	}
	e.must(http.StatusOK, http.MethodGet, "/v1/subaccounts/acme", tokRoot, "", &a)
	if a.OutOfSession != nil {
		t.Errorf("refused PUTs changed the settings: %+v", a)
	}
}

// TestTenancy: a token limited to sub-accounts sees and changes only
// theirs: other sub-accounts' sessions, numbers and settings (and
// sessions without a sub-account) are 404 to it, as if they did not
// exist; lists hold only its own; it cannot create elsewhere, and creates
// in its only sub-account by default.
func TestTenancy(t *testing.T) {
	e := newAPIEnv(t)
	e.putNumber("+6560000001", "acme", "SG", session.NumberActive)
	e.putNumber("+6560000002", "globex", "SG", session.NumberActive)
	e.putNumber("+6560000003", "initech", "SG", session.NumberActive)
	e.must(http.StatusCreated, http.MethodPut, "/v1/subaccounts/initech", tokRoot, `{"outOfSession":{"action":"hangup"}}`, nil)
	create := func(token, body string) session.Session {
		t.Helper()
		var s session.Session
		e.must(http.StatusCreated, http.MethodPost, "/v1/sessions", token, body, &s)
		return s
	}
	initech := create(tokRoot, `{"subAccountId":"initech","participants":["+6581000001","+6582000001"]}`)
	none := create(tokRoot, `{"virtualNumber":"+6590000001","participants":["+6581000002","+6582000002"]}`)
	globex := create(tokMulti, `{"subAccountId":"globex","participants":["+6581000003","+6582000003"]}`)
	// tokAcme creates in acme without naming it.
	acme := create(tokAcme, `{"participants":["+6581000004","+6582000004"]}`)
	if acme.SubAccountID != "acme" || acme.VirtualNumber != "+6560000001" {
		t.Errorf("acme token's default: %+v, want allocated in acme", acme)
	}
	acme2 := create(tokAcme, `{"virtualNumber":"+6590000009","participants":["+6581000005","+6582000005"]}`)
	if acme2.SubAccountID != "acme" {
		t.Errorf("a number outside the pool: sub-account %q, want the token's (acme)", acme2.SubAccountID)
	}

	hidden := []struct {
		name, method, path, body string
	}{
		{"another's session", "GET", "/v1/sessions/" + initech.ID, ""},
		{"a session without sub-account", "GET", "/v1/sessions/" + none.ID, ""},
		{"patch another's session", "PATCH", "/v1/sessions/" + initech.ID, `{"ref":"mine"}`},
		{"close another's session", "PATCH", "/v1/sessions/" + initech.ID, `{"status":"closed"}`},
		{"delete another's session", "DELETE", "/v1/sessions/" + initech.ID, ""},
		{"delete a session without sub-account", "DELETE", "/v1/sessions/" + none.ID, ""},
		{"another's interactions", "GET", "/v1/sessions/" + initech.ID + "/interactions", ""},
		{"interactions of an unknown session", "GET", "/v1/sessions/0123456789abcdef0123456789abcdef/interactions", ""},
		{"another's number", "GET", "/v1/numbers/+6560000003", ""},
		{"update another's number", "PUT", "/v1/numbers/+6560000003", `{"status":"Inactive"}`},
		{"take another's number", "PUT", "/v1/numbers/+6560000003", `{"subAccountId":"acme"}`},
		{"delete another's number", "DELETE", "/v1/numbers/+6560000003?force=true", ""},
		{"another's settings", "GET", "/v1/subaccounts/initech", ""},
		{"set another's settings", "PUT", "/v1/subaccounts/initech", `{"outOfSession":null}`},
		{"create in another sub-account", "POST", "/v1/sessions", `{"subAccountId":"initech","participants":["+6581000009","+6582000009"]}`},
		{"register a number in another sub-account", "PUT", "/v1/numbers/+6560000099", `{"subAccountId":"initech"}`},
	}
	for _, tt := range hidden {
		for _, tok := range []string{tokAcme, tokMulti} {
			t.Run(tt.name+" "+tok[:5], func(t *testing.T) {
				before := len(e.records())
				wantJSONError(t, e.req(tt.method, tt.path, tok, tt.body), http.StatusNotFound)
				if n := len(e.records()); n != before {
					t.Errorf("a hidden object was changed: %d audit records", n-before)
				}
			})
		}
	}
	// Nothing of theirs changed.
	var still session.Session
	e.must(http.StatusOK, http.MethodGet, "/v1/sessions/"+initech.ID, tokRoot, "", &still)
	if still.Status != session.StatusOpen || still.Ref != "" {
		t.Errorf("initech's session changed: %+v", still)
	}
	var num session.NumberView
	e.must(http.StatusOK, http.MethodGet, "/v1/numbers/+6560000003", tokRoot, "", &num)
	if num.SubAccountID != "initech" || num.Status != session.NumberActive {
		t.Errorf("initech's number changed: %+v", num)
	}
	wantError(t, e.req(http.MethodGet, "/v1/numbers/+6560000099", tokRoot, ""), 404, "")

	// Lists: only the token's own.
	lists := []struct {
		token, path string
		want        []string
	}{
		{tokAcme, "/v1/sessions", []string{acme.ID, acme2.ID}},
		{tokAcme, "/v1/sessions?subAccountId=initech", nil},
		{tokAcme, "/v1/sessions?virtualNumber=%2B6590000001", nil},
		{tokMulti, "/v1/sessions", []string{globex.ID, acme.ID, acme2.ID}},
		{tokMulti, "/v1/sessions?subAccountId=globex", []string{globex.ID}},
		{tokRoot, "/v1/sessions", []string{initech.ID, none.ID, globex.ID, acme.ID, acme2.ID}},
	}
	for _, tt := range lists {
		t.Run("list "+tt.path+" "+tt.token[:5], func(t *testing.T) {
			var list sessionList
			e.must(http.StatusOK, http.MethodGet, tt.path, tt.token, "", &list)
			var got []string
			for _, s := range list.Sessions {
				got = append(got, s.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	var numbers numberList
	e.must(http.StatusOK, http.MethodGet, "/v1/numbers", tokMulti, "", &numbers)
	if len(numbers.Numbers) != 2 || numbers.Numbers[0].Number.Number != "+6560000001" || numbers.Numbers[1].Number.Number != "+6560000002" {
		t.Errorf("multi token's numbers: %+v", numbers.Numbers)
	}

	// What is its own, it changes.
	e.must(http.StatusOK, http.MethodPatch, "/v1/sessions/"+acme.ID, tokAcme, `{"ref":"a-1"}`, nil)
	e.must(http.StatusCreated, http.MethodPut, "/v1/numbers/+6560000011", tokAcme, `{"countryCode":"SG"}`, &num)
	if num.SubAccountID != "acme" {
		t.Errorf("number registered by the acme token in %q", num.SubAccountID)
	}
	e.must(http.StatusCreated, http.MethodPut, "/v1/subaccounts/globex", tokMulti, `{"outOfSession":{"action":"hangup"}}`, nil)
	e.must(http.StatusOK, http.MethodGet, "/v1/subaccounts/acme", tokAcme, "", nil)
	e.must(http.StatusNoContent, http.MethodDelete, "/v1/sessions/"+globex.ID, tokMulti, "", nil)
	// A token of several sub-accounts names the one it creates in.
	wantError(t, e.req(http.MethodPost, "/v1/sessions", tokMulti, `{"participants":["+6581000006","+6582000006"]}`), 400, "subAccountId")
	// A conflict does not tell a limited token whose session holds the pair.
	r := e.req(http.MethodPost, "/v1/sessions", tokAcme, `{"virtualNumber":"+6590000009","participants":["+6581000005","+6582000099"]}`)
	wantError(t, r, 409, "participants")
	if strings.Contains(errorOf(r), acme2.ID) {
		t.Errorf("conflict names a session id: %q", errorOf(r))
	}
}

// TestAllocationAPI: a create with subAccountId and no virtualNumber gets
// an Active number of that sub-account (of the country asked), the least
// used first, never one a participant already has a session on, never one
// that is not Active; with none left, 409 saying the pool is exhausted;
// each counted in callflow_pool_allocations_total.
func TestAllocationAPI(t *testing.T) {
	e := newAPIEnv(t)
	e.putNumber("+6560000001", "acme", "SG", session.NumberActive)
	e.putNumber("+6560000002", "acme", "SG", session.NumberActive)
	e.putNumber("+6560000003", "acme", "SG", session.NumberActive)
	e.putNumber("+6030000001", "acme", "MY", session.NumberActive)
	for i, st := range []string{session.NumberUnhealthy, session.NumberExpiring, session.NumberInactive} {
		e.putNumber(fmt.Sprintf("+656000009%d", i), "acme", "SG", st)
	}
	e.putNumber("+6560000100", "globex", "SG", session.NumberActive)
	alloc := func(a, b, country string) (session.Session, reply) {
		t.Helper()
		body := fmt.Sprintf(`{"subAccountId":"acme","countryCode":%q,"participants":[%q,%q]}`, country, a, b)
		var s session.Session
		r := e.req(http.MethodPost, "/v1/sessions", tokRoot, body)
		if r.status == http.StatusCreated {
			if err := json.Unmarshal(r.body, &s); err != nil {
				t.Fatal(err)
			}
		}
		return s, r
	}
	// Distinct pairs spread over the three SG numbers, least used first.
	used := map[string]int{}
	for i := range 6 {
		s, r := alloc(fmt.Sprintf("+658100000%d", i), fmt.Sprintf("+658200000%d", i), "SG")
		if r.status != http.StatusCreated {
			t.Fatalf("create %d: %s", i, r)
		}
		used[s.VirtualNumber]++
		if !strings.HasPrefix(s.VirtualNumber, "+6560000") || s.VirtualNumber > "+6560000003" {
			t.Fatalf("allocated %s, not an Active SG number of acme", s.VirtualNumber)
		}
	}
	for _, n := range []string{"+6560000001", "+6560000002", "+6560000003"} {
		if used[n] != 2 {
			t.Errorf("least used first: %v, want 2 sessions on each SG number", used)
		}
	}
	// One agent talking to many customers: a new number each time, until
	// the SG pool is exhausted for the agent.
	const agent = "+6589990000"
	seen := map[string]bool{}
	for i := range 3 {
		s, r := alloc(agent, fmt.Sprintf("+658300000%d", i), "SG")
		if r.status != http.StatusCreated {
			t.Fatalf("agent's session %d: %s", i, r)
		}
		if seen[s.VirtualNumber] {
			t.Fatalf("the agent is bound twice to %s", s.VirtualNumber)
		}
		seen[s.VirtualNumber] = true
	}
	_, r := alloc(agent, "+6583000009", "SG")
	wantError(t, r, http.StatusConflict, "exhausted")
	if !strings.Contains(errorOf(r), "both participants") {
		t.Errorf("exhausted message %q does not say for whom", errorOf(r))
	}
	// Another country still has room; and without a country any number.
	if s, r := alloc(agent, "+6583000009", "MY"); r.status != http.StatusCreated || s.VirtualNumber != "+6030000001" {
		t.Errorf("MY: %s", r)
	}
	_, r = alloc(agent, "+6583000010", "")
	wantError(t, r, http.StatusConflict, "exhausted")
	// Closing one frees its number for the agent.
	var list sessionList
	e.must(http.StatusOK, http.MethodGet, "/v1/sessions?participant=%2B6589990000&virtualNumber=%2B6560000002", tokRoot, "", &list)
	if len(list.Sessions) != 1 {
		t.Fatalf("agent's session on +6560000002: %+v", list.Sessions)
	}
	e.must(http.StatusOK, http.MethodPatch, "/v1/sessions/"+list.Sessions[0].ID, tokRoot, `{"status":"closed"}`, nil)
	if s, r := alloc(agent, "+6583000011", "SG"); r.status != http.StatusCreated || s.VirtualNumber != "+6560000002" {
		t.Errorf("after a close: %s, want +6560000002", r)
	}
	got := map[string]float64{}
	for _, res := range []string{AllocationAllocated, AllocationExhausted, AllocationError} {
		got[res] = testutil.ToFloat64(e.srv.metrics.allocations.WithLabelValues(res))
	}
	if got[AllocationAllocated] != 11 || got[AllocationExhausted] != 2 || got[AllocationError] != 0 {
		t.Errorf("callflow_pool_allocations_total = %v, want 11 allocated, 2 exhausted", got)
	}
}

// auditOf decodes the audit of a records stream message.
func auditOf(t *testing.T, m auditMsg) wire.Audit {
	t.Helper()
	rec, err := wire.ParseRecord(m.data)
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	var env struct {
		Payload wire.Audit `json:"payload"`
	}
	if err := json.Unmarshal(rec.Event, &env); err != nil {
		t.Fatal(err)
	}
	return env.Payload
}

// TestAuditEveryChange: each change through the API (session create,
// update, close, delete; number put and delete, with the sessions a
// forced delete closes; sub-account put; flow put and delete, with the
// sub-accounts a forced delete detaches) is one audit record on
// calls.audit.<operation> naming its sub-account, author admin, the token
// fingerprint, and the object before and after.
func TestAuditEveryChange(t *testing.T) {
	e := newAPIEnv(t)
	var sessionID string
	steps := []struct {
		name, method, path, token, body string
		ops                             []string
		sub, number                     string
		before, after                   bool
	}{
		{"number put (new)", "PUT", "/v1/numbers/+6560000001", tokAcme, `{"countryCode":"SG"}`, []string{wire.AuditNumberPut}, "acme", "+6560000001", false, true},
		{"number put (update)", "PUT", "/v1/numbers/+6560000001", tokRoot, `{"status":"Active","outOfSession":{"action":"hangup"}}`, []string{wire.AuditNumberPut}, "acme", "+6560000001", true, true},
		{"session create", "POST", "/v1/sessions", tokAcme, `{"participants":["+6581000001","+6582000001"],"ref":"o-1"}`, []string{wire.AuditCreate}, "acme", "+6560000001", false, true},
		{"session update", "PATCH", "/v1/sessions/{id}", tokAcme, `{"ref":"o-2"}`, []string{wire.AuditUpdate}, "acme", "+6560000001", true, true},
		{"session close", "PATCH", "/v1/sessions/{id}", tokAcme, `{"status":"closed"}`, []string{wire.AuditClose}, "acme", "+6560000001", true, true},
		{"session delete", "DELETE", "/v1/sessions/{id}", tokRoot, ``, []string{wire.AuditDelete}, "acme", "+6560000001", true, false},
		{"session on the number", "POST", "/v1/sessions", tokRoot, `{"subAccountId":"acme","participants":["+6581000002","+6582000002"]}`, []string{wire.AuditCreate}, "acme", "+6560000001", false, true},
		{"number delete, forced", "DELETE", "/v1/numbers/+6560000001?force=true", tokAcme, ``, []string{wire.AuditClose, wire.AuditNumberDelete}, "acme", "+6560000001", true, false},
		{"sub-account put (new)", "PUT", "/v1/subaccounts/acme", tokAcme, `{"outOfSession":{"action":"hangup"}}`, []string{wire.AuditSubAccountPut}, "acme", "", false, true},
		{"sub-account put (update)", "PUT", "/v1/subaccounts/acme", tokRoot, `{"outOfSession":null}`, []string{wire.AuditSubAccountPut}, "acme", "", true, true},
		{"flow put (new)", "PUT", "/v1/flows/menu", tokAcme, `{"start":"bye","steps":{"bye":{"hangup":{}}}}`, []string{wire.AuditFlowPut}, "acme", "", false, true},
		{"flow put (update)", "PUT", "/v1/flows/menu", tokRoot, `{"subAccountId":"acme","start":"bye","steps":{"bye":{"hangup":{"say":{"text":"Bye"}}}}}`, []string{wire.AuditFlowPut}, "acme", "", true, true},
		{"default flow put", "PUT", "/v1/subaccounts/acme", tokAcme, `{"defaultFlow":"menu"}`, []string{wire.AuditSubAccountPut}, "acme", "", true, true},
		{"flow delete, forced", "DELETE", "/v1/flows/menu?force=true", tokAcme, ``, []string{wire.AuditSubAccountPut, wire.AuditFlowDelete}, "acme", "", true, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := e.records()
			r := e.req(st.method, strings.ReplaceAll(st.path, "{id}", sessionID), st.token, st.body)
			if r.status/100 != 2 {
				t.Fatalf("%s", r)
			}
			if st.method == http.MethodPost {
				var s session.Session
				_ = json.Unmarshal(r.body, &s)
				sessionID = s.ID
			}
			after := e.records()
			if len(after) != len(before)+len(st.ops) {
				t.Fatalf("%d audit records, want %d", len(after)-len(before), len(st.ops))
			}
			for i, op := range st.ops {
				m := after[len(before)+i]
				a := auditOf(t, m)
				if m.subject != "calls.audit."+op || a.Operation != op {
					t.Errorf("record %d: %s / %s, want %s", i, m.subject, a.Operation, op)
				}
				if a.SubAccountID != st.sub || a.VirtualNumber != st.number {
					t.Errorf("record %d: sub-account %q number %q, want %q %q", i, a.SubAccountID, a.VirtualNumber, st.sub, st.number)
				}
				if a.Actor.Author != wire.AuthorAdmin || a.Actor.Token != fingerprint(st.token) || a.Actor.UserAgent != secUA {
					t.Errorf("record %d: actor %+v", i, a.Actor)
				}
				if op == wire.AuditSubAccountPut && i == 0 && len(st.ops) == 2 {
					if len(a.Before) == 0 || len(a.After) == 0 {
						t.Errorf("detach record: %+v", a)
					}
					continue
				}
				if op == wire.AuditClose && i == 0 && len(st.ops) == 2 {
					if a.SessionID != sessionID || len(a.After) == 0 {
						t.Errorf("forced close record: %+v", a)
					}
					continue
				}
				if (len(a.Before) > 0) != st.before || (len(a.After) > 0) != st.after {
					t.Errorf("record %d: before %s after %s, want before %v after %v", i, a.Before, a.After, st.before, st.after)
				}
				for _, raw := range []json.RawMessage{a.Before, a.After} {
					if len(raw) > 0 && !json.Valid(raw) {
						t.Errorf("record %d: not JSON: %s", i, raw)
					}
				}
				if strings.Contains(string(m.data), tokRoot) || strings.Contains(string(m.data), tokAcme) {
					t.Fatalf("the record holds a token")
				}
			}
			if st.name == "session update" {
				a := auditOf(t, after[len(after)-1])
				var b, c session.Session
				_ = json.Unmarshal(a.Before, &b)
				_ = json.Unmarshal(a.After, &c)
				if b.Ref != "o-1" || c.Ref != "o-2" {
					t.Errorf("before ref %q after %q, want o-1 then o-2", b.Ref, c.Ref)
				}
			}
		})
	}
}

// fakeHistory is an archive of interactions kept in memory: each
// session's call ids, newest first; a page of limit, then "next".
type fakeHistory struct {
	rows map[string][]string

	mu    sync.Mutex
	err   error
	asked []string
}

func (f *fakeHistory) Interactions(_ context.Context, id string, limit int, cursor string) (InteractionPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, fmt.Sprintf("%s/%d/%s", id, limit, cursor))
	if f.err != nil {
		return InteractionPage{}, f.err
	}
	rows := f.rows[id]
	switch cursor {
	case "":
	case "next":
		rows = rows[min(limit, len(rows)):]
	default:
		return InteractionPage{}, fmt.Errorf("%w: cursor", ErrInvalidQuery)
	}
	next := ""
	if len(rows) > limit {
		rows, next = rows[:limit], "next"
	}
	var out []map[string]string
	for _, r := range rows {
		out = append(out, map[string]string{"callId": r})
	}
	return InteractionPage{Items: out, NextCursor: next}, nil
}

func (f *fakeHistory) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeHistory) first() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.asked) == 0 {
		return ""
	}
	return f.asked[0]
}

// TestInteractionsAPI: GET /v1/sessions/{id}/interactions answers the
// archive's page newest first as {"interactions": [...], "nextCursor"},
// 503 saying so without ClickHouse or when it does not answer, 400 for a
// bad limit or cursor, and 404 for a session the token may not see.
func TestInteractionsAPI(t *testing.T) {
	e := newAPIEnv(t)
	var s session.Session
	e.must(http.StatusCreated, http.MethodPost, "/v1/sessions", tokRoot, `{"subAccountId":"acme","virtualNumber":"+6590000001","participants":["+6581000001","+6582000001"]}`, &s)
	path := "/v1/sessions/" + s.ID + "/interactions"

	wantError(t, e.req(http.MethodGet, path, tokRoot, ""), http.StatusServiceUnavailable, "interactions need ClickHouse (--clickhouse-addr)")

	h := &fakeHistory{rows: map[string][]string{s.ID: {"c3", "c2", "c1"}}}
	e.srv.UseInteractions(h)
	var page struct {
		Interactions []map[string]string `json:"interactions"`
		NextCursor   *string             `json:"nextCursor"`
	}
	e.must(http.StatusOK, http.MethodGet, path, tokAcme, "", &page)
	if len(page.Interactions) != 3 || page.Interactions[0]["callId"] != "c3" || page.NextCursor != nil {
		t.Errorf("page %+v", page)
	}
	r := e.must(http.StatusOK, http.MethodGet, path+"?limit=2", tokRoot, "", nil)
	if !strings.Contains(string(r.body), `"nextCursor":"next"`) {
		t.Errorf("first page of 2: %s", r.body)
	}
	e.must(http.StatusOK, http.MethodGet, path+"?limit=2&cursor=next", tokRoot, "", &page)
	if len(page.Interactions) != 1 || page.Interactions[0]["callId"] != "c1" {
		t.Errorf("second page %+v", page)
	}
	// A session without calls: an empty array, not null.
	var quiet session.Session
	e.must(http.StatusCreated, http.MethodPost, "/v1/sessions", tokRoot, `{"virtualNumber":"+6590000002","participants":["+6581000001","+6582000001"]}`, &quiet)
	if r := e.must(http.StatusOK, http.MethodGet, "/v1/sessions/"+quiet.ID+"/interactions", tokRoot, "", nil); !strings.Contains(string(r.body), `"interactions":[]`) {
		t.Errorf("no calls: %s", r.body)
	}
	// A session the bucket forgot: its calls are still in the archive.
	e.must(http.StatusNoContent, http.MethodDelete, "/v1/sessions/"+s.ID, tokRoot, "", nil)
	e.must(http.StatusOK, http.MethodGet, path, tokRoot, "", &page)
	if len(page.Interactions) != 3 {
		t.Errorf("deleted session's interactions: %+v", page)
	}
	wantError(t, e.req(http.MethodGet, path, tokAcme, ""), 404, "session not found")
	bad := []struct {
		query  string
		status int
		names  string
	}{
		{"?limit=0", 400, "limit"},
		{"?limit=1001", 400, "limit"},
		{"?cursor=bogus", 400, "cursor"},
		{"?page=2", 400, "page"},
	}
	for _, tt := range bad {
		wantError(t, e.req(http.MethodGet, path+tt.query, tokRoot, ""), tt.status, tt.names)
	}
	wantError(t, e.req(http.MethodGet, "/v1/sessions/not-an-id/interactions", tokRoot, ""), 404, "not found")
	h.fail(errors.New("clickhouse: connection refused"))
	wantError(t, e.req(http.MethodGet, path, tokRoot, ""), http.StatusServiceUnavailable, "ClickHouse")
	if !strings.Contains(e.logs.String(), "connection refused") {
		t.Errorf("archive failure not logged")
	}
	if want := s.ID + "/100/"; h.first() != want {
		t.Errorf("first asked %q, want the default limit (%s)", h.first(), want)
	}
}

// TestRoutes: a known path with another method is 405 with Allow, an
// unknown one 404, both as JSON.
func TestRoutes(t *testing.T) {
	e := newAPIEnv(t)
	id := "0123456789abcdef0123456789abcdef"
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"PUT", "/v1/sessions", 405, "GET, HEAD, POST"},
		{"DELETE", "/v1/sessions", 405, "GET, HEAD, POST"},
		{"POST", "/v1/sessions/" + id, 405, "DELETE, GET, HEAD, PATCH"},
		{"PUT", "/v1/sessions/" + id, 405, "DELETE, GET, HEAD, PATCH"},
		{"POST", "/v1/sessions/" + id + "/interactions", 405, "GET, HEAD"},
		{"POST", "/v1/numbers", 405, "GET, HEAD"},
		{"PATCH", "/v1/numbers/+6560000001", 405, "DELETE, GET, HEAD, PUT"},
		{"POST", "/v1/subaccounts/acme", 405, "GET, HEAD, PUT"},
		{"POST", "/v1/flows", 405, "GET, HEAD"},
		{"PUT", "/v1/flows", 405, "GET, HEAD"},
		{"PATCH", "/v1/flows/main-menu", 405, "DELETE, GET, HEAD, PUT"},
		{"POST", "/v1/flows/main-menu", 405, "DELETE, GET, HEAD, PUT"},
		{"GET", "/v1/flows/main-menu/versions", 404, ""},
		{"GET", "/v1/subaccounts", 404, ""},
		{"GET", "/v1/sessions/" + id + "/calls", 404, ""},
		{"GET", "/v1/numbers/+6560000001/sessions", 404, ""},
		{"GET", "/v1/session", 404, ""},
		{"GET", "/v2/sessions", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := e.req(tt.method, tt.path, tokRoot, "{}")
			wantJSONError(t, r, tt.status)
			if got := r.header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
}
