package admin

// The admin API walked as an attacker would: every /v1/ route without a
// token, with a wrong one, too often, with hostile bodies, and over TLS;
// and the audit trail each change leaves (who, what, when), which never
// holds the token itself.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/certs"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/internal/testcert"
	"github.com/callflow/callflow/internal/testlog"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Two admin tokens configured at once, as during a rotation.
const (
	secTokenOld = "adm-old-5b0f3c6e1d7a4e2f9c8b"
	secTokenNew = "adm-new-a93e7d2c4b1f6e0a8d5c"
	secUA       = "security-test/1.0"
	secStream   = "CALLS"
)

// jsRecorder keeps audit records in a real JetStream stream, acknowledged,
// with the record id as Nats-Msg-Id: what the ingest's recorder does.
type jsRecorder struct{ js jetstream.JetStream }

func (r jsRecorder) Record(subject, id string, data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := r.js.Publish(ctx, subject, data, jetstream.WithMsgID(id))
	return err
}

// failingRecorder keeps nothing.
type failingRecorder struct{}

func (failingRecorder) Record(string, string, []byte) error {
	return errors.New("records stream unavailable")
}

// adminEnv is an admin listener serving the session API on a real
// listener, over a session store and a records stream on a real NATS
// server.
type adminEnv struct {
	t     testing.TB
	ns    *server.Server
	js    jetstream.JetStream
	store *session.Store
	srv   *Server
	url   string
	reg   *prometheus.Registry
	logs  *testlog.Buffer
}

type adminOptions struct {
	cfg      func(*Config)
	recorder func(js jetstream.JetStream) Recorder // nil: a jsRecorder
	// nats is the NATS server to use, with a connection and a session
	// store of the env's own (a second admin process on the same bucket);
	// nil starts one.
	nats *server.Server
}

func newAdminEnv(t testing.TB, o adminOptions) *adminEnv {
	t.Helper()
	ns := o.nats
	if ns == nil {
		ns = natstest.RunServer(t)
	}
	_, js := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Name: secStream, MaxAge: time.Hour, Duplicates: time.Minute, Replicas: 1}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("ensure stream: %v", err)
	}
	store, err := session.Open(ctx, js, session.Config{})
	if err != nil {
		t.Fatalf("session.Open: %v", err)
	}
	t.Cleanup(store.Close)
	e := &adminEnv{t: t, ns: ns, js: js, store: store, reg: prometheus.NewRegistry(), logs: &testlog.Buffer{}}
	cfg := Config{
		Addr:       "127.0.0.1:0",
		Tokens:     []string{secTokenOld, secTokenNew},
		SessionAPI: true,
		RateLimit:  -1,
		Instance:   "admin-test-1",
		Logger:     slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: e.reg,
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("admin.New: %v", err)
	}
	var rec Recorder = jsRecorder{js}
	if o.recorder != nil {
		rec = o.recorder(js)
	}
	srv.MountSessions(store, rec)
	srv.AddCheck("sessions_bucket", false, store.Check)
	e.srv = srv
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	e.url = scheme + "://" + ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return")
		}
	})
	return e
}

// reply is one answer of the admin API.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// call is one request: auth is the whole Authorization value ("" sends
// none), from the local address to send from ("" for 127.0.0.1).
type call struct {
	method, path, auth, from string
	body                     []byte
	// header holds more headers to send.
	header http.Header
}

func (e *adminEnv) send(c call) reply {
	e.t.Helper()
	return secSend(e.t, &http.Transport{}, e.url, c)
}

func secSend(t testing.TB, tr *http.Transport, base string, c call) reply {
	t.Helper()
	if c.from != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(c.from)}, Timeout: 5 * time.Second}
		tr.DialContext = d.DialContext
	}
	tr.DisableKeepAlives = true
	defer tr.CloseIdleConnections()
	var resp *http.Response
	// A server that refuses a body before reading all of it closes the
	// connection with the rest unread, and the kernel may reset it while
	// the client is still writing, before its transport has read the
	// answer: that race is the client's, so the request is sent again.
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequest(c.method, base+c.path, bytes.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		req.Header.Set("User-Agent", secUA)
		req.Header.Set("Content-Type", "application/json")
		for k, vs := range c.header {
			req.Header[k] = vs
		}
		resp, err = (&http.Client{Transport: tr, Timeout: 15 * time.Second}).Do(req)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ECONNRESET) || attempt == 3 {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", c.method, c.path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// wantJSONError checks status and a JSON error body: {"error": "...",
// "code": "...", "requestId": "..."}, the request id also sent as
// X-Request-Id, and nothing but strings in it.
func wantJSONError(t *testing.T, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %s, want %d", r, status)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body map[string]string
	if err := json.Unmarshal(r.body, &body); err != nil || body["error"] == "" || body["code"] == "" {
		t.Errorf("body %q is not {\"error\": ..., \"code\": ...}: %v", r.body, err)
	}
	if id := r.header.Get("X-Request-Id"); id == "" || body["requestId"] != id {
		t.Errorf("requestId %q, X-Request-Id %q: want the same, not empty", body["requestId"], id)
	}
}

// create makes a session with the given token and returns its id.
func (e *adminEnv) create(auth, body string) string {
	e.t.Helper()
	r := e.send(call{method: http.MethodPost, path: "/v1/sessions", auth: auth, body: []byte(body)})
	if r.status != http.StatusCreated {
		e.t.Fatalf("create: %s", r)
	}
	var s session.Session
	if err := json.Unmarshal(r.body, &s); err != nil || !session.ValidID(s.ID) {
		e.t.Fatalf("create answered %s: %v", r.body, err)
	}
	return s.ID
}

// auditMsg is one message of the records stream.
type auditMsg struct {
	subject, msgID string
	data           []byte
}

// records returns every message of the records stream.
func (e *adminEnv) records() []auditMsg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, secStream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []auditMsg
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			e.t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, auditMsg{subject: m.Subject, msgID: m.Header.Get(nats.MsgIdHdr), data: m.Data})
	}
	return out
}

func (e *adminEnv) refused(reason string) float64 {
	return testutil.ToFloat64(e.srv.metrics.refused.WithLabelValues(reason))
}

func fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:6])
}

func sessionBody(vn, a, b string) string {
	return fmt.Sprintf(`{"virtualNumber":%q,"participants":[%q,%q]}`, vn, a, b)
}

// TestAdminAuthenticationEveryRoute proves that every /v1/ route (known
// or not, any method) answers 401 with WWW-Authenticate and a JSON error
// to a request without a token, with an empty, wrong, truncated, extended
// or re-cased token, with a token under another scheme or none, and that
// such a request changes nothing (no session created or deleted, no audit
// record) and is counted in callflow_admin_refused_total{reason=
// "unauthorized"}. Both tokens of a rotation are accepted on every route,
// and neither token appears in the log.
func TestAdminAuthenticationEveryRoute(t *testing.T) {
	e := newAdminEnv(t, adminOptions{})
	victim := e.create("Bearer "+secTokenOld, sessionBody("+6590000001", "+6581111111", "+6582222222"))
	auditsBefore := len(e.records())
	routes := []struct {
		method, path string
		body         string
		want         int // with a right token; 0: any 2xx
	}{
		{http.MethodPost, "/v1/sessions", sessionBody("+6590000002", "+6583333333", "+6584444444"), 201},
		{http.MethodGet, "/v1/sessions?virtualNumber=%2B6590000001", "", 200},
		{http.MethodGet, "/v1/sessions", "", 200},
		{http.MethodGet, "/v1/sessions/" + victim, "", 200},
		{http.MethodPatch, "/v1/sessions/" + victim, `{"ref":"order-1"}`, 200},
		{http.MethodGet, "/v1/sessions/" + victim + "/interactions", "", 503}, // no archive configured
		{http.MethodPut, "/v1/sessions/" + victim, "{}", 405},
		{http.MethodPatch, "/v1/sessions", "{}", 405},
		{http.MethodPut, "/v1/numbers/+6590000009", `{"subAccountId":"acme"}`, 0},
		{http.MethodGet, "/v1/numbers/+6590000009", "", 200},
		{http.MethodGet, "/v1/numbers?subAccountId=acme", "", 200},
		{http.MethodDelete, "/v1/numbers/+6590000009", "", 204},
		{http.MethodPost, "/v1/numbers", "{}", 405},
		{http.MethodPut, "/v1/subaccounts/acme", `{"outOfSession":{"action":"hangup"}}`, 0},
		{http.MethodGet, "/v1/subaccounts/acme", "", 200},
		{http.MethodDelete, "/v1/subaccounts/acme", "", 405},
		{http.MethodPut, "/v1/flows/menu", `{"start":"bye","steps":{"bye":{"hangup":{}}}}`, 0},
		{http.MethodGet, "/v1/flows/menu", "", 200},
		{http.MethodGet, "/v1/flows?subAccountId=acme", "", 200},
		{http.MethodDelete, "/v1/flows/menu", "", 204},
		{http.MethodPost, "/v1/flows", "{}", 405},
		{http.MethodGet, "/v1/unknown", "", 404},
		{http.MethodGet, "/v1/", "", 404},
		{http.MethodDelete, "/v1/sessions/" + victim, "", 204}, // last: it ends the session
	}
	bad := []struct{ name, auth string }{
		{"no header", ""},
		{"empty bearer", "Bearer "},
		{"wrong token", "Bearer guess-8f1e2d3c"},
		{"token one byte short", "Bearer " + secTokenOld[:len(secTokenOld)-1]},
		{"token one byte long", "Bearer " + secTokenNew + "x"},
		{"token upper case", "Bearer " + strings.ToUpper(secTokenOld)},
		{"both tokens", "Bearer " + secTokenOld + " " + secTokenNew},
		{"token under Basic", "Basic " + secTokenOld},
		{"token without a scheme", secTokenNew},
		{"two spaces after Bearer", "Bearer  " + secTokenOld},
		{"token with %00 appended", "Bearer " + secTokenOld + "%00"},
	}
	var refused int
	for _, r := range routes {
		for _, b := range bad {
			t.Run(r.method+" "+r.path+" "+b.name, func(t *testing.T) {
				before := e.refused(RefusedUnauthorized)
				got := e.send(call{method: r.method, path: r.path, auth: b.auth, body: []byte(r.body)})
				refused++
				wantJSONError(t, got, http.StatusUnauthorized)
				if !strings.HasPrefix(got.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got.header.Get("WWW-Authenticate"))
				}
				if n := e.refused(RefusedUnauthorized); n != before+1 {
					t.Errorf("refused{unauthorized} went from %v to %v, want +1", before, n)
				}
			})
		}
	}
	// Nothing changed: the victim is still there, no session was created,
	// no audit record was written.
	if got := e.send(call{method: http.MethodGet, path: "/v1/sessions/" + victim, auth: "Bearer " + secTokenNew}); got.status != http.StatusOK {
		t.Fatalf("the session did not survive unauthorized deletes: %s", got)
	}
	if n := len(e.records()); n != auditsBefore {
		t.Errorf("%d audit records after refused requests, want %d", n, auditsBefore)
	}
	if got := e.refused(RefusedUnauthorized); got != float64(refused) {
		t.Errorf("callflow_admin_refused_total{reason=unauthorized} = %v, want %d", got, refused)
	}
	// Each token of the rotation works on every route.
	for i, tok := range []string{secTokenOld, secTokenNew} {
		id := victim
		if i == 1 {
			id = e.create("Bearer "+tok, sessionBody("+6590000001", "+6581111111", "+6582222222"))
		}
		for _, r := range routes {
			path := strings.ReplaceAll(r.path, victim, id)
			body := r.body
			if r.method == http.MethodPost {
				body = sessionBody(fmt.Sprintf("+659000001%d", i), "+6583333333", "+6584444444")
			}
			t.Run(fmt.Sprintf("token %d %s %s", i+1, r.method, r.path), func(t *testing.T) {
				got := e.send(call{method: r.method, path: path, auth: "Bearer " + tok, body: []byte(body)})
				if got.status != r.want && (r.want != 0 || got.status/100 != 2) {
					t.Errorf("%s %s with token %d: %s, want %d", r.method, path, i+1, got, r.want)
				}
			})
		}
	}
	logs := e.logs.String()
	for _, tok := range []string{secTokenOld, secTokenNew} {
		if strings.Contains(logs, tok) {
			t.Errorf("the log holds a token:\n%s", logs)
		}
	}
}

// TestAdminRateLimit proves the per-client rate limit: past its burst, a
// client gets 429 with a JSON error and a Retry-After of whole seconds, and
// each refusal is counted in callflow_admin_refused_total{reason=
// "rate_limited"}; a client guessing tokens is slowed down the same way
// (429, not another 401); another client is still served; and /healthz and
// /readyz answer 200 without a token, however often they are asked.
func TestAdminRateLimit(t *testing.T) {
	const burst = 5
	e := newAdminEnv(t, adminOptions{cfg: func(c *Config) {
		c.RateLimit, c.RateBurst = 0.001, burst // no refill during the test
	}})
	list := "/v1/sessions?virtualNumber=%2B6590000001"
	canSecond := secCanSendFrom("127.0.0.2") && secCanSendFrom("127.0.0.3")
	cases := []struct {
		name     string
		from     string
		auth     string
		requests int
		wantOK   int // status of the first burst requests
	}{
		{"a client with the right token", "", "Bearer " + secTokenNew, burst + 5, http.StatusOK},
		{"a client guessing tokens", "127.0.0.2", "Bearer guess", burst + 5, http.StatusUnauthorized},
		{"another client is not hurt", "127.0.0.3", "Bearer " + secTokenOld, burst, http.StatusOK},
	}
	limited := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.from != "" && !canSecond {
				t.Skipf("cannot send from %s on this host", c.from)
			}
			for i := range c.requests {
				got := e.send(call{method: http.MethodGet, path: list, auth: c.auth, from: c.from})
				if i < burst {
					if got.status != c.wantOK {
						t.Fatalf("request %d: %s, want %d", i+1, got, c.wantOK)
					}
					continue
				}
				limited++
				wantJSONError(t, got, http.StatusTooManyRequests)
				ra, err := strconv.Atoi(got.header.Get("Retry-After"))
				if err != nil || ra < 1 {
					t.Errorf("Retry-After = %q, want whole seconds >= 1", got.header.Get("Retry-After"))
				}
			}
		})
	}
	if got := e.refused(RefusedRateLimited); got != float64(limited) {
		t.Errorf("callflow_admin_refused_total{reason=rate_limited} = %v, want %d", got, limited)
	}
	// Probes are never limited nor authenticated, even from the limited
	// client.
	for _, p := range []string{"/healthz", "/readyz"} {
		for i := range 3 * burst {
			got := e.send(call{method: http.MethodGet, path: p})
			if got.status != http.StatusOK {
				t.Fatalf("%s #%d: %s, want 200", p, i+1, got)
			}
		}
	}
	if got := e.refused(RefusedRateLimited); got != float64(limited) {
		t.Errorf("probes were counted as rate limited: %v, want %d", got, limited)
	}
}

// TestAdminRateLimitDefault: the default per-client limit lets a CRM's
// burst of 120 creates through at once (at 20/s with bursts of 40, 81 of
// them were refused); TestAdminRateLimit shows a client refused past its
// burst.
func TestAdminRateLimitDefault(t *testing.T) {
	e := newAdminEnv(t, adminOptions{cfg: func(c *Config) { c.RateLimit, c.RateBurst = 0, 0 }})
	if e.srv.cfg.RateLimit != DefaultRateLimit || e.srv.cfg.RateBurst != DefaultRateBurst {
		t.Fatalf("defaults %v/s, burst %d, want %v/s, burst %d", e.srv.cfg.RateLimit, e.srv.cfg.RateBurst, DefaultRateLimit, DefaultRateBurst)
	}
	for i := range 120 {
		body := sessionBody("+6590000001", fmt.Sprintf("+6581%06d", i), fmt.Sprintf("+6582%06d", i))
		if r := e.send(call{method: http.MethodPost, path: "/v1/sessions", auth: "Bearer " + secTokenNew, body: []byte(body)}); r.status != http.StatusCreated {
			t.Fatalf("create %d of the burst: %s", i+1, r)
		}
	}
	if got := e.refused(RefusedRateLimited); got != 0 {
		t.Errorf("%v requests of the burst refused, want none", got)
	}
}

// secCanSendFrom reports whether this host can send from addr (Linux
// routes all of 127.0.0.0/8 to lo).
func secCanSendFrom(addr string) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return false
	}
	defer ln.Close()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}, Timeout: time.Second}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestAdminAudit proves the audit trail: each create and delete writes one
// record on calls.audit.create / calls.audit.delete, acknowledged by
// JetStream under its own id, whose event parses with wire.ParseEvent as
// a CALLFLOW SESSION_AUDIT event naming the session, the operation, the
// time, the fingerprint of the token used (each rotated token its own),
// the client's address and user agent, and never the token itself. A
// change refused (400, 409, 413, 401, 404) writes no record.
func TestAdminAudit(t *testing.T) {
	e := newAdminEnv(t, adminOptions{})
	var created string
	cases := []struct {
		name   string
		call   func() call
		status int
		op     string // audit operation expected, "" for none
		token  string
	}{
		{"create with the old token", func() call {
			return call{method: http.MethodPost, path: "/v1/sessions", auth: "Bearer " + secTokenOld, body: []byte(sessionBody("+6590000001", "+6581111111", "+6582222222"))}
		}, 201, wire.AuditCreate, secTokenOld},
		{"create that conflicts (409)", func() call {
			return call{method: http.MethodPost, path: "/v1/sessions", auth: "Bearer " + secTokenOld, body: []byte(sessionBody("+6590000001", "+6581111111", "+6589999999"))}
		}, 409, "", ""},
		{"create that is invalid (400)", func() call {
			return call{method: http.MethodPost, path: "/v1/sessions", auth: "Bearer " + secTokenOld, body: []byte(sessionBody("+6590000001", "+6581111111", "+6581111111"))}
		}, 400, "", ""},
		{"create with a malformed body (400)", func() call {
			return call{method: http.MethodPost, path: "/v1/sessions", auth: "Bearer " + secTokenOld, body: []byte(`{"virtualNumber":`)}
		}, 400, "", ""},
		{"create too big (413)", func() call {
			return call{method: http.MethodPost, path: "/v1/sessions", auth: "Bearer " + secTokenOld, body: []byte(`{"virtualNumber":"` + strings.Repeat("1", 32<<10) + `"}`)}
		}, 413, "", ""},
		{"create without a token (401)", func() call {
			return call{method: http.MethodPost, path: "/v1/sessions", body: []byte(sessionBody("+6590000003", "+6581111111", "+6582222222"))}
		}, 401, "", ""},
		{"delete without a token (401)", func() call {
			return call{method: http.MethodDelete, path: "/v1/sessions/" + created}
		}, 401, "", ""},
		{"delete of an unknown session (404)", func() call {
			return call{method: http.MethodDelete, path: "/v1/sessions/0123456789abcdef0123456789abcdef", auth: "Bearer " + secTokenNew}
		}, 404, "", ""},
		{"delete of a malformed id (404)", func() call {
			return call{method: http.MethodDelete, path: "/v1/sessions/s.*", auth: "Bearer " + secTokenNew}
		}, 404, "", ""},
		{"delete with the new token", func() call {
			return call{method: http.MethodDelete, path: "/v1/sessions/" + created, auth: "Bearer " + secTokenNew}
		}, 204, wire.AuditDelete, secTokenNew},
		{"second delete (404)", func() call {
			return call{method: http.MethodDelete, path: "/v1/sessions/" + created, auth: "Bearer " + secTokenNew}
		}, 404, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.records()
			start := time.Now().UTC().Add(-time.Second)
			got := e.send(c.call())
			if got.status != c.status {
				t.Fatalf("%s, want %d", got, c.status)
			}
			if c.status == http.StatusCreated {
				var s session.Session
				if err := json.Unmarshal(got.body, &s); err != nil {
					t.Fatal(err)
				}
				created = s.ID
			}
			after := e.records()
			if c.op == "" {
				if len(after) != len(before) {
					t.Fatalf("a refused change wrote %d audit records", len(after)-len(before))
				}
				return
			}
			if len(after) != len(before)+1 {
				t.Fatalf("%d audit records written, want 1", len(after)-len(before))
			}
			m := after[len(after)-1]
			secCheckAudit(t, m, c.op, created, c.token, start)
		})
	}
}

// secCheckAudit checks one audit record.
func secCheckAudit(t *testing.T, m auditMsg, op, sessionID, token string, since time.Time) {
	t.Helper()
	if want := "calls.audit." + op; m.subject != want {
		t.Errorf("subject = %q, want %q", m.subject, want)
	}
	for _, secret := range []string{secTokenOld, secTokenNew} {
		if bytes.Contains(m.data, []byte(secret)) {
			t.Fatalf("the audit record holds a token: %s", m.data)
		}
	}
	rec, err := wire.ParseRecord(m.data)
	if err != nil {
		t.Fatalf("record does not parse: %v: %s", err, m.data)
	}
	if rec.EventType != wire.EventSessionAudit || rec.ID == "" || m.msgID != rec.ID || rec.Instance != "admin-test-1" {
		t.Errorf("record %+v (Nats-Msg-Id %q)", rec, m.msgID)
	}
	ev, err := wire.ParseEvent(rec.Event)
	if err != nil {
		t.Fatalf("audit event does not parse as an event: %v: %s", err, rec.Event)
	}
	if ev.Namespace != wire.AuditNamespace || ev.EventType != wire.EventSessionAudit || ev.Payload.SessionID != sessionID || ev.Payload.EventID != rec.ID {
		t.Errorf("event %+v, payload %+v", ev, ev.Payload)
	}
	var env struct {
		Payload wire.Audit `json:"payload"`
	}
	if err := json.Unmarshal(rec.Event, &env); err != nil {
		t.Fatal(err)
	}
	a := env.Payload
	if a.Operation != op || a.SessionID != sessionID {
		t.Errorf("audit says %s of %s, want %s of %s", a.Operation, a.SessionID, op, sessionID)
	}
	if a.Actor.Token != fingerprint(token) {
		t.Errorf("actor token = %q, want the fingerprint %q", a.Actor.Token, fingerprint(token))
	}
	if a.Actor.Address != "127.0.0.1" || a.Actor.UserAgent != secUA {
		t.Errorf("actor = %+v, want 127.0.0.1 with user agent %s", a.Actor, secUA)
	}
	if a.Timestamp.Before(since) || a.Timestamp.After(time.Now().Add(time.Second)) {
		t.Errorf("audit time %v, want about now", a.Timestamp)
	}
	if a.VirtualNumber != "+6590000001" || len(a.Participants) != 2 {
		t.Errorf("audit does not name the session's numbers: %+v", a)
	}
}

// TestAdminAuditNotKept proves that a change whose audit record cannot be
// kept is counted in callflow_admin_audit_failures_total and logged
// (without the token), and the client still gets the change's answer.
func TestAdminAuditNotKept(t *testing.T) {
	e := newAdminEnv(t, adminOptions{recorder: func(jetstream.JetStream) Recorder { return failingRecorder{} }})
	id := e.create("Bearer "+secTokenNew, sessionBody("+6590000001", "+6581111111", "+6582222222"))
	if got := e.send(call{method: http.MethodDelete, path: "/v1/sessions/" + id, auth: "Bearer " + secTokenNew}); got.status != http.StatusNoContent {
		t.Fatalf("delete: %s", got)
	}
	if n := testutil.ToFloat64(e.srv.metrics.auditFailures); n != 2 {
		t.Errorf("callflow_admin_audit_failures_total = %v, want 2", n)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "audit record") {
		t.Errorf("lost audit records not logged:\n%s", logs)
	}
	if strings.Contains(logs, secTokenNew) {
		t.Errorf("the log holds the token:\n%s", logs)
	}
}

// TestAdminHostileBodies proves that hostile bodies posted to
// /v1/sessions (deep nesting, huge bodies, strings and numbers, invalid
// UTF-8, NUL bytes, unknown fields, the wrong type for every field,
// numbers with letters, more than one value) each get a 4xx with a JSON
// error, never a 5xx, create nothing and write no audit record; a valid
// request is served afterwards.
func TestAdminHostileBodies(t *testing.T) {
	e := newAdminEnv(t, adminOptions{})
	const vn, a, b = "+6590000001", "+6581111111", "+6582222222"
	valid := sessionBody(vn, a, b)
	with := func(field, raw string) string {
		var m map[string]any
		if err := json.Unmarshal([]byte(valid), &m); err != nil {
			t.Fatal(err)
		}
		m[field] = "@@raw@@"
		out, _ := json.Marshal(m)
		return strings.Replace(string(out), `"@@raw@@"`, raw, 1)
	}
	nest := func(open, close string, depth int) string {
		return strings.Repeat(open, depth) + "1" + strings.Repeat(close, depth)
	}
	cases := []struct {
		name string
		body string
		want int
	}{
		{"arrays nested 8000 deep", with("greeting", nest("[", "]", 8000)), 400},
		{"objects nested 2500 deep", with("greeting", nest(`{"a":`, "}", 2500)), 400},
		{"arrays nested 100000 deep, past the decoder depth limit", nest("[", "]", 100000), 400},
		{"unclosed nesting", strings.Repeat("[", 15000), 400},
		{"one megabyte body", with("greeting", `{"text":"`+strings.Repeat("x", 1<<20)+`"}`), 413},
		{"huge virtualNumber", with("virtualNumber", `"`+strings.Repeat("6", 15000)+`"`), 400},
		{"huge ttlSeconds", with("ttlSeconds", strings.Repeat("9", 5000)), 400},
		{"ttlSeconds beyond int64", with("ttlSeconds", "9223372036854775808"), 400},
		{"ttlSeconds at int64 max", with("ttlSeconds", "9223372036854775807"), 400},
		{"ttlSeconds at int64 min", with("ttlSeconds", "-9223372036854775808"), 400},
		{"ttlSeconds 1e400", with("ttlSeconds", "1e400"), 400},
		{"ttlSeconds a fraction", with("ttlSeconds", "1.5"), 400},
		{"greeting text too long", with("greeting", `{"text":"`+strings.Repeat("g", 5000)+`"}`), 400},
		{"greeting speed 1e999", with("greeting", `{"text":"hi","speed":1e999}`), 400},
		{"greeting speed negative", with("greeting", `{"text":"hi","speed":-1}`), 400},
		{"greeting repetition negative", with("greeting", `{"text":"hi","repetition":-1}`), 400},
		{"invalid UTF-8 in virtualNumber", with("virtualNumber", "\"+6590\xff\xfe00001\""), 400},
		{"invalid UTF-8 in a participant", fmt.Sprintf("{\"virtualNumber\":%q,\"participants\":[\"\xc0\xae6581111111\",%q]}", vn, b), 400},
		{"invalid UTF-8 between tokens", "{\xff\"virtualNumber\":\"" + vn + "\"}", 400},
		{"raw NUL in a string", with("virtualNumber", "\"+6590\x0000001\""), 400},
		{"escaped NUL in a number", with("virtualNumber", `"+6590\u000000001"`), 400},
		{"NUL after the body", valid + "\x00", 400},
		{"unknown field", with("participant", `["+6583333333"]`), 400},
		{"unknown nested field", with("greeting", `{"text":"hi","voice":"x"}`), 400},
		{"virtualNumber a number", with("virtualNumber", "6590000001"), 400},
		{"virtualNumber an array", with("virtualNumber", `["+6590000001"]`), 400},
		{"virtualNumber an object", with("virtualNumber", `{"n":"+6590000001"}`), 400},
		{"virtualNumber a bool", with("virtualNumber", "true"), 400},
		{"virtualNumber null", with("virtualNumber", "null"), 400},
		{"participants a string", with("participants", `"+6581111111,+6582222222"`), 400},
		{"participants numbers", with("participants", "[6581111111,6582222222]"), 400},
		{"participants an object", with("participants", `{"a":"+6581111111"}`), 400},
		{"participants three", with("participants", `["+6581111111","+6582222222","+6583333333"]`), 400},
		{"participants nested", with("participants", `[["+6581111111"],["+6582222222"]]`), 400},
		{"ttlSeconds a string", with("ttlSeconds", `"3600"`), 400},
		{"ttlSeconds a bool", with("ttlSeconds", "true"), 400},
		{"callRecording a string", with("callRecording", `"true"`), 400},
		{"callRecording a number", with("callRecording", "1"), 400},
		{"greeting a string", with("greeting", `"hello"`), 400},
		{"greeting text a number", with("greeting", `{"text":5}`), 400},
		{"greeting repetition a string", with("greeting", `{"text":"hi","repetition":"2"}`), 400},
		{"greeting speed a string", with("greeting", `{"text":"hi","speed":"fast"}`), 400},
		{"virtualNumber with letters", with("virtualNumber", `"+65abc00001"`), 400},
		{"participant with letters", with("participants", `["+6581111111x","+6582222222"]`), 400},
		{"participant in hex", with("participants", `["0x6581111111","+6582222222"]`), 400},
		{"ttlSeconds with letters", with("ttlSeconds", "36e"), 400},
		{"ttlSeconds in hex", with("ttlSeconds", "0x10"), 400},
		{"ttlSeconds NaN", with("ttlSeconds", "NaN"), 400},
		{"ttlSeconds with a plus", with("ttlSeconds", "+60"), 400},
		{"empty body", "", 400},
		{"null", "null", 400},
		{"an array", "[" + valid + "]", 400},
		{"a string", `"` + valid + `"`, 400},
		{"two objects", valid + valid, 400},
		{"an object then a closing brace", valid + "}", 400},
		{"an object then a closing bracket", valid + "]", 400},
		{"an object then garbage", valid + " garbage", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.records())
			got := e.send(call{method: http.MethodPost, path: "/v1/sessions", auth: "Bearer " + secTokenNew, body: []byte(c.body)})
			if got.status >= 500 {
				t.Fatalf("server error: %s", got)
			}
			if got.status < 400 {
				// Clean up, so that later cases are not 409 for this one.
				var s session.Session
				if json.Unmarshal(got.body, &s) == nil && s.ID != "" {
					e.send(call{method: http.MethodDelete, path: "/v1/sessions/" + s.ID, auth: "Bearer " + secTokenNew})
				}
				t.Fatalf("hostile body accepted: %s, want %d", got, c.want)
			}
			wantJSONError(t, got, c.want)
			if n := len(e.records()); n != before {
				t.Errorf("a refused body wrote %d audit records", n-before)
			}
		})
	}
	// Nothing was created: the valid request is not a conflict.
	if got := e.send(call{method: http.MethodPost, path: "/v1/sessions", auth: "Bearer " + secTokenNew, body: []byte(valid)}); got.status != http.StatusCreated {
		t.Fatalf("valid create after the hostile ones: %s", got)
	}
}

// TestAdminTLS proves the TLS listener: a client trusting the certificate
// is served with a token (and refused without one), a plain-HTTP client
// is not served, and after the files are replaced and Reload is called,
// new handshakes see the new certificate.
func TestAdminTLS(t *testing.T) {
	first := testcert.SelfSigned(t, "admin-first", x509.ExtKeyUsageServerAuth)
	certFile, keyFile := first.WriteIn(t, t.TempDir(), "admin")
	rl, err := certs.New(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	e := newAdminEnv(t, adminOptions{cfg: func(c *Config) { c.TLS = rl }})
	trusting := func(roots ...*x509.Certificate) *http.Transport {
		pool := x509.NewCertPool()
		for _, c := range roots {
			pool.AddCert(c)
		}
		return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	list := call{method: http.MethodGet, path: "/v1/sessions?virtualNumber=%2B6590000001", auth: "Bearer " + secTokenNew}
	if got := secSend(t, trusting(first.Cert), e.url, list); got.status != http.StatusOK {
		t.Errorf("TLS with a token: %s, want 200", got)
	}
	noToken := list
	noToken.auth = ""
	if got := secSend(t, trusting(first.Cert), e.url, noToken); got.status != http.StatusUnauthorized {
		t.Errorf("TLS without a token: %s, want 401", got)
	}
	plain := strings.Replace(e.url, "https://", "http://", 1)
	req, _ := http.NewRequest(http.MethodGet, plain+list.path, nil)
	req.Header.Set("Authorization", list.auth)
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || bytes.Contains(b, []byte("sessions")) {
			t.Errorf("plain HTTP was served: %d %s", resp.StatusCode, b)
		}
	}

	second := testcert.SelfSigned(t, "admin-second", x509.ExtKeyUsageServerAuth)
	second.Write(t, certFile, keyFile)
	if err := rl.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	tr := trusting(second.Cert)
	var peer *x509.Certificate
	tr.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
		peer = cs.PeerCertificates[0]
		return nil
	}
	if got := secSend(t, tr, e.url, list); got.status != http.StatusOK {
		t.Errorf("after Reload: %s", got)
	}
	if peer == nil || !peer.Equal(second.Cert) {
		t.Errorf("after Reload the server presented %v, want the second certificate", peer)
	}
}
