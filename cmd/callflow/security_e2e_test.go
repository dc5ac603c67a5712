package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/testcert"
	"github.com/callflow/callflow/wire"
	"go.yaml.in/yaml/v3"
)

// TestSecretsFromFiles proves that the webhook secret and the admin token
// can come from files (--webhook-auth-file with two lines for rotation,
// --admin-token-file) and are then enforced: a webhook without or with a
// wrong Authorization gets 401 and is not recorded, each of the two
// accepted values gets a callflow; /v1/sessions needs the bearer token.
// Neither secret is in the process's arguments, its environment or its
// logs (at debug level); `config print` shows the files' paths and redacts
// a secret given as a flag; contradictory, missing and empty secret files
// are startup errors naming the flag, without echoing the secret.
func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	hookOld, hookNew := "Bearer whk-old-"+secRandHex(t), "Bearer whk-new-"+secRandHex(t)
	token := "adm-" + secRandHex(t)
	secrets := map[string]string{"old webhook secret": hookOld, "new webhook secret": hookNew, "admin token": token}
	hookFile, tokenFile := filepath.Join(dir, "webhook-auth"), filepath.Join(dir, "admin-token")
	secWriteFile(t, hookFile, hookOld+"\n"+hookNew+"\n")
	secWriteFile(t, tokenFile, token+"\n")

	p := start(t, nil, "serve", "--data-dir", t.TempDir(), "--http-addr", anyPort, "--admin-addr", anyPort,
		"--nats-listen", anyPort, "--clickhouse-addr", "", "--log-format", "json", "--log-level", "debug",
		"--webhook-auth-file", hookFile, "--admin-token-file", tokenFile)
	c := secClient(nil)
	a := secWaitReady(t, p, c, "http")
	hookURL, adminURL := "http://"+a.Webhook, "http://"+a.Admin

	// Webhooks: refused without the secret, answered with either value.
	refused := []struct {
		name string
		auth string
	}{
		{"no Authorization", ""},
		{"wrong value", "Bearer wrong"},
		{"the admin token", "Bearer " + token},
		{"the secret without its scheme", strings.TrimPrefix(hookNew, "Bearer ")},
	}
	for i, tc := range refused {
		h := map[string]string{}
		if tc.auth != "" {
			h["Authorization"] = tc.auth
		}
		r := secMust(t, c, http.MethodPost, hookURL+"/vca", secEvent(t, fmt.Sprintf("sec-refused-%d", i)), h)
		if r.status != http.StatusUnauthorized || !json.Valid(r.body) || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("webhook with %s: %d %q (WWW-Authenticate %q), want 401 with a JSON error and a challenge",
				tc.name, r.status, r.body, r.header.Get("WWW-Authenticate"))
		}
	}
	for i, auth := range []string{hookOld, hookNew} {
		r := secMust(t, c, http.MethodPost, hookURL+"/vca", secEvent(t, fmt.Sprintf("sec-ok-%d", i)), map[string]string{"Authorization": auth})
		if r.status != http.StatusOK {
			t.Fatalf("webhook with accepted value %d of the file: %d %s", i+1, r.status, r.body)
		}
		parseCallflow(t, r.body)
	}

	// The session API: a bearer token is required on /v1/.
	sessBody := []byte(`{"virtualNumber":"+65987654321","participants":["+65123456789","+6587654321"],"ttlSeconds":3600}`)
	for _, tc := range []struct {
		name string
		h    map[string]string
	}{
		{"no token", nil},
		{"wrong token", map[string]string{"Authorization": "Bearer wrong-" + token}},
		{"token without Bearer", map[string]string{"Authorization": token}},
	} {
		r := secMust(t, c, http.MethodPost, adminURL+"/v1/sessions", sessBody, tc.h)
		if r.status != http.StatusUnauthorized || !json.Valid(r.body) {
			t.Errorf("POST /v1/sessions with %s: %d %s, want 401 with a JSON error", tc.name, r.status, r.body)
		}
	}
	auth := map[string]string{"Authorization": "Bearer " + token}
	r := secMust(t, c, http.MethodPost, adminURL+"/v1/sessions", sessBody, auth)
	if r.status != http.StatusCreated {
		t.Fatalf("POST /v1/sessions with the token: %d %s, want 201", r.status, r.body)
	}
	var sess struct{ ID string }
	if err := json.Unmarshal(r.body, &sess); err != nil || sess.ID == "" {
		t.Fatalf("created session %s (%v)", r.body, err)
	}
	if r := secMust(t, c, http.MethodGet, adminURL+"/v1/sessions/"+sess.ID, nil, auth); r.status != http.StatusOK {
		t.Errorf("GET /v1/sessions/%s with the token: %d %s", sess.ID, r.status, r.body)
	}
	if r := secMust(t, c, http.MethodGet, adminURL+"/v1/sessions/"+sess.ID, nil, nil); r.status != http.StatusUnauthorized {
		t.Errorf("GET /v1/sessions/%s without the token: %d %s, want 401", sess.ID, r.status, r.body)
	}

	// Counted, and never recorded: two webhooks and one audit record.
	if got := secMetric(t, c, adminURL, `callflow_webhook_refused_total{reason="unauthorized"}`); got != float64(len(refused)) {
		t.Errorf(`callflow_webhook_refused_total{reason="unauthorized"} = %v, want %d`, got, len(refused))
	}
	if got := secMetric(t, c, adminURL, `callflow_webhook_refused_total{reason="network"}`); got != 0 {
		t.Errorf(`callflow_webhook_refused_total{reason="network"} = %v, want 0 (no allow-list)`, got)
	}
	if got := secMetric(t, c, adminURL, `callflow_admin_refused_total{reason="unauthorized"}`); got != 4 {
		t.Errorf(`callflow_admin_refused_total{reason="unauthorized"} = %v, want 4`, got)
	}
	recs := streamRecords(t, a.NATS, 3)
	for id := range recs {
		if strings.HasPrefix(id, "sec-refused-") {
			t.Errorf("refused webhook %s was recorded", id)
		}
	}

	// The secrets are nowhere a process listing or a log reader sees them.
	pid := p.cmd.Process.Pid
	if runtime.GOOS == "linux" {
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
			if err != nil {
				t.Fatalf("read /proc/%d/%s: %v", pid, f, err)
			}
			if !bytes.Contains(b, []byte("webhook-auth-file")) && f == "cmdline" {
				t.Errorf("/proc/%d/cmdline does not look like the serve process: %q", pid, b)
			}
			secNoSecret(t, "/proc/<pid>/"+f, string(b), secrets)
		}
	}
	if err := p.stop(t); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM", err)
	}
	logs := p.log()
	if !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("no clean stop in the logs")
	}
	secNoSecret(t, "the logs", logs, secrets)

	// config print: the files' paths, never a secret.
	out, err := cli(t, "config", "print", "serve", "--webhook-auth-file", hookFile, "--admin-token-file", tokenFile)
	if err != nil {
		t.Fatalf("config print with secret files: %v", err)
	}
	cfg := secYAML(t, out)
	if cfg["webhook-auth-file"] != hookFile || cfg["admin-token-file"] != tokenFile {
		t.Errorf("config print: webhook-auth-file %q, admin-token-file %q; want %q and %q",
			cfg["webhook-auth-file"], cfg["admin-token-file"], hookFile, tokenFile)
	}
	secNoSecret(t, "config print with secret files", out, secrets)
	flagHook, flagToken := "Bearer flag-"+secRandHex(t), "flagtok-"+secRandHex(t)
	out, err = cli(t, "config", "print", "serve", "--webhook-auth", flagHook, "--admin-token", flagToken)
	if err != nil {
		t.Fatalf("config print with secret flags: %v", err)
	}
	cfg = secYAML(t, out)
	if _, ok := cfg["webhook-auth"]; ok {
		t.Errorf("config print sets webhook-auth (%q); a secret is shown only as a comment", cfg["webhook-auth"])
	}
	if _, ok := cfg["admin-token"]; ok {
		t.Errorf("config print sets admin-token (%q); a secret is shown only as a comment", cfg["admin-token"])
	}
	if !strings.Contains(out, "# webhook-auth: (set, not shown;") || !strings.Contains(out, "# admin-token: (set, not shown;") {
		t.Errorf("config print does not say the secrets are set:\n%s", out)
	}
	secNoSecret(t, "config print with secret flags", out, map[string]string{"--webhook-auth": flagHook, "--admin-token": flagToken})

	// Startup errors name the setting and do not echo the secret.
	emptyFile := filepath.Join(dir, "empty")
	secWriteFile(t, emptyFile, "\n  \n")
	for _, tc := range []struct {
		name  string
		args  []string
		names []string
	}{
		{"flag and file", []string{"--webhook-auth", flagHook, "--webhook-auth-file", hookFile}, []string{"--webhook-auth", "--webhook-auth-file"}},
		{"token flag and file", []string{"--admin-token", flagToken, "--admin-token-file", tokenFile}, []string{"--admin-token", "--admin-token-file"}},
		{"missing webhook file", []string{"--webhook-auth-file", filepath.Join(dir, "no-such-file")}, []string{"--webhook-auth-file"}},
		{"missing token file", []string{"--admin-token-file", filepath.Join(dir, "no-such-file")}, []string{"--admin-token-file"}},
		{"empty webhook file", []string{"--webhook-auth-file", emptyFile}, []string{"--webhook-auth-file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := secStartupError(t, tc.args...)
			if code != 1 {
				t.Errorf("exit code %d, want 1; stderr:\n%s", code, stderr)
			}
			for _, n := range tc.names {
				// "--webhook-auth" must be named in its own right, not
				// only as the prefix of "--webhook-auth-file".
				rest := stderr
				if !strings.HasSuffix(n, "-file") {
					rest = strings.ReplaceAll(stderr, n+"-file", "")
				}
				if !strings.Contains(rest, n) {
					t.Errorf("startup error does not name %s:\n%s", n, stderr)
				}
			}
			secNoSecret(t, "the startup error", stderr, map[string]string{"--webhook-auth": flagHook, "--admin-token": flagToken, "file secret": hookOld, "file token": token})
		})
	}
}

// TestTLSListenersReloadOnSIGHUP proves that --http-tls-cert/--http-tls-key
// and --admin-tls-cert/--admin-tls-key serve the webhook and the admin
// listener over TLS (1.2 at least; plain HTTP gets no callflow), each with
// its own pair, and that SIGHUP reloads both pairs in place: new
// connections present the new certificates. A pair that no longer loads
// is logged as an error naming the file, and the process keeps serving
// the last good certificates; it neither exits on SIGHUP nor afterwards,
// and SIGTERM still stops it cleanly (exit 0).
func TestTLSListenersReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	hookCert, hookKey := filepath.Join(dir, "webhook.crt"), filepath.Join(dir, "webhook.key")
	adminCert, adminKey := filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key")
	hook1 := secWriteCertPair(t, hookCert, hookKey, "callflow webhook 1")
	admin1 := secWriteCertPair(t, adminCert, adminKey, "callflow admin 1")

	p := start(t, nil, "serve", "--data-dir", t.TempDir(), "--http-addr", anyPort, "--admin-addr", anyPort,
		"--nats-listen", anyPort, "--clickhouse-addr", "", "--log-format", "json",
		"--http-tls-cert", hookCert, "--http-tls-key", hookKey,
		"--admin-tls-cert", adminCert, "--admin-tls-key", adminKey)
	a := secWaitReady(t, p, secClient(secPool(admin1)), "https")
	httpAddr, adminAddr := a.Webhook, a.Admin
	hookURL, adminURL := "https://"+httpAddr, "https://"+adminAddr

	// The webhook over TLS, trusting only its own certificate.
	r := secMust(t, secClient(secPool(hook1)), http.MethodPost, hookURL+"/vca", seedEvent(t), nil)
	if r.status != http.StatusOK {
		t.Fatalf("seed webhook over TLS: %d %s", r.status, r.body)
	}
	parseCallflow(t, r.body)
	secLeafIs(t, httpAddr, secPool(hook1), hook1)
	secLeafIs(t, adminAddr, secPool(admin1), admin1)

	// Plain HTTP to the TLS webhook gets no answer a client could mistake
	// for one; TLS older than 1.2 is refused.
	if r, err := secDo(secClient(nil), http.MethodPost, "http://"+httpAddr+"/vca", seedEvent(t), nil); err == nil && r.status < 400 {
		t.Errorf("plain HTTP to the TLS webhook: %d %s, want a failure", r.status, r.body)
	} else {
		t.Logf("plain HTTP to the TLS webhook: %v (status %d)", err, r.status)
	}
	for name, addr := range map[string]string{"webhook": httpAddr, "admin": adminAddr} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11, InsecureSkipVerify: true}) //nolint:gosec // probing the server's minimum version
		if err == nil {
			conn.Close()
			t.Errorf("%s listener accepted a TLS 1.1 handshake", name)
		}
	}

	// Renew both pairs in place, then SIGHUP.
	hook2 := secWriteCertPair(t, hookCert, hookKey, "callflow webhook 2")
	admin2 := secWriteCertPair(t, adminCert, adminKey, "callflow admin 2")
	all := secPool(hook1, hook2, admin1, admin2)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		secAlive(t, p)
		for _, l := range []struct {
			name, addr string
			want       *x509.Certificate
		}{{"webhook", httpAddr, hook2}, {"admin", adminAddr, admin2}} {
			leaf, err := secLeaf(l.addr, all)
			if err != nil {
				return fmt.Errorf("%s handshake: %w", l.name, err)
			}
			if !secSameCert(leaf, l.want) {
				return fmt.Errorf("%s listener still presents %q (serial %s) after SIGHUP", l.name, leaf.Subject.CommonName, leaf.SerialNumber)
			}
		}
		return nil
	})
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		logs := p.log()
		for _, f := range []string{hookCert, adminCert} {
			if !secLogHas(logs, "TLS certificate reloaded", f) {
				return fmt.Errorf("no log line of %s reloaded", f)
			}
		}
		return nil
	})
	// Clients that trust only the new certificates are served.
	if r := secMust(t, secClient(secPool(hook2)), http.MethodPost, hookURL+"/vca",
		withPayload(t, wire.EventCallAction, map[string]any{"eventId": "sec-tls-renewed"}), nil); r.status != http.StatusOK {
		t.Errorf("webhook after renewal: %d %s", r.status, r.body)
	}
	if r := secMust(t, secClient(secPool(admin2)), http.MethodGet, adminURL+"/readyz", nil, nil); r.status != http.StatusOK {
		t.Errorf("readyz after renewal: %d %s", r.status, r.body)
	}

	// A broken pair: logged, the last good certificates stay in use.
	secWriteFile(t, hookCert, "garbage, not PEM\n")
	secWriteFile(t, adminCert, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		secAlive(t, p)
		logs := p.log()
		for _, f := range []string{hookCert, adminCert} {
			if !secLogHas(logs, `"level":"ERROR"`, f) {
				return fmt.Errorf("no error logged for the broken %s", f)
			}
		}
		return nil
	})
	secAlive(t, p)
	secLeafIs(t, httpAddr, all, hook2)
	secLeafIs(t, adminAddr, all, admin2)
	if r := secMust(t, secClient(secPool(hook2)), http.MethodPost, hookURL+"/vca",
		withPayload(t, wire.EventCallAction, map[string]any{"eventId": "sec-tls-broken"}), nil); r.status != http.StatusOK {
		t.Errorf("webhook after a broken reload: %d %s", r.status, r.body)
	}
	if r := secMust(t, secClient(secPool(admin2)), http.MethodGet, adminURL+"/readyz", nil, nil); r.status != http.StatusOK {
		t.Errorf("readyz after a broken reload: %d %s", r.status, r.body)
	}

	if err := p.stop(t); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM, want 0", err)
	}
	if !strings.Contains(p.log(), `"msg":"stopped"`) {
		t.Errorf("no clean stop in the logs")
	}
}

// TestWebhookAllowListFlags proves --webhook-allow-cidrs and
// --trusted-proxies on the real binary: a source outside the list gets 403
// (before its credentials are even looked at, and X-Forwarded-For from an
// untrusted peer is ignored), a listed source is answered; behind a trusted
// proxy the client is read from X-Forwarded-For, from the right, so an
// address the client wrote itself is not believed. Refusals are counted in
// callflow_webhook_refused_total{reason="network"}. Unparsable ranges are
// startup errors naming the flag.
func TestWebhookAllowListFlags(t *testing.T) {
	hookSecret := "Bearer allow-" + secRandHex(t)
	hookFile := filepath.Join(t.TempDir(), "webhook-auth")
	secWriteFile(t, hookFile, hookSecret+"\n")

	type instance struct {
		p                   *proc
		httpAddr, adminAddr string
	}
	serve := func(args ...string) instance {
		var in instance
		in.p = start(t, nil, append([]string{"serve", "--data-dir", t.TempDir(), "--http-addr", anyPort,
			"--admin-addr", anyPort, "--nats-listen", anyPort, "--clickhouse-addr", "", "--log-format", "json"}, args...)...)
		a := in.p.listening(t)
		in.httpAddr, in.adminAddr = a.Webhook, a.Admin
		return in
	}
	outside := serve("--webhook-allow-cidrs", "10.0.0.0/8", "--webhook-auth-file", hookFile)
	inside := serve("--webhook-allow-cidrs", "127.0.0.1/32")
	proxied := serve("--webhook-allow-cidrs", "10.0.0.0/8", "--trusted-proxies", "127.0.0.1")
	c := secClient(nil)
	for _, in := range []instance{outside, inside, proxied} {
		secWaitReady(t, in.p, c, "http")
	}

	type call struct {
		name   string
		header map[string]string
		want   int
	}
	check := func(in instance, calls []call, wantNetwork int) {
		t.Helper()
		for i, cl := range calls {
			r := secMust(t, c, http.MethodPost, "http://"+in.httpAddr+"/vca", secEvent(t, fmt.Sprintf("sec-allow-%d", i)), cl.header)
			if r.status != cl.want {
				t.Errorf("%s: %d %s, want %d", cl.name, r.status, r.body, cl.want)
				continue
			}
			switch cl.want {
			case http.StatusOK:
				parseCallflow(t, r.body)
			case http.StatusForbidden:
				if !json.Valid(r.body) || r.header.Get("WWW-Authenticate") != "" {
					t.Errorf("%s: 403 %s with WWW-Authenticate %q, want a JSON error and no credential challenge",
						cl.name, r.body, r.header.Get("WWW-Authenticate"))
				}
			}
		}
		if got := secMetric(t, c, "http://"+in.adminAddr, `callflow_webhook_refused_total{reason="network"}`); got != float64(wantNetwork) {
			t.Errorf(`callflow_webhook_refused_total{reason="network"} = %v, want %d`, got, wantNetwork)
		}
		if got := secMetric(t, c, "http://"+in.adminAddr, `callflow_webhook_refused_total{reason="unauthorized"}`); got != 0 {
			t.Errorf(`callflow_webhook_refused_total{reason="unauthorized"} = %v, want 0`, got)
		}
	}

	t.Run("127.0.0.1 outside 10.0.0.0/8", func(t *testing.T) {
		check(outside, []call{
			{"no credentials", nil, http.StatusForbidden},
			{"the right credentials", map[string]string{"Authorization": hookSecret}, http.StatusForbidden},
			{"X-Forwarded-For from an untrusted peer", map[string]string{"Authorization": hookSecret, "X-Forwarded-For": "10.1.2.3"}, http.StatusForbidden},
		}, 3)
	})
	t.Run("127.0.0.1 inside 127.0.0.1/32", func(t *testing.T) {
		check(inside, []call{
			{"listed source", nil, http.StatusOK},
			{"listed source, any X-Forwarded-For", map[string]string{"X-Forwarded-For": "192.0.2.1"}, http.StatusOK},
		}, 0)
	})
	t.Run("behind trusted proxy 127.0.0.1", func(t *testing.T) {
		check(proxied, []call{
			{"client 10.1.2.3", map[string]string{"X-Forwarded-For": "10.1.2.3"}, http.StatusOK},
			{"client 192.0.2.1", map[string]string{"X-Forwarded-For": "192.0.2.1"}, http.StatusForbidden},
			{"the proxy itself, no X-Forwarded-For", nil, http.StatusForbidden},
			{"client 192.0.2.1 claiming 10.1.2.3", map[string]string{"X-Forwarded-For": "10.1.2.3, 192.0.2.1"}, http.StatusForbidden},
			{"client 10.1.2.3 with a junk entry left of it", map[string]string{"X-Forwarded-For": "192.0.2.1, 10.1.2.3"}, http.StatusOK},
			{"unreadable entry", map[string]string{"X-Forwarded-For": "not-an-address"}, http.StatusForbidden},
		}, 4)
	})
	for _, in := range []instance{outside, inside, proxied} {
		if err := in.p.stop(t); err != nil {
			t.Errorf("serve exited with %v after SIGTERM", err)
		}
	}

	for _, tc := range []struct {
		args []string
		name string
	}{
		{[]string{"--webhook-allow-cidrs", "10.0.0.0/33"}, "--webhook-allow-cidrs"},
		{[]string{"--webhook-allow-cidrs", "10.0.0.0/8,not-a-range"}, "--webhook-allow-cidrs"},
		{[]string{"--trusted-proxies", "300.1.1.1"}, "--trusted-proxies"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stderr := secStartupError(t, tc.args...)
			if code != 1 || !strings.Contains(stderr, tc.name) {
				t.Errorf("exit code %d, stderr:\n%s\nwant 1 and an error naming %s", code, stderr, tc.name)
			}
		})
	}
}

// secRandHex is 16 random bytes in hex: a value no log line holds by chance.
func secRandHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func secWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// secEvent is a CALL_ACTION event with its own id.
func secEvent(t *testing.T, id string) []byte {
	t.Helper()
	return withPayload(t, wire.EventCallAction, map[string]any{"eventId": id})
}

// secClient opens a new connection for every request (so each sees the
// listener's current certificate), trusting roots when given.
func secClient(roots *x509.CertPool) *http.Client {
	tr := &http.Transport{DisableKeepAlives: true}
	if roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

type secResp struct {
	status int
	header http.Header
	body   []byte
}

// secDo sends one request to a loopback listener.
func secDo(c *http.Client, method, url string, body []byte, header map[string]string) (secResp, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return secResp{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return secResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return secResp{status: resp.StatusCode, header: resp.Header, body: b}, err
}

func secMust(t *testing.T, c *http.Client, method, url string, body []byte, header map[string]string) secResp {
	t.Helper()
	r, err := secDo(c, method, url, body, header)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// secWaitReady is waitReady over any client and scheme (http, or https
// for TLS).
func secWaitReady(t *testing.T, p *proc, c *http.Client, scheme string) listeners {
	t.Helper()
	a := p.listening(t)
	natstest.CheckFor(t, childStartTimeout, 50*time.Millisecond, func() error {
		secAlive(t, p)
		r, err := secDo(c, http.MethodGet, scheme+"://"+a.Admin+"/readyz", nil, nil)
		if err != nil {
			return err
		}
		if r.status != http.StatusOK {
			return fmt.Errorf("readyz %d: %s", r.status, r.body)
		}
		return nil
	})
	return a
}

// secAlive fails the test if the process has exited.
func secAlive(t *testing.T, p *proc) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		t.Fatalf("process exited: %v\n%s", err, p.log())
	default:
	}
}

// secMetric reads one series (name{labels}) from /metrics.
func secMetric(t *testing.T, c *http.Client, adminURL, series string) float64 {
	t.Helper()
	r := secMust(t, c, http.MethodGet, adminURL+"/metrics", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("/metrics: %d", r.status)
	}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no series %s", series)
	return 0
}

// secNoSecret fails if any secret (or its distinctive part, without the
// scheme) appears in text.
func secNoSecret(t *testing.T, where, text string, secrets map[string]string) {
	t.Helper()
	for name, s := range secrets {
		for _, v := range []string{s, strings.TrimPrefix(s, "Bearer ")} {
			if strings.Contains(text, v) {
				t.Errorf("the %s appears in %s", name, where)
				break
			}
		}
	}
}

// secYAML parses `config print` output.
func secYAML(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	if err := yaml.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("config print output is not YAML: %v\n%s", err, out)
	}
	return m
}

// secStartupError runs `callflow serve` with args on free loopback ports
// and returns its exit code and stderr; a process still running after a
// bound has accepted what it should have refused.
func secStartupError(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"serve", "--data-dir", t.TempDir(),
		"--http-addr", anyPort, "--admin-addr", anyPort, "--nats-listen", anyPort, "--clickhouse-addr", ""}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("serve %v started and kept running instead of refusing its settings:\n%s", args, stderr.String())
	}
	var exit *exec.ExitError
	if err == nil {
		return 0, stderr.String()
	}
	if !errors.As(err, &exit) {
		t.Fatalf("run serve: %v", err)
	}
	return exit.ExitCode(), stderr.String()
}

// secWriteCertPair writes a new self-signed certificate for 127.0.0.1 and
// its key to the given paths (in place), and returns it.
func secWriteCertPair(t *testing.T, certPath, keyPath, cn string) *x509.Certificate {
	t.Helper()
	p := testcert.SelfSigned(t, cn, x509.ExtKeyUsageServerAuth)
	p.Write(t, certPath, keyPath)
	return p.Cert
}

func secPool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// secLeaf opens a new TLS connection to addr, verified against roots, and
// returns the certificate the server presented.
func secLeaf(addr string, roots *x509.CertPool) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func secLeafIs(t *testing.T, addr string, roots *x509.CertPool, want *x509.Certificate) {
	t.Helper()
	leaf, err := secLeaf(addr, roots)
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	if !secSameCert(leaf, want) {
		t.Errorf("%s presents %q (serial %s), want %q (serial %s)", addr, leaf.Subject.CommonName, leaf.SerialNumber, want.Subject.CommonName, want.SerialNumber)
	}
}

// secSameCert compares serial numbers and public keys.
func secSameCert(a, b *x509.Certificate) bool {
	ka, ok := a.PublicKey.(*ecdsa.PublicKey)
	return ok && a.SerialNumber.Cmp(b.SerialNumber) == 0 && ka.Equal(b.PublicKey)
}

// secLogHas reports whether one log line holds every word.
func secLogHas(logs string, words ...string) bool {
	for _, line := range strings.Split(logs, "\n") {
		all := true
		for _, w := range words {
			if !strings.Contains(line, w) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
