package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/session"
)

// keyed is a create with an Idempotency-Key.
func keyed(token, key, body string) call {
	return call{method: http.MethodPost, path: "/v1/sessions", auth: "Bearer " + token, body: []byte(body),
		header: http.Header{"Idempotency-Key": {key}}}
}

// errorCode is the code of an error answer.
func errorCode(r reply) string {
	var body struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.body, &body)
	return body.Code
}

// sessionsOf lists the open sessions of participant (as +digits) on e.
func (e *adminEnv) sessionsOf(participant string) []session.Session {
	e.t.Helper()
	var list sessionList
	e.must(http.StatusOK, http.MethodGet, "/v1/sessions?participant="+strings.Replace(participant, "+", "%2B", 1), tokRoot, "", &list)
	return list.Sessions
}

// TestIdempotentCreate: two admin servers on one bucket. A retry of a
// create with the same Idempotency-Key and body, on either server or on
// one started later (a restart), answers the first result again (same
// status, same body, same session); the same body written otherwise is
// the same request; another body is a 422; a key is scoped by the
// token's sub-accounts; a refused create keeps no result, so its retry
// is served anew; and a bad key is a 400 naming the header.
func TestIdempotentCreate(t *testing.T) {
	a := newAPIEnv(t)
	b := newAdminEnv(t, adminOptions{nats: a.ns, cfg: func(c *Config) {
		c.Tokens = []string{tokRoot, tokAcme + "@acme", tokMulti + "@acme/globex"}
		c.Instance = "admin-test-2"
	}})
	const body = `{"subAccountId":"acme","virtualNumber":"+6590000001","participants":["+6581000001","+6582000001"],"ttlSeconds":600}`
	// The same request, spaced and ordered otherwise (the values as
	// they were: "6590000001" would be another body).
	const same = `{ "participants": ["+6581000001", "+6582000001"],
		"ttlSeconds": 600, "virtualNumber": "+6590000001", "subAccountId": "acme" }`

	first := a.send(keyed(tokRoot, "order-42", body))
	if first.status != http.StatusCreated || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first create: %s %v", first, first.header)
	}
	var s session.Session
	if err := json.Unmarshal(first.body, &s); err != nil {
		t.Fatal(err)
	}
	before := len(a.records())

	c := newAdminEnv(t, adminOptions{nats: a.ns, cfg: func(c *Config) {
		c.Tokens = []string{tokRoot, tokAcme + "@acme", tokMulti + "@acme/globex"}
		c.Instance = "admin-test-restarted"
	}})
	retries := []struct {
		name string
		env  *adminEnv
		body string
	}{
		{"the same server", a, body},
		{"another server", b, body},
		{"a server started since", c, body},
		{"the same request written otherwise", b, same},
	}
	for _, tt := range retries {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.env.send(keyed(tokRoot, "order-42", tt.body))
			if r.status != first.status || string(r.body) != string(first.body) {
				t.Errorf("retry: %s, want the first answer %s", r, first)
			}
			if r.header.Get("Idempotent-Replayed") != "true" || r.header.Get("Location") != "/v1/sessions/"+s.ID {
				t.Errorf("retry's headers %v, want Idempotent-Replayed and the first's Location", r.header)
			}
		})
	}
	if got := len(a.sessionsOf("+6581000001")); got != 1 {
		t.Errorf("%d sessions of the participant, want 1", got)
	}
	if got := len(a.records()); got != before {
		t.Errorf("retries wrote %d audit records, want none", got-before)
	}

	refusals := []struct {
		name, token, key, body string
		header                 http.Header
		status                 int
		code                   string
	}{
		{"another body", tokRoot, "order-42", strings.Replace(body, "600", "601", 1), nil, 422, CodeIdempotencyMismatch},
		// Another scope does not see the key: the create is made anew, and
		// refused since the participant's session exists.
		{"a token of acme", tokAcme, "order-42", body, nil, 409, CodeConflict},
		{"a token of acme and globex", tokMulti, "order-42", body, nil, 409, CodeConflict},
		{"an empty key", tokRoot, "", body, nil, 400, CodeInvalidField},
		{"a key too long", tokRoot, strings.Repeat("k", 256), body, nil, 400, CodeInvalidField},
		{"not ASCII", tokRoot, "clé", body, nil, 400, CodeInvalidField},
		{"two keys", tokRoot, "", body, http.Header{"Idempotency-Key": {"k1", "k2"}}, 400, CodeInvalidField},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			c := keyed(tt.token, tt.key, tt.body)
			if tt.header != nil {
				c.header = tt.header
			}
			r := b.send(c)
			wantJSONError(t, r, tt.status)
			if errorCode(r) != tt.code {
				t.Errorf("code %q, want %q: %s", errorCode(r), tt.code, r)
			}
			if tt.status != 409 && !strings.Contains(string(r.body), `"field":"Idempotency-Key"`) {
				t.Errorf("%s does not name the field Idempotency-Key", r)
			}
		})
	}

	// A refused create keeps nothing: once the participant is free, its
	// retry creates the session.
	other := strings.Replace(body, "+6582000001", "+6582000002", 1)
	refused := a.send(keyed(tokAcme, "order-43", other))
	if refused.status != http.StatusConflict || !strings.Contains(string(refused.body), s.ID) {
		t.Fatalf("create of a held participant: %s, want 409 naming %s", refused, s.ID)
	}
	a.must(http.StatusNoContent, http.MethodDelete, "/v1/sessions/"+s.ID, tokRoot, "", nil)
	if r := b.send(keyed(tokAcme, "order-43", other)); r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("retry once the participant is free: %s, want 201", r)
	}
}

// TestIdempotentCreateConcurrent: many requests with one key and body at
// once, half to each of two admin servers, create one session, and every
// request answers it.
func TestIdempotentCreateConcurrent(t *testing.T) {
	a := newAPIEnv(t)
	b := newAdminEnv(t, adminOptions{nats: a.ns, cfg: func(c *Config) {
		c.Tokens = []string{tokRoot}
		c.Instance = "admin-test-2"
	}})
	const n = 16
	const body = `{"virtualNumber":"+6590000001","participants":["+6581000001","+6582000001"]}`
	replies := make([]reply, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			replies[i] = []*adminEnv{a, b}[i%2].send(keyed(tokRoot, "burst-1", body))
		}()
	}
	close(start)
	wg.Wait()
	ids := map[string]int{}
	replayed := 0
	for _, r := range replies {
		if r.status != http.StatusCreated {
			t.Errorf("%s, want 201", r)
			continue
		}
		var s session.Session
		if err := json.Unmarshal(r.body, &s); err != nil {
			t.Fatal(err)
		}
		ids[s.ID]++
		if r.header.Get("Idempotent-Replayed") == "true" {
			replayed++
		}
	}
	if len(ids) != 1 || replayed != n-1 {
		t.Errorf("sessions answered %v, %d replayed: want one session, created once", ids, replayed)
	}
	if got := len(a.sessionsOf("+6581000001")); got != 1 {
		t.Errorf("%d sessions of the participant, want 1", got)
	}
}

// TestIdempotentCreateInFlight: while the first request with a key is in
// flight (here: claimed in the bucket, as another admin process would,
// and not completed), a retry waits at most Config.IdempotencyWait and
// answers 409 idempotency_in_flight; once the first completes, the retry
// gets its result; once it gives up, the retry is served anew.
func TestIdempotentCreateInFlight(t *testing.T) {
	e := newAdminEnv(t, adminOptions{cfg: func(c *Config) { c.IdempotencyWait = 100 * time.Millisecond }})
	const body = `{"virtualNumber":"+6590000001","participants":["+6581000001","+6582000001"]}`
	req, err := ParseSessionRequest(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, end := range []string{"complete", "release"} {
		key := fmt.Sprintf("in-flight-%d", i)
		claim, _, err := e.store.Idempotent(ctx, nil, key, fingerprintOf(req), time.Second)
		if err != nil || claim == nil {
			t.Fatalf("claim: %v", err)
		}
		r := e.send(keyed(secTokenNew, key, body))
		wantJSONError(t, r, http.StatusConflict)
		if errorCode(r) != CodeIdempotencyInFlight || !strings.Contains(string(r.body), "still in flight") {
			t.Errorf("retry while in flight: %s, want 409 %s", r, CodeIdempotencyInFlight)
		}
		switch end {
		case "complete":
			res := session.IdempotentResult{Status: http.StatusCreated, SessionID: "0123456789abcdef0123456789abcdef", Body: []byte(`{"id":"0123456789abcdef0123456789abcdef"}`)}
			if err := claim.Complete(ctx, res); err != nil {
				t.Fatal(err)
			}
			if r := e.send(keyed(secTokenNew, key, body)); r.status != http.StatusCreated || strings.TrimSpace(string(r.body)) != string(res.Body) {
				t.Errorf("retry after the first completed: %s, want its result", r)
			}
		case "release":
			if err := claim.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if r := e.send(keyed(secTokenNew, key, body)); r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" {
				t.Errorf("retry after the first gave up: %s, want a new 201", r)
			}
		}
	}
}
