package admin

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/callflow/callflow/internal/session"
)

// TestErrorBodies: every kind of error answer carries, beside the
// message (unchanged), its stable code, the field the message names, the
// request's id (also sent as X-Request-Id) and, for a 409, the id of what
// it conflicts with.
func TestErrorBodies(t *testing.T) {
	e := newAdminEnv(t, adminOptions{cfg: func(c *Config) {
		c.Tokens = []string{tokRoot, tokAcme + "@acme", tokMulti + "@acme/globex"}
		c.RateLimit, c.RateBurst = 0.001, 1000 // refused only where a case spends the rest
	}})
	e.putNumber("+6560000001", "acme", "SG", session.NumberActive)
	e.putNumber("+6560000002", "acme", "SG", session.NumberUnhealthy)
	held := e.create("Bearer "+tokRoot, `{"subAccountId":"acme","virtualNumber":"+6560000001","participants":["+6581000001","+6582000001"]}`)
	closed := e.create("Bearer "+tokRoot, `{"virtualNumber":"+6590000009","participants":["+6581000009","+6582000009"]}`)
	e.must(http.StatusOK, http.MethodPatch, "/v1/sessions/"+closed, tokRoot, `{"status":"closed"}`, nil)
	pinned := e.create("Bearer "+tokRoot, `{"virtualNumber":"+6590000008","participants":["+6581000008","+6582000008"],"pin":"4321"}`)
	e.must(http.StatusCreated, http.MethodPut, "/v1/flows/main-menu", tokRoot, flowBody("acme", "Goodbye."), nil)
	e.must(http.StatusOK, http.MethodPut, "/v1/numbers/+6560000001", tokRoot, `{"flow":"main-menu"}`, nil)
	// A session of another sub-account on a number without one.
	e.create("Bearer "+tokRoot, `{"subAccountId":"globex","virtualNumber":"+6590000007","participants":["+6581000007","+6582000007"]}`)

	tests := []struct {
		name, method, path, token, body string
		status                          int
		code, field                     string
		ids                             map[string]string // other keys of the body
		message                         string            // part of the message, unchanged
	}{
		{"bad field", "POST", "/v1/sessions", tokRoot, `{"virtualNumber":"+6590000001","participants":["+6581000002","12ab"]}`,
			400, CodeInvalidField, "participants[1]", nil, "participants[1]: "},
		{"unknown field", "POST", "/v1/sessions", tokRoot, `{"virtualNumber":"+6590000001","participant":[]}`,
			400, CodeInvalidField, "participant", nil, "unknown field"},
		{"nested field", "PUT", "/v1/numbers/+6560000009", tokRoot, `{"subAccountId":"acme","outOfSession":{"action":"x","mode":1}}`,
			400, CodeInvalidField, "outOfSession.mode", nil, "outOfSession.mode: unknown field"},
		{"query parameter", "GET", "/v1/sessions?limit=0", tokRoot, "", 400, CodeInvalidField, "limit", nil, "limit: "},
		{"path number", "PUT", "/v1/numbers/12ab", tokRoot, `{"subAccountId":"acme"}`, 400, CodeInvalidField, "number", nil, "is not a phone number"},
		{"malformed body", "POST", "/v1/sessions", tokRoot, `{"virtualNumber":`, 400, CodeInvalidBody, "", nil, "body: "},
		{"empty body", "POST", "/v1/sessions", tokRoot, ``, 400, CodeInvalidBody, "", nil, "empty"},
		{"bad idempotency key", "POST", "/v1/sessions", tokRoot, `{"virtualNumber":"+6590000001","participants":["+6581000002","+6582000002"]}`,
			400, CodeInvalidField, "Idempotency-Key", nil, "printable ASCII"},
		{"body too large", "POST", "/v1/sessions", tokRoot, `{"ref":"` + strings.Repeat("r", 20<<10) + `"}`, 413, CodeBodyTooLarge, "", nil, "16 KiB"},
		{"no token", "GET", "/v1/sessions", "", "", 401, CodeUnauthorized, "", nil, "bearer token"},
		{"no session", "GET", "/v1/sessions/0123456789abcdef0123456789abcdef", tokRoot, "", 404, CodeNotFound, "", nil, "session not found"},
		{"another tenant's sub-account", "POST", "/v1/sessions", tokAcme, `{"subAccountId":"globex","participants":["+6581000002","+6582000002"]}`,
			404, CodeNotFound, "subAccountId", nil, `no sub-account "globex"`},
		{"no route", "GET", "/v1/nothing", tokRoot, "", 404, CodeNotFound, "", nil, "not found"},
		{"method", "PUT", "/v1/sessions", tokRoot, "", 405, CodeMethodNotAllowed, "", nil, "not allowed"},
		{"participant held", "POST", "/v1/sessions", tokRoot, `{"virtualNumber":"+6560000001","participants":["+6581000001","+6582000003"]}`,
			409, CodeConflict, "participants", map[string]string{"sessionId": held}, "participants: participant already has an open session"},
		{"participant held, seen by its tenant", "POST", "/v1/sessions", tokAcme, `{"virtualNumber":"+6560000001","participants":["+6581000001","+6582000003"]}`,
			409, CodeConflict, "participants", map[string]string{"sessionId": held}, "participants: participant already has an open session"},
		{"participant held by another tenant's session", "POST", "/v1/sessions", tokAcme, `{"subAccountId":"acme","virtualNumber":"+6590000007","participants":["+6581000007","+6582000003"]}`,
			409, CodeConflict, "participants", map[string]string{"sessionId": ""}, "participants: participant already has an open session"},
		{"pin held", "POST", "/v1/sessions", tokRoot, `{"virtualNumber":"+6590000008","participants":["+6581000018","+6582000018"],"pin":"4321"}`,
			409, CodeConflict, "pin", map[string]string{"sessionId": pinned}, "pin: pin already belongs"},
		{"number not Active", "POST", "/v1/sessions", tokRoot, `{"virtualNumber":"+65 6000 0002","participants":["+6581000002","+6582000002"]}`,
			409, CodeNumberUnavailable, "virtualNumber", map[string]string{"virtualNumber": "+6560000002"}, "virtualNumber: "},
		{"pool exhausted", "POST", "/v1/sessions", tokRoot, `{"subAccountId":"initech","participants":["+6581000002","+6582000002"]}`,
			409, CodePoolExhausted, "", map[string]string{"subAccountId": "initech"}, "number pool exhausted"},
		{"session closed", "PATCH", "/v1/sessions/" + closed, tokRoot, `{"ref":"x"}`, 409, CodeSessionClosed, "", map[string]string{"sessionId": closed}, "never reopens"},
		{"number in use", "DELETE", "/v1/numbers/+6560000001", tokRoot, "", 409, CodeInUse, "", map[string]string{"number": "+6560000001"}, "number has open sessions"},
		{"flow attached", "DELETE", "/v1/flows/main-menu", tokRoot, "", 409, CodeInUse, "", map[string]string{"flowId": "main-menu"}, "flow is attached"},
		{"flow version stale", "PUT", "/v1/flows/main-menu", tokRoot, `{"version": 7, ` + flowBody("acme", "Bye.")[1:], 409, CodeVersionConflict, "", map[string]string{"flowId": "main-menu"}, "flow changed meanwhile"},
		{"no archive", "GET", "/v1/sessions/" + held + "/interactions", tokRoot, "", 503, CodeUnavailable, "", nil, "ClickHouse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := call{method: tt.method, path: tt.path, body: []byte(tt.body)}
			if tt.token != "" {
				c.auth = "Bearer " + tt.token
			}
			if tt.name == "bad idempotency key" {
				c.header = http.Header{"Idempotency-Key": {"tab\there"}}
			}
			r := e.send(c)
			wantJSONError(t, r, tt.status)
			var body map[string]string
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatal(err)
			}
			if body["code"] != tt.code || body["field"] != tt.field {
				t.Errorf("code %q field %q, want %q %q: %s", body["code"], body["field"], tt.code, tt.field, r.body)
			}
			if !strings.Contains(body["error"], tt.message) {
				t.Errorf("error %q does not say %q", body["error"], tt.message)
			}
			for k, v := range tt.ids {
				if body[k] != v {
					t.Errorf("%s = %q, want %q: %s", k, body[k], v, r.body)
				}
			}
		})
	}

	// Past the rate limit: 429 rate_limited.
	lim := newAdminEnv(t, adminOptions{nats: e.ns, cfg: func(c *Config) { c.RateLimit, c.RateBurst = 0.001, 1 }})
	lim.send(call{method: http.MethodGet, path: "/v1/sessions", auth: "Bearer " + secTokenNew})
	r := lim.send(call{method: http.MethodGet, path: "/v1/sessions", auth: "Bearer " + secTokenNew})
	wantJSONError(t, r, http.StatusTooManyRequests)
	if !strings.Contains(string(r.body), `"code":"rate_limited"`) {
		t.Errorf("429 body %s, want code rate_limited", r.body)
	}
}

// TestFieldOf: the field an error message names, as clients read it.
func TestFieldOf(t *testing.T) {
	tests := []struct{ msg, want string }{
		{"ttlSeconds: must be >= 0", "ttlSeconds"},
		{"participants[1]: \"12ab\" is not a phone number", "participants[1]"},
		{"steps.welcome.menu.options.3: step \"nowhere\" does not exist", "steps.welcome.menu.options.3"},
		{"Idempotency-Key: given 2 times", "Idempotency-Key"},
		{"body: empty; expected a JSON object", ""},
		{"session not found", ""},
		{"not found: GET /v1/x", ""},
		{"number pool exhausted: no Active number of sub-account x is free", ""},
		{"session is closed: it is closed (expired); a closed session never reopens", ""},
		{": nothing", ""},
	}
	for _, tt := range tests {
		if got := fieldOf(tt.msg); got != tt.want {
			t.Errorf("fieldOf(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}

// TestRequestID: every answer (errors, successes, probes) carries an
// X-Request-Id: the client's when it is sane, else a new one; an error
// body repeats it, and the request's log lines carry it.
func TestRequestID(t *testing.T) {
	e := newAdminEnv(t, adminOptions{})
	tests := []struct {
		name, method, path, sent string
		status                   int
		keep                     bool
	}{
		{"a uuid is kept", "GET", "/v1/sessions", "7f0c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f", 200, true},
		{"a trace id is kept", "GET", "/healthz", "trace:abc_1.2", 200, true},
		{"kept on an error", "GET", "/v1/sessions/0123456789abcdef0123456789abcdef", "req-1", 404, true},
		{"none sent", "GET", "/v1/sessions", "", 200, false},
		{"too long", "GET", "/v1/sessions", strings.Repeat("a", 129), 200, false},
		{"a space", "GET", "/v1/sessions", "a b", 200, false},
		{"a quote", "GET", "/readyz", `a"b`, 200, false},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.sent != "" {
				h.Set("X-Request-Id", tt.sent)
			}
			r := e.send(call{method: tt.method, path: tt.path, auth: "Bearer " + secTokenNew, header: h})
			if r.status != tt.status {
				t.Fatalf("%s", r)
			}
			id := r.header.Get("X-Request-Id")
			switch {
			case tt.keep && id != tt.sent:
				t.Errorf("X-Request-Id %q, want the client's %q", id, tt.sent)
			case !tt.keep && (!validRequestID(id) || id == tt.sent):
				t.Errorf("X-Request-Id %q, want a new one", id)
			case seen[id] && !tt.keep:
				t.Errorf("X-Request-Id %q given twice", id)
			}
			seen[id] = true
			if tt.status >= 400 {
				wantJSONError(t, r, tt.status)
			}
		})
	}
	// The request's log lines carry its id: the create's line at info.
	c := call{method: http.MethodPost, path: "/v1/sessions", auth: "Bearer " + secTokenNew, body: []byte(sessionBody("+6590000001", "+6581000001", "+6582000001")),
		header: http.Header{"X-Request-Id": {"create-42"}}}
	if r := e.send(c); r.status != http.StatusCreated {
		t.Fatalf("create: %s", r)
	}
	if n := countLogLines(t, e.logs.String(), func(l map[string]any) bool {
		return l["msg"] == "session created" && l["level"] == "INFO" && l["request_id"] == "create-42"
	}); n != 1 {
		t.Errorf("%d info lines of the create with its request id, want 1:\n%s", n, e.logs.String())
	}
}

// countLogLines counts the JSON log lines of out that match.
func countLogLines(t *testing.T, out string, match func(map[string]any) bool) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if match(l) {
			n++
		}
	}
	return n
}

// TestMaskedPath: a request's path is logged with its phone numbers
// masked.
func TestMaskedPath(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/v1/numbers/+65987654321", "/v1/numbers/+65*******21"},
		{"/v1/numbers/6598-7654-321", "/v1/numbers/659********21"},
		{"/v1/sessions/0123456789abcdef0123456789abcdef", "/v1/sessions/0123456789abcdef0123456789abcdef"},
		{"/v1/numbers/12ab", "/v1/numbers/12ab"},
		{"/healthz", "/healthz"},
	}
	for _, tt := range tests {
		if got := maskedPath(tt.path); got != tt.want {
			t.Errorf("maskedPath(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}
