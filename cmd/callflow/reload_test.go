package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/nats-io/nats-server/v2/server"
)

// TestSecretsReloadOnSIGHUP: SIGHUP reads --admin-token-file and
// --webhook-auth-file again. The old value gets 401 and the new one is
// served; a file that cannot be read, or holds a placeholder, keeps the
// value in use and logs why (without the secret); the process goes on
// and stops cleanly.
func TestSecretsReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	tokenFile, authFile := filepath.Join(dir, "admin-token"), filepath.Join(dir, "webhook-auth")
	secWriteFile(t, tokenFile, "tok-old-4f1e\n")
	secWriteFile(t, authFile, "Bearer hook-old-77a2\n")
	p := start(t, nil, "serve", "--data-dir", t.TempDir(), "--http-addr", anyPort, "--admin-addr", anyPort,
		"--nats-listen", anyPort, "--clickhouse-addr", "", "--log-format", "json", "--deciders", "1",
		"--admin-token-file", tokenFile, "--webhook-auth-file", authFile)
	c := secClient(nil)
	a := secWaitReady(t, p, c, "http")

	calls := 0
	secrets := []struct {
		setting, file string
		old, new      string
		// status is the answer to a request presenting value.
		status func(value string) (int, error)
	}{
		{"admin-token", tokenFile, "tok-old-4f1e", "tok-new-93c0", func(v string) (int, error) {
			r, err := secDo(c, http.MethodGet, "http://"+a.Admin+"/v1/sessions", nil, map[string]string{"Authorization": "Bearer " + v})
			return r.status, err
		}},
		{"webhook-auth", authFile, "Bearer hook-old-77a2", "Bearer hook-new-0b5d", func(v string) (int, error) {
			calls++
			r, err := secDo(c, http.MethodPost, "http://"+a.Webhook+"/vca", secEvent(t, fmt.Sprintf("reload-%d", calls)), map[string]string{"Authorization": v})
			return r.status, err
		}},
	}
	// accepted checks that want is served and other refused.
	accepted := func(want, other string, status func(string) (int, error)) error {
		if code, err := status(want); err != nil || code != http.StatusOK {
			return fmt.Errorf("%q answered %d (%v), want 200", want, code, err)
		}
		if code, err := status(other); err != nil || code != http.StatusUnauthorized {
			return fmt.Errorf("%q answered %d (%v), want 401", other, code, err)
		}
		return nil
	}
	for _, s := range secrets {
		if err := accepted(s.old, s.new, s.status); err != nil {
			t.Fatalf("%s before the rotation: %v", s.setting, err)
		}
		secWriteFile(t, s.file, s.new+"\n")
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
			secAlive(t, p)
			return accepted(s.new, s.old, s.status)
		})
		if !secLogHas(p.log(), `"msg":"secret reloaded"`, `"setting":"`+s.setting+`"`, `"applies":"from the next`) {
			t.Errorf("no log line of %s reloaded", s.setting)
		}
	}

	// A file gone and a placeholder: the values in use stay.
	if err := os.Remove(tokenFile); err != nil {
		t.Fatal(err)
	}
	secWriteFile(t, authFile, "REDACTED\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		secAlive(t, p)
		for _, s := range secrets {
			if !secLogHas(p.log(), `"msg":"secret not reloaded; the previous value stays in use"`, `"setting":"`+s.setting+`"`) {
				return fmt.Errorf("no log line of %s not reloaded", s.setting)
			}
		}
		return nil
	})
	for _, s := range secrets {
		if err := accepted(s.new, s.old, s.status); err != nil {
			t.Errorf("%s after a failed reload: %v", s.setting, err)
		}
	}
	secNoSecret(t, "the log", p.log(), map[string]string{"old token": "tok-old-4f1e", "new token": "tok-new-93c0", "old auth": "hook-old-77a2", "new auth": "hook-new-0b5d"})
	if err := p.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

// TestNATSPasswordReloadOnSIGHUP: SIGHUP reads --nats-password-file again
// and the next reconnect uses the new password: the server, restarted
// with only the new password, gets the ingestor back.
func TestNATSPasswordReloadOnSIGHUP(t *testing.T) {
	opts := natstest.Options(t.TempDir())
	opts.Username, opts.Password = "callflow", "nats-old-5d1c"
	ns := natstest.RunServerWith(t, opts)
	file := filepath.Join(t.TempDir(), "nats-password")
	secWriteFile(t, file, opts.Password+"\n")
	p := start(t, nil, "ingest", "--data-dir", t.TempDir(), "--http-addr", anyPort, "--admin-addr", anyPort,
		"--nats-url", ns.ClientURL(), "--nats-user", opts.Username, "--nats-password-file", file, "--log-format", "json")
	secWaitReady(t, p, secClient(nil), "http")

	secWriteFile(t, file, "nats-new-e620\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		secAlive(t, p)
		if !secLogHas(p.log(), `"msg":"secret reloaded"`, `"setting":"nats-password"`, `"applies":"at the next NATS connect or reconnect`) {
			return fmt.Errorf("no log line of the NATS password reloaded")
		}
		return nil
	})
	ns.Shutdown()
	ns.WaitForShutdown()
	opts.Password = "nats-new-e620"
	ns = natstest.RunServerWith(t, opts)
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		secAlive(t, p)
		cz, err := ns.Connz(&server.ConnzOptions{Username: true})
		if err != nil {
			return err
		}
		for _, c := range cz.Conns {
			if c.Name == "callflow-ingest" && c.AuthorizedUser == opts.Username {
				return nil
			}
		}
		return fmt.Errorf("the ingestor is not back on the server restarted with the new password (%d connections)", len(cz.Conns))
	})
	if strings.Contains(p.log(), "nats-new-e620") || strings.Contains(p.log(), "nats-old-5d1c") {
		t.Error("a NATS password is in the log")
	}
	if err := p.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}
