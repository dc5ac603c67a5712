package ingest

// The webhook walked as an attacker would: without credentials, with wrong
// ones, from the wrong network, through a proxy it does not trust, with
// oversized, slow and hostile requests, and over TLS. Every case gets its
// documented answer, refused requests are neither decided nor recorded,
// and a legitimate call is still answered afterwards (and, for the slow
// clients, meanwhile).

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/certs"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/testcert"
	"github.com/callflow/callflow/internal/testlog"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The two webhook secrets configured at once, as during a rotation: the
// httpAuthHeader values 8x8 sends in the Authorization header.
const (
	secOldSecret = "Basic Y2FsbGZsb3c6b2xkLXNlY3JldC0xMjM0NTY3ODk="
	secNewSecret = "Bearer 8x8-webhook-new-secret-2f6c1d0e9a"
)

// secEnv is an ingest on a real NATS server with a real decider, its
// metrics in their own registry, a spy that counts every decide request
// the ingest sends, and a log kept for inspection.
type secEnv struct {
	*env
	reg  *prometheus.Registry
	spy  *atomic.Int64
	logs *testlog.Buffer
}

func newSecEnv(t *testing.T, cfg func(*Config)) *secEnv {
	t.Helper()
	reg := prometheus.NewRegistry()
	logs := &testlog.Buffer{}
	e := newEnv(t, envOptions{deciders: 1, cfg: func(c *Config) {
		c.Metrics = NewMetrics(reg)
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if cfg != nil {
			cfg(c)
		}
	}})
	nc, _ := natstest.Connect(t, e.ns)
	var spy atomic.Int64
	sub, err := nc.Subscribe(wire.DecideSubject, func(*nats.Msg) { spy.Add(1) })
	if err != nil {
		t.Fatalf("spy subscribe: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("spy flush: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return &secEnv{env: e, reg: reg, spy: &spy, logs: logs}
}

// secRequest is one HTTP request of an attacker (or of 8x8).
type secRequest struct {
	method, path string
	auth         []string // Authorization values, one header line each
	xff          []string // X-Forwarded-For values, one header line each
	from         string   // local address to send from (default 127.0.0.1)
	body         []byte
}

// send sends r with a client of its own (no connection reuse, so that each
// request is judged on its own connection and source address).
func (e *secEnv) send(r secRequest) (answer, error) {
	method, path := r.method, r.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/vca"
	}
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(r.body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	for _, a := range r.auth {
		req.Header.Add("Authorization", a)
	}
	for _, x := range r.xff {
		req.Header.Add("X-Forwarded-For", x)
	}
	client := secClient(r.from)
	defer client.CloseIdleConnections()
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b, elapsed: time.Since(start)}, nil
}

func (e *secEnv) mustSend(r secRequest) answer {
	e.t.Helper()
	a, err := e.send(r)
	if err != nil {
		e.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	return a
}

// secClient is an HTTP client without keep-alive that sends from the local
// address from ("" for the system's choice, 127.0.0.1).
func secClient(from string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	return &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
	}
}

// secCanSendFrom reports whether this host can send from a second loopback
// address (Linux routes all of 127.0.0.0/8 to lo; other systems may not).
func secCanSendFrom(addr string) bool {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}, Timeout: time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return false
	}
	defer ln.Close()
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// refused is the value of callflow_webhook_refused_total{reason}.
func (e *secEnv) refused(reason string) float64 {
	return testutil.ToFloat64(e.srv.metrics.refused.WithLabelValues(reason))
}

// gatheredValue is the value of the unlabelled counter or gauge name.
func (e *secEnv) gatheredValue(name string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64 // over every series of the family
		for _, m := range mf.GetMetric() {
			if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			} else {
				sum += m.GetCounter().GetValue()
			}
		}
		return sum
	}
	e.t.Fatalf("metric %s not registered", name)
	return 0
}

// legit posts an authorized CALL_ACTION with a fresh eventId and checks
// that it gets a callflow; it is the barrier after which the spy has seen
// every decide request sent before it.
func (e *secEnv) legit(id string, r secRequest) answer {
	e.t.Helper()
	r.body = callAction(e.t, id)
	a := e.mustSend(r)
	wantCallflow(e.t, a)
	return a
}

// wantDecided waits until the spy has seen exactly n decide requests (the
// requests of one connection arrive in order, so once the last legitimate
// call's is in, any earlier one is too).
func (e *secEnv) wantDecided(n int64) {
	e.t.Helper()
	natstest.CheckFor(e.t, 10*time.Second, 5*time.Millisecond, func() error {
		if got := e.spy.Load(); got != n {
			return fmt.Errorf("%d decide requests sent, want %d", got, n)
		}
		return nil
	})
}

// wantNoneDecided checks that the ingestor sent no decide request, where
// no call was served that could be the barrier of wantDecided. The barrier
// is then a decide request the test sends itself and a decider answers:
// the ingestor answers a call only after the server has routed its decide
// request (and queued it to the spy), so the spy has seen any request sent
// for a refused call before it sees the barrier, queued behind.
func (e *secEnv) wantNoneDecided() {
	e.t.Helper()
	barrier := wire.DecideRequest{EventID: "spy-barrier", CallID: "spy-barrier", SessionID: "spy-barrier",
		SubAccountID: seedSubAccount, Source: seedSource, Destination: seedDestination}
	if _, err := e.nc.Request(wire.DecideSubject, barrier.AppendJSON(nil), 10*time.Second); err != nil {
		e.t.Fatalf("barrier decide request: %v", err)
	}
	e.wantDecided(1)
}

// wantRecords checks that the records stream holds n messages and the
// spool none: refused requests reach neither.
func (e *secEnv) wantRecords(n uint64) {
	e.t.Helper()
	if got := e.count(); got != n {
		e.t.Errorf("%d records in the stream, want %d", got, n)
	}
	if sp := readSpool(e.t, e.cfg.DataDir); len(sp) != 0 {
		e.t.Errorf("%d records in the spool, want none", len(sp))
	}
}

// TestWebhookAuthentication proves the Authorization check: no header, an
// empty one, a wrong value, the right value in another case, one byte
// shorter or longer, both secrets at once or a secret without its scheme
// all get 401 with WWW-Authenticate and a JSON error naming the header,
// on any path and method (strangers do not learn which paths exist); each
// of the two configured secrets gets its callflow (rotation without
// downtime). A refused request is counted in
// callflow_webhook_refused_total{reason="unauthorized"}, never sent to a
// decider, never recorded (stream and spool), and neither the secrets nor
// the guesses appear in the log.
func TestWebhookAuthentication(t *testing.T) {
	e := newSecEnv(t, func(c *Config) { c.Auth = []string{secOldSecret, secNewSecret} })
	const guess = "Bearer attacker-guess-7c1f"
	cases := []struct {
		name         string
		method, path string
		auth         []string
		want         int
	}{
		{name: "no Authorization header", want: 401},
		{name: "empty value", auth: []string{""}, want: 401},
		{name: "wrong value", auth: []string{guess}, want: 401},
		{name: "old secret lower case", auth: []string{strings.ToLower(secOldSecret)}, want: 401},
		{name: "new secret upper case", auth: []string{strings.ToUpper(secNewSecret)}, want: 401},
		{name: "old secret one byte short", auth: []string{secOldSecret[:len(secOldSecret)-1]}, want: 401},
		{name: "new secret one byte long", auth: []string{secNewSecret + "0"}, want: 401},
		{name: "both secrets in one value", auth: []string{secOldSecret + ", " + secNewSecret}, want: 401},
		{name: "scheme only", auth: []string{"Basic"}, want: 401},
		{name: "secret without its scheme", auth: []string{strings.TrimPrefix(secNewSecret, "Bearer ")}, want: 401},
		{name: "secret as a bearer token of another scheme", auth: []string{"Bearer " + strings.TrimPrefix(secOldSecret, "Basic ")}, want: 401},
		{name: "GET on an unknown path without credentials", method: http.MethodGet, path: "/admin", want: 401},
		{name: "POST on another path without credentials", path: "/v1/sessions", want: 401},
		{name: "DELETE without credentials", method: http.MethodDelete, want: 401},
		{name: "old secret", auth: []string{secOldSecret}, want: 200},
		{name: "new secret", auth: []string{secNewSecret}, want: 200},
		{name: "old secret again after the new one", auth: []string{secOldSecret}, want: 200},
		{name: "right secret on an unknown path", path: "/vca2", auth: []string{secNewSecret}, want: 404},
	}
	var refused, answered int
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.refused(RefusedUnauthorized)
			a := e.mustSend(secRequest{method: c.method, path: c.path, auth: c.auth, body: callAction(t, fmt.Sprintf("auth-%d", i))})
			switch c.want {
			case http.StatusUnauthorized:
				refused++
				wantError(t, a, http.StatusUnauthorized, "Authorization")
				if a.header.Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
				if got := e.refused(RefusedUnauthorized); got != before+1 {
					t.Errorf("refused{unauthorized} went from %v to %v, want +1", before, got)
				}
			case http.StatusOK:
				answered++
				wantCallflow(t, a)
			default:
				wantError(t, a, c.want, "")
			}
		})
	}
	// Barrier: a legitimate call, then every decide request is in.
	e.legit("auth-final", secRequest{auth: []string{secNewSecret}})
	answered++
	e.wantDecided(int64(answered))
	e.wantRecords(uint64(answered))
	if got := e.refused(RefusedUnauthorized); got != float64(refused) {
		t.Errorf("callflow_webhook_refused_total{reason=unauthorized} = %v, want %d", got, refused)
	}
	if s := e.srv.Stats(); s.Decided != uint64(answered) || s.Recorded != uint64(answered) {
		t.Errorf("stats = %+v, want %d decided and recorded", s, answered)
	}
	logs := e.logs.String()
	for _, secret := range []string{secOldSecret, secNewSecret, strings.TrimPrefix(secOldSecret, "Basic "), strings.TrimPrefix(secNewSecret, "Bearer "), guess} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds the credential %q:\n%s", secret, logs)
		}
	}
}

// TestWebhookAllowList proves the network check: a peer outside
// --webhook-allow-cidrs gets 403 (before and regardless of credentials) and
// the refusal is counted; a peer inside is served. X-Forwarded-For is
// ignored unless the direct peer is a trusted proxy (so a client cannot
// claim an allowed address); behind a trusted proxy the rightmost address
// that is not a trusted proxy decides, entries left of it (written by the
// client) prove nothing, and an unreadable entry is refused. Refused
// requests are neither decided nor recorded.
func TestWebhookAllowList(t *testing.T) {
	const (
		allowed8x8 = "203.0.113.0/24" // stands for 8x8's published ranges
		inRange    = "203.0.113.5"
		outside    = "198.51.100.7"
	)
	second := secCanSendFrom("127.0.0.2")
	type row struct {
		name string
		from string // source address (default 127.0.0.1)
		xff  []string
		auth []string
		want int
	}
	configs := []struct {
		name             string
		allow, trusted   []string
		rows             []row
		needsSecondLocal bool
	}{
		{
			name: "peer outside the list", allow: []string{"10.0.0.0/8"},
			rows: []row{
				{name: "without credentials: 403 before 401", want: 403},
				{name: "with the right secret", auth: []string{secNewSecret}, want: 403},
				{name: "claiming an allowed address in X-Forwarded-For", xff: []string{"10.1.2.3"}, auth: []string{secNewSecret}, want: 403},
			},
		},
		{
			name: "peer in the list", allow: []string{"127.0.0.1/32", "::1/128"},
			rows: []row{
				{name: "right secret", auth: []string{secNewSecret}, want: 200},
				{name: "no secret", want: 401},
				{name: "with a forwarded address outside the list (ignored)", xff: []string{outside}, auth: []string{secNewSecret}, want: 200},
				{name: "another loopback address, not in the list", from: "127.0.0.2", auth: []string{secNewSecret}, want: 403},
			},
			needsSecondLocal: true,
		},
		{
			name: "spoofing without a trusted proxy", allow: []string{allowed8x8}, trusted: []string{"10.0.0.0/8"},
			rows: []row{
				{name: "no X-Forwarded-For", auth: []string{secNewSecret}, want: 403},
				{name: "X-Forwarded-For claims an allowed address", xff: []string{inRange}, auth: []string{secNewSecret}, want: 403},
				{name: "X-Forwarded-For claims an allowed address behind a trusted one", xff: []string{inRange + ", 10.0.0.9"}, auth: []string{secNewSecret}, want: 403},
			},
		},
		{
			name: "behind a trusted proxy", allow: []string{allowed8x8}, trusted: []string{"127.0.0.1/32", "10.0.0.0/8"},
			rows: []row{
				{name: "client in range", xff: []string{inRange}, auth: []string{secNewSecret}, want: 200},
				{name: "client in range without credentials", xff: []string{inRange}, want: 401},
				{name: "client out of range", xff: []string{outside}, auth: []string{secNewSecret}, want: 403},
				{name: "spoofed allowed entry left of the real client", xff: []string{inRange + ", " + outside}, auth: []string{secNewSecret}, want: 403},
				{name: "spoofed entry left of an allowed client", xff: []string{outside + ", " + inRange}, auth: []string{secNewSecret}, want: 200},
				{name: "allowed client behind two trusted proxies", xff: []string{inRange + ",10.0.0.1, 10.2.3.4"}, auth: []string{secNewSecret}, want: 200},
				{name: "two header lines, the last one decides (out)", xff: []string{inRange, outside}, auth: []string{secNewSecret}, want: 403},
				{name: "two header lines, the last one decides (in)", xff: []string{outside, inRange}, auth: []string{secNewSecret}, want: 200},
				{name: "IPv4-mapped IPv6 client in range", xff: []string{"::ffff:" + inRange}, auth: []string{secNewSecret}, want: 200},
				{name: "no X-Forwarded-For: the proxy itself is not allowed", auth: []string{secNewSecret}, want: 403},
				{name: "only trusted proxies in X-Forwarded-For", xff: []string{"10.0.0.1, 10.0.0.2"}, auth: []string{secNewSecret}, want: 403},
				{name: "garbage", xff: []string{"garbage"}, auth: []string{secNewSecret}, want: 403},
				{name: "garbage right of an allowed address", xff: []string{inRange + ", garbage"}, auth: []string{secNewSecret}, want: 403},
				{name: "address with a port", xff: []string{inRange + ":443"}, auth: []string{secNewSecret}, want: 403},
				{name: "CIDR instead of an address", xff: []string{allowed8x8}, auth: []string{secNewSecret}, want: 403},
				{name: "empty entry", xff: []string{inRange + ", "}, auth: []string{secNewSecret}, want: 403},
				{name: "huge list", xff: []string{strings.Repeat(outside+", ", 300) + "x"}, auth: []string{secNewSecret}, want: 403},
			},
		},
	}
	for _, cf := range configs {
		t.Run(cf.name, func(t *testing.T) {
			allow, err := ParsePrefixes(cf.allow)
			if err != nil {
				t.Fatal(err)
			}
			trusted, err := ParsePrefixes(cf.trusted)
			if err != nil {
				t.Fatal(err)
			}
			e := newSecEnv(t, func(c *Config) {
				c.Auth = []string{secNewSecret}
				c.AllowCIDRs, c.TrustedProxies = allow, trusted
			})
			var served, network, unauth int
			for i, r := range cf.rows {
				t.Run(r.name, func(t *testing.T) {
					if r.from != "" && !second {
						t.Skipf("cannot send from %s on this host", r.from)
					}
					a := e.mustSend(secRequest{from: r.from, xff: r.xff, auth: r.auth, body: callAction(t, fmt.Sprintf("net-%d", i))})
					switch r.want {
					case http.StatusOK:
						served++
						wantCallflow(t, a)
					case http.StatusForbidden:
						network++
						wantError(t, a, http.StatusForbidden, "not allowed")
					case http.StatusUnauthorized:
						unauth++
						wantError(t, a, http.StatusUnauthorized, "Authorization")
					default:
						t.Fatalf("bad test row: want %d", r.want)
					}
				})
			}
			if got := e.refused(RefusedNetwork); got != float64(network) {
				t.Errorf("refused{network} = %v, want %d", got, network)
			}
			if got := e.refused(RefusedUnauthorized); got != float64(unauth) {
				t.Errorf("refused{unauthorized} = %v, want %d", got, unauth)
			}
			if served == 0 {
				// Nothing was allowed through: no call can be the
				// barrier on this configuration.
				e.wantNoneDecided()
				e.wantRecords(0)
				return
			}
			e.wantDecided(int64(served))
			e.wantRecords(uint64(served))
		})
	}
}

// TestWebhookSizeLimits proves that a body over --http-max-body gets 413
// (with or without Content-Length) and a header over --http-max-header-bytes
// gets 431, each as a JSON error, counted in callflow_webhook_refused_total,
// neither decided nor recorded, and that a legitimate call is answered
// afterwards.
func TestWebhookSizeLimits(t *testing.T) {
	const maxBody, maxHeader = 4096, 2048
	e := newSecEnv(t, func(c *Config) {
		c.Auth = []string{secNewSecret}
		c.MaxBody, c.MaxHeaderBytes = maxBody, maxHeader
	})
	big := event(t, "", map[string]any{"eventId": "big", "description": strings.Repeat("x", maxBody)})
	cases := []struct {
		name    string
		send    func() (answer, error)
		status  int
		reason  string
		mention string
	}{
		{"body over the limit", func() (answer, error) {
			return e.send(secRequest{auth: []string{secNewSecret}, body: big})
		}, 413, RefusedBodyTooLarge, "limit"},
		{"body over the limit, chunked", func() (answer, error) {
			req, _ := http.NewRequest(http.MethodPost, e.url+"/vca", io.MultiReader(bytes.NewReader(big)))
			req.Header.Set("Authorization", secNewSecret)
			return secDo(req)
		}, 413, RefusedBodyTooLarge, "limit"},
		{"body over the limit, unauthenticated", func() (answer, error) {
			return e.send(secRequest{body: big})
		}, 413, RefusedBodyTooLarge, "limit"},
		{"one header over the limit", func() (answer, error) {
			req, _ := http.NewRequest(http.MethodPost, e.url+"/vca", bytes.NewReader(callAction(t, "hdr-1")))
			req.Header.Set("Authorization", secNewSecret)
			req.Header.Set("X-Pad", strings.Repeat("p", 2*maxHeader))
			return secDo(req)
		}, 431, RefusedHeaderLarge, "header"},
		{"many small headers over the limit", func() (answer, error) {
			req, _ := http.NewRequest(http.MethodPost, e.url+"/vca", bytes.NewReader(callAction(t, "hdr-2")))
			req.Header.Set("Authorization", secNewSecret)
			for i := range 200 {
				req.Header.Set(fmt.Sprintf("X-H%d", i), "0123456789")
			}
			return secDo(req)
		}, 431, RefusedHeaderLarge, "header"},
		{"huge Authorization header", func() (answer, error) {
			return e.send(secRequest{auth: []string{"Bearer " + strings.Repeat("A", 3*maxHeader)}, body: callAction(t, "hdr-3")})
		}, 431, RefusedHeaderLarge, "header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.refused(c.reason)
			a, err := c.send()
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			wantError(t, a, c.status, c.mention)
			if got := e.refused(c.reason); got != before+1 {
				t.Errorf("refused{%s} went from %v to %v, want +1", c.reason, before, got)
			}
		})
	}
	e.legit("size-final", secRequest{auth: []string{secNewSecret}})
	e.wantDecided(1)
	e.wantRecords(1)
}

// TestWebhookRefusedBeforeRead proves that a client whose request is
// refused before the server has read all of it (header or declared body
// over the limit, malformed HTTP, too many connections from its address)
// still gets the whole JSON answer and then an orderly end of the
// connection, not a reset that would destroy the answer, even when it
// writes the rest of the request before it reads: over plain TCP, behind
// the per-address limit, and over TLS.
func TestWebhookRefusedBeforeRead(t *testing.T) {
	const maxBody, maxHeader = 4096, 2048
	rest := bytes.Repeat([]byte("x"), 64<<10)
	head := func(extra string) string {
		return "POST /vca HTTP/1.1\r\nHost: x\r\nAuthorization: " + secNewSecret + "\r\n" + extra +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(rest))
	}
	type refusal struct {
		name    string
		head    string
		status  int
		mention string
	}
	refusals := []refusal{
		{"header over the limit", head("X-Pad: " + strings.Repeat("p", 3*maxHeader) + "\r\n"), 431, "limit"},
		{"declared body over the limit", head(""), 413, "limit"},
		{"malformed header line", head("X-Bad : 1\r\n"), 400, "malformed"},
	}
	pair := testcert.SelfSigned(t, "callflow-linger", x509.ExtKeyUsageServerAuth)
	certFile, keyFile := pair.WriteIn(t, t.TempDir(), "webhook")
	cert := pair.Cert
	// A refused connection keeps its address's slot until drained, so the
	// limit of the setups that refuse by content is above what they open;
	// the last setup has a server of its own at a limit it fills.
	for _, setup := range []struct {
		name   string
		perIP  int
		useTLS bool
		full   bool // hold perIP connections: every request gets 429
	}{
		{"plain", 0, false, false},
		{"per-address limit", 64, false, false},
		{"TLS and per-address limit", 64, true, false},
		{"too many connections", 2, false, true},
	} {
		t.Run(setup.name, func(t *testing.T) {
			e := newSecEnv(t, func(c *Config) {
				c.Auth = []string{secNewSecret}
				c.MaxBody, c.MaxHeaderBytes = maxBody, maxHeader
				c.MaxConnsPerIP = setup.perIP
				if setup.useTLS {
					rl, err := certs.New(certFile, keyFile)
					if err != nil {
						t.Fatalf("certs.New: %v", err)
					}
					c.TLS = rl
				}
			})
			addr := strings.TrimPrefix(e.url, "http://")
			dial := func() net.Conn {
				t.Helper()
				var conn net.Conn
				var err error
				if setup.useTLS {
					roots := x509.NewCertPool()
					roots.AddCert(cert)
					conn, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
				} else {
					conn, err = net.Dial("tcp", addr)
				}
				if err != nil {
					t.Fatal(err)
				}
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				return conn
			}
			// refused writes the whole request before reading anything,
			// then wants the JSON error and a clean end of the stream.
			refused := func(t *testing.T, r refusal) {
				for i := range 10 {
					conn := dial()
					if _, err := conn.Write(append([]byte(r.head), rest...)); err != nil {
						t.Fatalf("attempt %d: write: %v", i, err)
					}
					all, err := io.ReadAll(conn)
					conn.Close()
					if err != nil {
						t.Fatalf("attempt %d: read: %v (got %q)", i, err, all)
					}
					resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(all)), nil)
					if err != nil {
						t.Fatalf("attempt %d: unreadable answer %q: %v", i, all, err)
					}
					body, _ := io.ReadAll(resp.Body)
					wantError(t, answer{status: resp.StatusCode, header: resp.Header, body: body}, r.status, r.mention)
				}
			}
			if setup.full {
				for range setup.perIP {
					defer dial().Close()
				}
				refused(t, refusal{head: head(""), status: http.StatusTooManyRequests, mention: "too many connections"})
			} else {
				for _, r := range refusals {
					t.Run(r.name, func(t *testing.T) { refused(t, r) })
				}
			}
			e.wantNoneDecided()
			e.wantRecords(0)
		})
	}
}

// TestWebhookMalformedHTTP proves how requests fasthttp cannot read are
// answered: a bad Content-Length, no method, no version, a bad header name
// or value, two Content-Lengths, an unknown or malformed transfer coding,
// a folded header line each get 400 with a JSON error, counted in
// callflow_webhook_refused_total{reason="malformed_http"}; neither the
// answer nor the log (even at debug level) repeats the request's bytes,
// so the Authorization secret they carry (or a header a proxy added) is
// not reflected or written anywhere. A request with both Content-Length
// and Transfer-Encoding is read by its chunks alone and the connection
// closed after it: the request smuggled behind it is never served. Nothing
// refused is decided or recorded, and a legitimate call is answered after.
func TestWebhookMalformedHTTP(t *testing.T) {
	e := newSecEnv(t, func(c *Config) { c.Auth = []string{secNewSecret} })
	addr := strings.TrimPrefix(e.url, "http://")
	carrier := callAction(t, "smuggle-carrier")
	smuggled := rawRequest(secNewSecret, callAction(t, "smuggled"))
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(carrier), carrier)
	head := "POST /vca HTTP/1.1\r\nHost: callflow\r\nAuthorization: " + secNewSecret + "\r\n"
	cases := []struct {
		name string
		raw  string
		want int // 400, or 200 for the carrier of a smuggling attempt
	}{
		{"Content-Length not a number", head + "Content-Length: abc\r\n\r\n{}", 400},
		{"no method", "GARBAGE\r\nAuthorization: " + secNewSecret + "\r\n\r\n", 400},
		{"no HTTP version", "POST /vca\r\nAuthorization: " + secNewSecret + "\r\n\r\n", 400},
		{"space before the colon of a header", "POST /vca HTTP/1.1\r\nHost: x\r\nAuthorization : " + secNewSecret + "\r\nContent-Length: 2\r\n\r\n{}", 400},
		{"NUL in the Authorization value", "POST /vca HTTP/1.1\r\nHost: x\r\nAuthorization: " + secNewSecret + "\x00\r\nContent-Length: 2\r\n\r\n{}", 400},
		{"two Content-Lengths", head + fmt.Sprintf("Content-Length: %d\r\nContent-Length: 2\r\n\r\n%s", len(carrier), carrier), 400},
		{"unknown transfer coding", head + "Transfer-Encoding: chunked, identity\r\n\r\n" + chunked, 400},
		{"malformed chunk size", head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400},
		{"folded header line", "POST /vca HTTP/1.1\r\nHost: x\r\n Authorization: " + secNewSecret + "\r\nContent-Length: 2\r\n\r\n{}", 400},
		{"Content-Length and Transfer-Encoding, request smuggled after the chunks", head + fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n", len(chunked)) + chunked + string(smuggled), 200},
		{"short Content-Length and Transfer-Encoding, request smuggled after the chunks", head + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + string(smuggled), 200},
	}
	served := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.refused(RefusedMalformed)
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write([]byte(c.raw)); err != nil {
				t.Fatal(err)
			}
			// The server answers once and closes the connection.
			all, err := io.ReadAll(conn)
			if err != nil {
				t.Fatalf("read: %v (got %q)", err, all)
			}
			br := bufio.NewReader(bytes.NewReader(all))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("unreadable answer %q: %v", all, err)
			}
			body, _ := io.ReadAll(resp.Body)
			a := answer{status: resp.StatusCode, header: resp.Header, body: body}
			if rest, _ := io.ReadAll(br); len(rest) > 0 {
				t.Errorf("a second answer on the connection: %q", rest)
			}
			if bytes.Contains(all, []byte(secNewSecret)) || bytes.Contains(all, []byte(strings.TrimPrefix(secNewSecret, "Bearer "))) {
				t.Errorf("the answer repeats the Authorization secret: %s", body)
			}
			if c.want == http.StatusOK {
				served++
				wantCallflow(t, a)
				return
			}
			wantError(t, a, c.want, "")
			if got := e.refused(RefusedMalformed); got != before+1 {
				t.Errorf("refused{malformed_http} went from %v to %v, want +1", before, got)
			}
		})
	}
	for _, m := range e.messages() {
		if m.msgID == "smuggled" {
			t.Errorf("the smuggled request was served and recorded")
		}
	}
	e.legit("malformed-final", secRequest{auth: []string{secNewSecret}})
	e.wantDecided(int64(served + 1))
	e.wantRecords(uint64(min(served, 1) + 1)) // the carriers share one eventId
	if logs := e.logs.String(); strings.Contains(logs, strings.TrimPrefix(secNewSecret, "Bearer ")) {
		t.Errorf("the log holds the Authorization secret of malformed requests:\n%s", logs)
	}
}

// secDo sends req on a connection of its own and reads the answer.
func secDo(req *http.Request) (answer, error) {
	req.Header.Set("Content-Type", "application/json")
	c := secClient("")
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// rawRequest is an HTTP/1.1 request as bytes, for clients that misbehave.
func rawRequest(auth string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST /vca HTTP/1.1\r\nHost: callflow\r\nContent-Type: application/json\r\n")
	if auth != "" {
		fmt.Fprintf(&b, "Authorization: %s\r\n", auth)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(body))
	b.Write(body)
	return b.Bytes()
}

// loris is one slow client: it dials, writes head at once, then the rest
// one byte every interval, and reads whatever the server answers until the
// server closes the connection.
type loris struct {
	took     time.Duration
	answer   []byte
	readErr  error
	closedBy string
}

func runLoris(t *testing.T, addr string, head, rest []byte, interval, limit time.Duration) <-chan loris {
	t.Helper()
	out := make(chan loris, 1)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		if len(head) > 0 {
			if _, err := c.Write(head); err != nil {
				return
			}
		}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := range rest {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if _, err := c.Write(rest[i : i+1]); err != nil {
				return // the server closed the connection
			}
		}
	}()
	go func() {
		defer close(done)
		defer c.Close()
		_ = c.SetReadDeadline(start.Add(limit))
		b, err := io.ReadAll(c)
		l := loris{took: time.Since(start), answer: b, readErr: err}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			l.closedBy = "client deadline"
		}
		out <- l
	}()
	return out
}

// TestWebhookSlowClients proves the read timeout: a client that sends its
// headers or its body a byte at a time, slower than --http-read-timeout
// allows, or that connects and says nothing, is cut off (connection closed,
// or 408 counted in callflow_webhook_refused_total{reason="timeout"})
// within about the timeout, many of them at once do not starve the
// listener, and a legitimate call on another connection is answered 200
// while they hang on. Nothing they sent is decided or recorded.
func TestWebhookSlowClients(t *testing.T) {
	const readTimeout = time.Second
	// A generous bound that still proves the server cut the client off:
	// the client itself would go on for a minute.
	const bound = readTimeout + 15*time.Second
	const clientLimit = 60 * time.Second
	e := newSecEnv(t, func(c *Config) {
		c.Auth = []string{secNewSecret}
		c.ReadTimeout = readTimeout
	})
	addr := strings.TrimPrefix(e.url, "http://")
	req := rawRequest(secNewSecret, callAction(t, "loris"))
	headEnd := bytes.Index(req, []byte("\r\n\r\n")) + 4
	cases := []struct {
		name       string
		head, rest []byte
		clients    int
	}{
		{"headers byte by byte", nil, req, 1},
		{"headers complete, body byte by byte", req[:headEnd], req[headEnd:], 1},
		{"connects and says nothing", nil, nil, 1},
		{"headers cut short, then silence", req[:20], nil, 1},
		{"thirty slow clients at once", nil, req, 30},
	}
	legit := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			timeoutsBefore := e.refused(RefusedTimeout)
			var results []<-chan loris
			for range c.clients {
				results = append(results, runLoris(t, addr, c.head, c.rest, 150*time.Millisecond, clientLimit))
			}
			// While they hang on (the server holds their connections,
			// and nothing else), a legitimate call is answered.
			natstest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
				if n := e.gatheredValue("callflow_webhook_open_connections"); n != float64(c.clients) {
					return fmt.Errorf("the server holds %v connections, want the %d slow clients'", n, c.clients)
				}
				return nil
			})
			legit++
			e.legit(fmt.Sprintf("loris-legit-%d", legit), secRequest{auth: []string{secNewSecret}})
			got408 := 0
			for i, ch := range results {
				var l loris
				select {
				case l = <-ch:
				case <-time.After(clientLimit + 5*time.Second):
					t.Fatalf("client %d: no outcome", i)
				}
				if l.closedBy == "client deadline" || l.took > bound {
					t.Fatalf("client %d: still connected after %s: the server did not cut it off (answer %q, err %v)", i, l.took, l.answer, l.readErr)
				}
				switch {
				case len(l.answer) == 0:
					// Cut off without an answer.
				case bytes.HasPrefix(l.answer, []byte("HTTP/1.1 408 ")):
					got408++
					resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(l.answer)), nil)
					if err != nil {
						t.Fatalf("client %d: unreadable 408: %v", i, err)
					}
					b, _ := io.ReadAll(resp.Body)
					wantError(t, answer{status: resp.StatusCode, header: resp.Header, body: b}, http.StatusRequestTimeout, "time")
				default:
					t.Errorf("client %d: answered %q, want 408 or a closed connection", i, l.answer)
				}
			}
			t.Logf("%d of %d slow clients got 408, the others were cut off without an answer", got408, len(results))
			if got := e.refused(RefusedTimeout) - timeoutsBefore; got != float64(got408) {
				t.Errorf("refused{timeout} grew by %v, %d clients got 408", got, got408)
			}
		})
	}
	e.wantDecided(int64(legit))
	e.wantRecords(uint64(legit))
}

// TestWebhookConnectionLimits proves the connection limits: past
// --http-max-conns-per-ip a further connection from that address gets 429,
// past --http-max-conns any further connection gets 503, and either is
// counted in callflow_webhook_rejected_connections_total. Another address
// is still served while one is at its limit, and once the held connections
// close, the address is served again.
func TestWebhookConnectionLimits(t *testing.T) {
	second := secCanSendFrom("127.0.0.2")
	cases := []struct {
		name       string
		perIP, all int
		want       string
	}{
		{"per address", 2, 0, "HTTP/1.1 429 "},
		{"in all", 0, 2, "HTTP/1.1 503 "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newSecEnv(t, func(cfg *Config) {
				cfg.Auth = []string{secNewSecret}
				cfg.MaxConnsPerIP, cfg.MaxConns = c.perIP, c.all
				cfg.ReadTimeout = 30 * time.Second // the held connections must stay
			})
			addr := strings.TrimPrefix(e.url, "http://")
			limit := max(c.perIP, c.all)
			var held []net.Conn
			for range limit {
				h, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, h)
			}
			// Make sure the server holds them: a partial request on each.
			for _, h := range held {
				if _, err := h.Write([]byte("POST /vca HTTP/1.1\r\n")); err != nil {
					t.Fatal(err)
				}
			}
			before := e.gatheredValue("callflow_webhook_rejected_connections_total")
			extra, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			// The answer comes at once, before any request is sent.
			_ = extra.SetDeadline(time.Now().Add(10 * time.Second))
			got, _ := io.ReadAll(extra)
			extra.Close()
			if !bytes.HasPrefix(got, []byte(c.want)) {
				t.Errorf("extra connection answered %q, want %q", got, c.want)
			}
			if after := e.gatheredValue("callflow_webhook_rejected_connections_total"); after <= before {
				t.Errorf("callflow_webhook_rejected_connections_total = %v after a rejected connection, was %v: the rejection is not counted", after, before)
			}
			legit := 0
			if c.perIP > 0 && second {
				// Another caller is not hurt by this one.
				legit++
				e.legit("limit-other-address", secRequest{from: "127.0.0.2", auth: []string{secNewSecret}})
			}
			for _, h := range held {
				h.Close()
			}
			// Once the held connections are gone, calls are served again.
			legit++
			natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
				a, err := e.send(secRequest{auth: []string{secNewSecret}, body: callAction(t, "limit-after")})
				if err != nil {
					return err
				}
				if a.status != http.StatusOK {
					return fmt.Errorf("answered %s", a)
				}
				return nil
			})
			e.wantDecided(int64(legit))
			e.wantRecords(uint64(legit))
		})
	}
}

// hostile is one hostile webhook body and its documented answer.
type hostile struct {
	name string
	body []byte
	// want is 400 (refused, naming field) or 200 (stored inertly).
	want  int
	field string
	// For 200: the record's subject, and whether it is a CALL_ACTION
	// (answered with a callflow, decided) or another event (acknowledged).
	subject string
	call    bool
}

// withRaw is the seed's CALL_ACTION (eventType et when not empty) with
// payload key set to the raw JSON text raw (nil deletes the key: use
// event for that) and the given eventId.
func withRaw(t *testing.T, et, id, key, raw string) []byte {
	t.Helper()
	const marker = "\"@@raw-value@@\""
	b := event(t, et, map[string]any{"eventId": id, key: "@@raw-value@@"})
	if !bytes.Contains(b, []byte(marker)) {
		t.Fatalf("marker not found in %s", b)
	}
	return bytes.Replace(b, []byte(marker), []byte(raw), 1)
}

// withEnvelope is the seed with the envelope key set to raw.
func withEnvelope(t *testing.T, id, key, raw string) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(callAction(t, id), &ev); err != nil {
		t.Fatal(err)
	}
	ev[key] = "@@raw-value@@"
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Replace(b, []byte("\"@@raw-value@@\""), []byte(raw), 1)
}

func hostileBodies(t *testing.T) []hostile {
	const sub = "calls.CALL_ACTION." + seedSubAccount
	n := 0
	id := func() string { n++; return fmt.Sprintf("hostile-%d", n) }
	nest := func(open, close string, depth int) string {
		return strings.Repeat(open, depth) + "1" + strings.Repeat(close, depth)
	}
	cases := []hostile{
		// Deep nesting.
		{name: "arrays nested 100000 deep", body: withRaw(t, "", id(), "extra", nest("[", "]", 100000)), want: 400, field: "nested"},
		{name: "objects nested 20000 deep", body: withRaw(t, "", id(), "extra", nest(`{"a":`, "}", 20000)), want: 400, field: "nested"},
		{name: "unclosed nesting", body: withRaw(t, "", id(), "extra", strings.Repeat("[", 50000)), want: 400, field: "body"},
		{name: "nesting 60 deep in an unknown field is kept", body: withRaw(t, "", id(), "extra", nest("[", "]", 60)), want: 200, subject: sub, call: true},
		{name: "nesting at the parser's limit (64 levels in all) is kept and readable", body: withRaw(t, "", id(), "extra", nest("[", "]", 62)), want: 200, subject: sub, call: true},
		{name: "a whole body nested 70 deep", body: []byte(nest("[", "]", 70)), want: 400, field: "body"},
		// Huge strings and numbers.
		{name: "huge description", body: event(t, "", map[string]any{"eventId": id(), "description": strings.Repeat("d", 512<<10)}), want: 200, subject: sub, call: true},
		{name: "huge eventId", body: event(t, "", map[string]any{"eventId": strings.Repeat("e", 200<<10)}), want: 200, subject: sub, call: true},
		{name: "huge subAccountId", body: event(t, "", map[string]any{"eventId": id(), "subAccountId": strings.Repeat("s", 64<<10)}), want: 200, subject: "calls.CALL_ACTION." + strings.Repeat("s", 128), call: true},
		{name: "huge source", body: event(t, "", map[string]any{"eventId": id(), "source": strings.Repeat("6", 100<<10)}), want: 200, subject: sub, call: true},
		{name: "huge number in sipCode", body: withRaw(t, "", id(), "sipCode", "1"+strings.Repeat("0", 10000)), want: 400, field: "payload.sipCode"},
		{name: "huge exponent in callDuration", body: withRaw(t, "", id(), "callDuration", "1e999999999"), want: 400, field: "payload.callDuration"},
		{name: "huge negative in callCount", body: withRaw(t, wire.EventSessionSummary, id(), "callCount", "-1e400"), want: 400, field: "payload.callCount"},
		{name: "tiny fraction in sipCode", body: withRaw(t, "", id(), "sipCode", "1e-999999"), want: 400, field: "payload.sipCode"},
		{name: "huge number in an unknown field is kept", body: withRaw(t, "", id(), "extra", "-"+strings.Repeat("9", 100000)+".5e+99999"), want: 200, subject: sub, call: true},
		// Invalid UTF-8.
		{name: "invalid UTF-8 in source", body: withRaw(t, "", id(), "source", "\"\xff\xfe+6512\xc0\x80\""), want: 200, subject: sub, call: true},
		{name: "invalid UTF-8 in subAccountId", body: withRaw(t, "", id(), "subAccountId", "\"acct\xff\xfe\""), want: 200, subject: "calls.CALL_ACTION.acct__", call: true},
		{name: "overlong encoding of dot and star in subAccountId", body: withRaw(t, "", id(), "subAccountId", "\"a\xc0\xaeb\xc0\xaa\""), want: 200, subject: "calls.CALL_ACTION.a__b__", call: true},
		{name: "invalid UTF-8 in eventType", body: withEnvelope(t, id(), "eventType", "\"CALL\xffACTION\""), want: 200, subject: "calls.CALL_ACTION." + seedSubAccount, call: false},
		{name: "invalid UTF-8 in a key", body: bytes.Replace(withRaw(t, "", id(), "extra", "1"), []byte(`"extra"`), []byte("\"ex\xfftra\""), 1), want: 200, subject: sub, call: true},
		{name: "invalid UTF-8 between tokens", body: withRaw(t, "", id(), "extra", "\xff1"), want: 400, field: "body"},
		{name: "UTF-16 byte order mark", body: append([]byte("\xfe\xff"), seedBody(t)...), want: 400, field: "body"},
		// NUL bytes.
		{name: "raw NUL in a string", body: withRaw(t, "", id(), "callId", "\"ab\x00cd\""), want: 400, field: "body"},
		{name: "raw NUL between tokens", body: withRaw(t, "", id(), "extra", "\x001"), want: 400, field: "body"},
		{name: "NUL after the body", body: append(callAction(t, id()), 0), want: 400, field: "body"},
		{name: "NUL before the body", body: append([]byte{0}, callAction(t, id())...), want: 400, field: "body"},
		{name: "escaped NUL in subAccountId", body: withRaw(t, "", id(), "subAccountId", `"a\u0000b"`), want: 200, subject: "calls.CALL_ACTION.a_b", call: true},
		{name: "escaped NUL in eventId", body: withRaw(t, "", "x", "eventId", `"ev\u0000id"`), want: 200, subject: sub, call: true},
		{name: "escaped NUL in source", body: withRaw(t, "", id(), "source", `"+6512345678\u0000"`), want: 200, subject: sub, call: true},
		// Duplicate keys: the last wins, for the answer and the subject alike.
		{name: "duplicate eventType", body: bytes.Replace(callAction(t, id()), []byte(`"eventType":"CALL_ACTION"`), []byte(`"eventType":"CALL_STATUS","eventType":"CALL_ACTION"`), 1), want: 200, subject: sub, call: true},
		{name: "duplicate eventType, last not a call", body: bytes.Replace(callAction(t, id()), []byte(`"eventType":"CALL_ACTION"`), []byte(`"eventType":"CALL_ACTION","eventType":"CALL_STATUS"`), 1), want: 200, subject: "calls.CALL_STATUS." + seedSubAccount},
		{name: "duplicate subAccountId", body: withRaw(t, "", id(), "subAccountId", `"first","subAccountId":"second"`), want: 200, subject: "calls.CALL_ACTION.second", call: true},
		{name: "duplicate payload, the first incomplete", body: bytes.Replace(callAction(t, id()), []byte(`"payload":{`), []byte(`"payload":{"eventId":"dup-p"},"payload":{`), 1), want: 200, subject: sub, call: true},
		{name: "duplicate payload, the first null", body: bytes.Replace(callAction(t, id()), []byte(`"namespace"`), []byte(`"payload":null,"namespace"`), 1), want: 200, subject: sub, call: true},
		{name: "payload then null", body: withEnvelope(t, id(), "zz", `1,"payload":null`), want: 400, field: "payload"},
		// Numbers with letters, and numbers JSON does not have.
		{name: "sipCode with letters", body: withRaw(t, "", id(), "sipCode", "200abc"), want: 400, field: "body"},
		{name: "sipCode in hex", body: withRaw(t, "", id(), "sipCode", "0x1F"), want: 400, field: "body"},
		{name: "sipCode with a leading zero", body: withRaw(t, "", id(), "sipCode", "0200"), want: 400, field: "body"},
		{name: "sipCode with a plus", body: withRaw(t, "", id(), "sipCode", "+200"), want: 400, field: "body"},
		{name: "sipCode NaN", body: withRaw(t, "", id(), "sipCode", "NaN"), want: 400, field: "body"},
		{name: "callDuration Infinity", body: withRaw(t, "", id(), "callDuration", "Infinity"), want: 400, field: "body"},
		{name: "callDuration -Infinity", body: withRaw(t, "", id(), "callDuration", "-Infinity"), want: 400, field: "body"},
		{name: "callDuration with a dangling exponent", body: withRaw(t, "", id(), "callDuration", "12e"), want: 400, field: "body"},
		{name: "callDuration with a dangling point", body: withRaw(t, "", id(), "callDuration", "12."), want: 400, field: "body"},
		{name: "sipCode as a string", body: withRaw(t, "", id(), "sipCode", `"200"`), want: 400, field: "payload.sipCode"},
		{name: "source as a bare number with a plus", body: withRaw(t, "", id(), "source", "+6512345678"), want: 400, field: "body"},
		{name: "source with letters (out of session, not 400)", body: event(t, "", map[string]any{"eventId": id(), "source": "+65123abc789"}), want: 200, subject: sub, call: true},
		{name: "destination with letters (out of session, not 400)", body: event(t, "", map[string]any{"eventId": id(), "destination": "6598765432x"}), want: 200, subject: sub, call: true},
		// Subject injection through the event type and the sub-account.
		{name: "sub-account with wildcards", body: event(t, "", map[string]any{"eventId": id(), "subAccountId": "acct.*.>"}), want: 200, subject: "calls.CALL_ACTION.acct____", call: true},
		{name: "sub-account naming a JetStream API subject", body: event(t, wire.EventCallStatus, map[string]any{"eventId": id(), "subAccountId": "$JS.API.STREAM.DELETE.CALLS"}), want: 200, subject: "calls.CALL_STATUS.$JS_API_STREAM_DELETE_CALLS"},
		{name: "sub-account with spaces, tab and line breaks", body: event(t, "", map[string]any{"eventId": id(), "subAccountId": "a b\tc\r\nPUB x 1"}), want: 200, subject: "calls.CALL_ACTION.a_b_c__PUB_x_1", call: true},
		{name: "sub-account only a space (required for a call)", body: event(t, "", map[string]any{"eventId": id(), "subAccountId": " "}), want: 400, field: "payload.subAccountId"},
		{name: "sub-account only a space on a status", body: event(t, wire.EventCallStatus, map[string]any{"eventId": id(), "subAccountId": " "}), want: 200, subject: "calls.CALL_STATUS._"},
		{name: "sub-account empty on a summary", body: event(t, wire.EventSessionSummary, map[string]any{"eventId": id(), "subAccountId": ""}), want: 200, subject: "calls.SESSION_SUMMARY._"},
		{name: "sub-account full-width dot", body: event(t, "", map[string]any{"eventId": id(), "subAccountId": "a．b"}), want: 200, subject: "calls.CALL_ACTION.a_b", call: true},
		{name: "event type with a dot and wildcards", body: event(t, "CALL_ACTION.*.>", map[string]any{"eventId": id()}), want: 200, subject: "calls.CALL_ACTION____." + seedSubAccount},
		{name: "event type a lone >", body: event(t, ">", map[string]any{"eventId": id()}), want: 200, subject: "calls._." + seedSubAccount},
		{name: "event type with spaces", body: event(t, "CALL ACTION ", map[string]any{"eventId": id()}), want: 200, subject: "calls.CALL_ACTION_." + seedSubAccount},
		{name: "event type an inbox", body: event(t, "_INBOX.abc", map[string]any{"eventId": id(), "subAccountId": "*"}), want: 200, subject: "calls._INBOX_abc._"},
		{name: "event type only whitespace", body: event(t, " \t", map[string]any{"eventId": id()}), want: 200, subject: "calls.__." + seedSubAccount},
		{name: "event type empty", body: withEnvelope(t, id(), "eventType", `""`), want: 400, field: "eventType"},
	}

	// Wrong types for every field.
	stringFields := []string{"eventId", "callId", "sessionId", "subAccountId", "callStatus", "callDirection", "callType",
		"source", "destination", "sourceFormat", "destinationFormat", "sourceCountryCode", "destinationCountryCode",
		"destinationRefId", "timestamp", "clientActionId", "sessionStatus", "startTime", "endTime", "lastAction"}
	for _, f := range stringFields {
		for _, raw := range []string{"12345", "true", "[]", `{"a":"b"}`, "-0.5"} {
			cases = append(cases, hostile{name: "payload." + f + " = " + raw, body: withRaw(t, "", id(), f, raw), want: 400, field: "payload." + f})
		}
	}
	for _, f := range []string{"callDuration", "sipCode", "callCount"} {
		for _, raw := range []string{`"5"`, "true", "[]", "{}", "1.5", "-1"} {
			cases = append(cases, hostile{name: "payload." + f + " = " + raw, body: withRaw(t, "", id(), f, raw), want: 400, field: "payload." + f})
		}
	}
	for _, f := range []string{"namespace", "eventType", "description"} {
		for _, raw := range []string{"7", "false", `["CALL_ACTION"]`, `{"v":"CALL_ACTION"}`} {
			cases = append(cases, hostile{name: f + " = " + raw, body: withEnvelope(t, id(), f, raw), want: 400, field: f})
		}
	}
	for _, raw := range []string{`"x"`, "1", "[]", "true"} {
		cases = append(cases, hostile{name: "payload = " + raw, body: withEnvelope(t, id(), "payload", raw), want: 400, field: "payload"})
		cases = append(cases, hostile{name: "payload.errorDetails = " + raw, body: withRaw(t, wire.EventSessionSummary, id(), "errorDetails", raw), want: 400, field: "payload.errorDetails"})
	}
	cases = append(cases,
		hostile{name: "errorDetails.errorMsg a number", body: withRaw(t, wire.EventSessionSummary, id(), "errorDetails", `{"errorMsg":5}`), want: 400, field: "payload.errorDetails.errorMsg"},
		hostile{name: "errorDetails.errorCode an object", body: withRaw(t, wire.EventSessionSummary, id(), "errorDetails", `{"errorCode":{}}`), want: 400, field: "payload.errorDetails.errorCode"},
		hostile{name: "errorDetails.errorCode a number is kept", body: withRaw(t, wire.EventSessionSummary, id(), "errorDetails", `{"errorCode":-12.5e3}`), want: 200, subject: "calls.SESSION_SUMMARY." + seedSubAccount},
	)
	return cases
}

// TestWebhookHostileBodies proves that hostile bodies (deep nesting, huge
// strings and numbers, invalid UTF-8, NUL bytes, duplicate keys, the wrong
// type for every field, numbers with letters, subject injection through
// the event type and the sub-account) each get a 400 naming the problem,
// and are then neither decided nor recorded, or are answered 200 and stored
// inertly: the body kept verbatim under a subject of exactly three clean
// tokens under calls. No case crashes the ingest or a worker: a legitimate
// call is answered after them all.
func TestWebhookHostileBodies(t *testing.T) {
	e := newSecEnv(t, func(c *Config) {
		c.Auth = []string{secNewSecret}
		c.MaxBody = 1 << 20
	})
	cases := hostileBodies(t)
	// What was answered decides what must have been decided and stored,
	// so that one wrong answer does not cascade into the next cases.
	var decided atomic.Int64
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if len(c.body) > e.srv.cfg.MaxBody {
				t.Fatalf("bad test case: body of %d bytes is over the limit", len(c.body))
			}
			before := e.count()
			a := e.mustSend(secRequest{auth: []string{secNewSecret}, body: c.body})
			if a.status == http.StatusOK && bytes.Contains(a.body, []byte(`"callflow"`)) {
				decided.Add(1)
			}
			if a.status >= 500 {
				t.Fatalf("server error %s", a)
			}
			switch c.want {
			case http.StatusBadRequest:
				wantError(t, a, http.StatusBadRequest, c.field)
				if n := e.count(); n != before {
					t.Fatalf("refused body recorded: %d records, want %d", n, before)
				}
				return
			case http.StatusOK:
			default:
				t.Fatalf("bad test case: want %d", c.want)
			}
			if c.call {
				wantCallflow(t, a)
			} else {
				if a.status != http.StatusOK {
					t.Fatalf("answered %s, want 200", a)
				}
				var ack struct{ Status, ID string }
				if err := json.Unmarshal(a.body, &ack); err != nil || ack.Status != "received" || ack.ID == "" {
					t.Fatalf("acknowledgement %s: %v", a.body, err)
				}
			}
			msgs := e.messages()
			if uint64(len(msgs)) != before+1 {
				t.Fatalf("%d records, want %d", len(msgs), before+1)
			}
			m := msgs[len(msgs)-1]
			if m.err != nil {
				t.Fatalf("record does not parse: %v", m.err)
			}
			secCheckSubject(t, m.subject)
			if m.subject != c.subject {
				t.Errorf("subject = %q, want %q", m.subject, c.subject)
			}
			if !bytes.Equal(m.rec.Event, bytes.TrimSpace(c.body)) {
				t.Errorf("the event is not kept verbatim")
			}
			if len(m.msgID) == 0 || len(m.msgID) > 128 || strings.ContainsAny(m.msgID, " \r\n\x00") {
				t.Errorf("record id %q is not a plain token", m.msgID)
			}
		})
	}
	stored := e.count()
	e.legit("hostile-final", secRequest{auth: []string{secNewSecret}})
	e.wantDecided(decided.Load() + 1)
	e.wantRecords(stored + 1)
	if s := e.srv.Stats(); s.Requests != uint64(len(cases))+1 {
		t.Errorf("stats = %+v, want %d requests", s, len(cases)+1)
	}
	// Logs never carry a raw body: the markers of the hostile bodies are
	// absent.
	if logs := e.logs.String(); strings.Contains(logs, "$JS.API.STREAM.DELETE") || strings.Contains(logs, "PUB x 1") {
		t.Errorf("the log holds parts of hostile bodies:\n%s", logs)
	}
}

// secCheckSubject checks that subject is calls.<token>.<token>, each token
// non-empty and free of '.', '*', '>', whitespace and non-ASCII.
func secCheckSubject(t *testing.T, subject string) {
	t.Helper()
	tokens := strings.Split(subject, ".")
	if len(tokens) != 3 || tokens[0] != wire.SubjectPrefix {
		t.Fatalf("subject %q is not %s.<type>.<sub-account>", subject, wire.SubjectPrefix)
	}
	for _, tok := range tokens {
		if tok == "" || len(tok) > 128 {
			t.Fatalf("subject %q has an empty or oversized token", subject)
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
				t.Fatalf("subject %q holds byte %q", subject, c)
			}
		}
	}
}

// TestWebhookTLS proves the TLS listener: a client that trusts the
// certificate posts a call and gets its callflow; a plain-HTTP client gets
// no answer and nothing it sent is decided or recorded; after the files
// are replaced and Reload is called, new handshakes see the new
// certificate (and a bad pair leaves it in place), without a restart.
func TestWebhookTLS(t *testing.T) {
	pair := testcert.SelfSigned(t, "callflow-first", x509.ExtKeyUsageServerAuth)
	certFile, keyFile := pair.WriteIn(t, t.TempDir(), "webhook")
	first := pair.Cert
	rl, err := certs.New(certFile, keyFile)
	if err != nil {
		t.Fatalf("certs.New: %v", err)
	}
	e := newSecEnv(t, func(c *Config) {
		c.Auth = []string{secNewSecret}
		c.TLS = rl
	})
	addr := strings.TrimPrefix(e.url, "http://")

	// post sends a call over TLS trusting roots, and returns the answer and
	// the certificate the server presented.
	post := func(id string, roots ...*x509.Certificate) (answer, *x509.Certificate, error) {
		pool := x509.NewCertPool()
		for _, c := range roots {
			pool.AddCert(c)
		}
		var peer *x509.Certificate
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/vca", bytes.NewReader(callAction(t, id)))
		req.Header.Set("Authorization", secNewSecret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Transport: tr, Timeout: 15 * time.Second}).Do(req)
		if err != nil {
			return answer{}, nil, err
		}
		defer resp.Body.Close()
		if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
			peer = resp.TLS.PeerCertificates[0]
		}
		b, err := io.ReadAll(resp.Body)
		return answer{status: resp.StatusCode, header: resp.Header, body: b}, peer, err
	}

	cases := []struct {
		name string
		run  func(t *testing.T) int // calls answered
	}{
		{"TLS client with the certificate trusted", func(t *testing.T) int {
			a, peer, err := post("tls-1", first)
			if err != nil {
				t.Fatalf("TLS post: %v", err)
			}
			wantCallflow(t, a)
			if !peer.Equal(first) {
				t.Errorf("server presented %s, want %s", peer.Subject, first.Subject)
			}
			return 1
		}},
		{"TLS client that does not trust the certificate", func(t *testing.T) int {
			if _, _, err := post("tls-untrusted"); err == nil {
				t.Errorf("a client without the certificate in its roots completed a handshake")
			}
			return 0
		}},
		{"plain HTTP to the TLS port", func(t *testing.T) int {
			a, err := e.send(secRequest{auth: []string{secNewSecret}, body: callAction(t, "tls-plain")})
			if err == nil && a.status == http.StatusOK {
				t.Errorf("a plain-HTTP client was served: %s", a)
			}
			return 0
		}},
		{"plain HTTP raw bytes get no HTTP answer", func(t *testing.T) int {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = c.Write(rawRequest(secNewSecret, callAction(t, "tls-raw")))
			got, _ := io.ReadAll(c)
			if bytes.Contains(got, []byte("callflow")) || bytes.HasPrefix(got, []byte("HTTP/1.1 200")) {
				t.Errorf("plain bytes were answered: %q", got)
			}
			return 0
		}},
		{"reloaded certificate is used by new handshakes", func(t *testing.T) int {
			next := testcert.SelfSigned(t, "callflow-second", x509.ExtKeyUsageServerAuth)
			next.Write(t, certFile, keyFile)
			second := next.Cert
			// Until Reload, the old certificate is served.
			if _, peer, err := post("tls-before-reload", first, second); err != nil || !peer.Equal(first) {
				t.Fatalf("before Reload: %v, peer %v, want the first certificate", err, peer)
			}
			if err := rl.Reload(); err != nil {
				t.Fatalf("Reload: %v", err)
			}
			a, peer, err := post("tls-after-reload", second)
			if err != nil {
				t.Fatalf("after Reload: %v", err)
			}
			wantCallflow(t, a)
			if !peer.Equal(second) {
				t.Errorf("after Reload the server presented %s, want %s", peer.Subject, second.Subject)
			}
			// A broken pair on disk: Reload fails, the second stays.
			if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := rl.Reload(); err == nil {
				t.Errorf("Reload of a broken key succeeded")
			}
			a, peer, err = post("tls-after-bad-reload", second)
			if err != nil {
				t.Fatalf("after a failed Reload: %v", err)
			}
			wantCallflow(t, a)
			if !peer.Equal(second) {
				t.Errorf("after a failed Reload the server presented %s, want %s", peer.Subject, second.Subject)
			}
			return 3
		}},
	}
	answered := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { answered += c.run(t) })
	}
	e.wantDecided(int64(answered))
	e.wantRecords(uint64(answered))
}
