package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/internal/testlog"
)

func newTestServer(t *testing.T, tokens ...string) (*httptest.Server, *Server) {
	t.Helper()
	hs, s, _ := newLoggedServer(t, tokens...)
	return hs, s
}

// newLoggedServer also returns what the server logged.
func newLoggedServer(t *testing.T, tokens ...string) (*httptest.Server, *Server, *testlog.Buffer) {
	t.Helper()
	logs := &testlog.Buffer{}
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns)
	store, err := session.Open(context.Background(), js, session.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	s, err := New(Config{Addr: "127.0.0.1:0", Tokens: tokens, SessionAPI: true, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	s.MountSessions(store, nil)
	s.AddCheck("sessions_bucket", false, store.Check)
	hs := httptest.NewServer(s.srv.Handler)
	t.Cleanup(hs.Close)
	return hs, s, logs
}

// TestLogsMaskNumbers: session changes (create, update, close, delete)
// are logged at info level, with their numbers masked, never whole.
func TestLogsMaskNumbers(t *testing.T) {
	hs, _, logs := newLoggedServer(t)
	code, created := do(t, hs, "POST", "/v1/sessions", "", validSession)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, created)
	}
	id := created["id"].(string)
	for _, body := range []string{`{"ref":"order-1"}`, `{"status":"closed"}`} {
		if code, answer := do(t, hs, "PATCH", "/v1/sessions/"+id, "", body); code != http.StatusOK {
			t.Fatalf("patch %s: %d %v", body, code, answer)
		}
	}
	if code, _ := do(t, hs, "DELETE", "/v1/sessions/"+id, "", ""); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	// A session closed by removing its number from the pool with force.
	if code, answer := do(t, hs, "PUT", "/v1/numbers/+65987654321", "", `{"subAccountId":"acme"}`); code != http.StatusCreated {
		t.Fatalf("put number: %d %v", code, answer)
	}
	code, pooled := do(t, hs, "POST", "/v1/sessions", "", validSession)
	if code != http.StatusCreated {
		t.Fatalf("create on the pool number: %d %v", code, pooled)
	}
	if code, answer := do(t, hs, "DELETE", "/v1/numbers/+65987654321?force=true", "", ""); code != http.StatusNoContent {
		t.Fatalf("remove the number: %d %v", code, answer)
	}
	out := logs.String()
	tests := []struct{ id, msg, operation string }{
		{id, "session created", ""},
		{id, "session changed", "update"},
		{id, "session changed", "close"},
		{id, "session deleted", ""},
		{pooled["id"].(string), "session changed", "close"},
	}
	for _, tt := range tests {
		n := countLogLines(t, out, func(l map[string]any) bool {
			ps, _ := l["participants"].([]any)
			return l["msg"] == tt.msg && l["level"] == "INFO" && l["id"] == tt.id && (tt.operation == "" || l["operation"] == tt.operation) &&
				l["virtual_number"] == "+65*******21" && len(ps) == 2 && ps[0] == "+65*******89" && ps[1] == "+65******21"
		})
		if n != 1 {
			t.Errorf("%d info lines %q %s with masked numbers, want 1:\n%s", n, tt.msg, tt.operation, out)
		}
	}
	for _, n := range []string{"65987654321", "65123456789", "6587654321"} {
		if strings.Contains(out, n) {
			t.Errorf("log holds the whole number %s:\n%s", n, out)
		}
	}
}

func do(t *testing.T, hs *httptest.Server, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s answered non-JSON %q", method, path, b)
		}
	}
	return resp.StatusCode, m
}

const validSession = `{"virtualNumber":"+65987654321","participants":["+65123456789","+6587654321"]}`

func TestSessionAPI(t *testing.T) {
	hs, _ := newTestServer(t)

	code, created := do(t, hs, "POST", "/v1/sessions", "", `{"virtualNumber":"+65 9876 54321","participants":["(65) 1234-56789","6587654321"],"ttlSeconds":3600,"greeting":{"text":"Hello"}}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, created)
	}
	id, _ := created["id"].(string)
	if !session.ValidID(id) || created["expiresAt"] == nil || created["virtualNumber"] != "+65987654321" {
		t.Fatalf("create answered %v", created)
	}
	if ps := created["participants"].([]any); ps[0] != "+65123456789" || ps[1] != "+6587654321" {
		t.Errorf("participants not normalized: %v", ps)
	}

	tests := []struct {
		name, method, path, body string
		want                     int
		wantErr                  string
	}{
		{"get", "GET", "/v1/sessions/" + id, "", 200, ""},
		{"get unknown", "GET", "/v1/sessions/0123456789abcdef0123456789abcdef", "", 404, "not found"},
		{"get malformed id", "GET", "/v1/sessions/s.*", "", 404, "not found"},
		{"list", "GET", "/v1/sessions?virtualNumber=%2B65987654321", "", 200, ""},
		{"list without number", "GET", "/v1/sessions", "", 200, ""},
		{"list bad number", "GET", "/v1/sessions?virtualNumber=abc", "", 400, "virtualNumber"},
		{"conflict", "POST", "/v1/sessions", validSession, 409, "open session"},
		{"bad json", "POST", "/v1/sessions", `{"virtualNumber":`, 400, "body"},
		{"empty body", "POST", "/v1/sessions", ``, 400, "empty"},
		{"unknown field", "POST", "/v1/sessions", `{"virtualNumber":"+6598765432","participant":["+6512345678"]}`, 400, "participant"},
		{"wrong type", "POST", "/v1/sessions", `{"virtualNumber":6598765432,"participants":[]}`, 400, "virtualNumber"},
		{"bad number", "POST", "/v1/sessions", `{"virtualNumber":"+6598765432","participants":["+6512345678","12ab"]}`, 400, "participants[1]"},
		{"one participant", "POST", "/v1/sessions", `{"virtualNumber":"+6598765432","participants":["+6512345678"]}`, 400, "participants"},
		{"negative ttl", "POST", "/v1/sessions", `{"virtualNumber":"+6598765432","participants":["+6512345678","+6512345679"],"ttlSeconds":-1}`, 400, "ttlSeconds"},
		{"two values", "POST", "/v1/sessions", validSession + validSession, 400, "more than one"},
		{"huge body", "POST", "/v1/sessions", `{"virtualNumber":"` + strings.Repeat("1", 20<<10) + `"}`, 413, "16 KiB"},
		{"unknown route", "GET", "/v1/nothing", "", 404, "not found"},
		{"wrong method", "PUT", "/v1/sessions/" + id, "", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, hs, tt.method, tt.path, "", tt.body)
			if code != tt.want {
				t.Fatalf("%s %s: %d %v, want %d", tt.method, tt.path, code, body, tt.want)
			}
			if tt.wantErr != "" && !strings.Contains(body["error"].(string), tt.wantErr) {
				t.Errorf("error %q does not mention %q", body["error"], tt.wantErr)
			}
		})
	}

	if code, _ := do(t, hs, "DELETE", "/v1/sessions/"+id, "", ""); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code, _ := do(t, hs, "DELETE", "/v1/sessions/"+id, "", ""); code != http.StatusNotFound {
		t.Errorf("second delete: %d, want 404", code)
	}
	// The participants are free again.
	if code, body := do(t, hs, "POST", "/v1/sessions", "", validSession); code != http.StatusCreated {
		t.Errorf("create after delete: %d %v", code, body)
	}
}

func TestSessionAPIAuth(t *testing.T) {
	hs, _ := newTestServer(t, "old-token", "new-token")
	tests := []struct {
		name, path, token string
		want              int
	}{
		{"no token", "/v1/sessions?virtualNumber=6598765432", "", 401},
		{"wrong token", "/v1/sessions?virtualNumber=6598765432", "guess", 401},
		{"prefix of a token", "/v1/sessions?virtualNumber=6598765432", "old", 401},
		{"old token during rotation", "/v1/sessions?virtualNumber=6598765432", "old-token", 200},
		{"new token", "/v1/sessions?virtualNumber=6598765432", "new-token", 200},
		{"unknown route still needs auth", "/v1/other", "", 401},
		{"probes need none", "/healthz", "", 200},
		{"readiness needs none", "/readyz", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := do(t, hs, "GET", tt.path, tt.token, ""); code != tt.want {
				t.Errorf("GET %s with %q: %d %v, want %d", tt.path, tt.token, code, body, tt.want)
			}
		})
	}
}

func TestReadiness(t *testing.T) {
	hs, s := newTestServer(t)
	s.AddCheck("archive", true, func(context.Context) error { return errors.New("clickhouse down") })
	code, body := do(t, hs, "GET", "/readyz", "", "")
	if code != 200 || body["checks"].(map[string]any)["archive"] != "clickhouse down" {
		t.Errorf("advisory failure: %d %v, want 200 reporting it", code, body)
	}
	s.AddCheck("nats", false, func(context.Context) error { return errors.New("not connected") })
	code, body = do(t, hs, "GET", "/readyz", "", "")
	if code != 503 || body["status"] != "not ready" {
		t.Errorf("failing check: %d %v, want 503", code, body)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"loopback without token", Config{Addr: "127.0.0.1:8081", SessionAPI: true}, false},
		{"localhost without token", Config{Addr: "localhost:8081", SessionAPI: true}, false},
		{"ipv6 loopback without token", Config{Addr: "[::1]:8081", SessionAPI: true}, false},
		{"all interfaces without token", Config{Addr: ":8081", SessionAPI: true}, true},
		{"public without token", Config{Addr: "0.0.0.0:8081", SessionAPI: true}, true},
		{"public with token", Config{Addr: "0.0.0.0:8081", Tokens: []string{"t"}, SessionAPI: true}, false},
		{"probes only, public, no token", Config{Addr: ":8082"}, false},
		{"empty token", Config{Addr: "127.0.0.1:8081", Tokens: []string{""}}, true},
		{"limited token", Config{Addr: "0.0.0.0:8081", Tokens: []string{"t", "u@acme/globex"}, SessionAPI: true}, false},
		{"limited token without sub-accounts", Config{Addr: "127.0.0.1:8081", Tokens: []string{"u@"}}, true},
		{"limited token with an empty sub-account", Config{Addr: "127.0.0.1:8081", Tokens: []string{"u@acme//globex"}}, true},
		{"empty token with sub-accounts", Config{Addr: "127.0.0.1:8081", Tokens: []string{"@acme"}}, true},
		{"token listed twice", Config{Addr: "127.0.0.1:8081", Tokens: []string{"t@acme", "t@globex"}}, true},
		{"bad address", Config{Addr: "8081"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Errorf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestParseToken(t *testing.T) {
	tests := []struct {
		in        string
		value     string
		scope     session.Scope
		wantError bool
	}{
		{"s3cret", "s3cret", nil, false},
		{"s3cret@acme", "s3cret", session.Scope{"acme"}, false},
		{"s3cret@acme/globex", "s3cret", session.Scope{"acme", "globex"}, false},
		{"s3cret@acme/acme", "s3cret", session.Scope{"acme"}, false},
		{"s3cret@acme@x", "s3cret", session.Scope{"acme@x"}, false},
		{"s3cret@", "", nil, true},
		{"s3cret@acme/", "", nil, true},
		{"s3cret@ac me", "", nil, true},
		{"@acme", "", nil, true},
		{"", "", nil, true},
	}
	for _, tt := range tests {
		value, scope, err := ParseToken(tt.in)
		if (err != nil) != tt.wantError || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
			t.Errorf("ParseToken(%q) error %v, want error %v", tt.in, err, tt.wantError)
			continue
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseToken(%q): the error %q holds the token", tt.in, err)
		}
		if value != tt.value || !slices.Equal(scope, tt.scope) || (scope == nil) != (tt.scope == nil) {
			t.Errorf("ParseToken(%q) = %q %v, want %q %v", tt.in, value, scope, tt.value, tt.scope)
		}
	}
}
