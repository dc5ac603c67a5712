package node_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/archiver"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/node"
	"github.com/callflow/callflow/internal/testlog"
)

// TestNoDuplicateLogKeys: no line a node logs, from its start through
// calls, admin requests (refused and served) and its stop, carries a key
// twice (a logger With() an attribute that a call adds again); for serve
// (with its spool setting a file aside, and with its archive's ClickHouse
// down), ingest and decider.
func TestNoDuplicateLogKeys(t *testing.T) {
	ns := natstest.RunServer(t)
	tests := []struct {
		name  string
		roles node.Roles
		setup func(t *testing.T, cfg *node.Config)
		// want is a message the run must have logged; during one it
		// logs while running, waited for before the node is stopped.
		want, during string
	}{
		{name: "serve", roles: node.Roles{Name: "serve", Embedded: true, Ingest: true, Deciders: 1}, want: "not a segment; renamed",
			setup: func(t *testing.T, cfg *node.Config) {
				// A file the spool sets aside, so that the spool logs too.
				if err := os.MkdirAll(filepath.Join(cfg.Ingest.DataDir, "spool"), 0o750); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(cfg.Ingest.DataDir, "spool", "00000000000000000001.seg"), []byte("not a segment"), 0o640); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "serve with the archive down", roles: node.Roles{Name: "serve", Embedded: true, Ingest: true, Deciders: 1, Archiver: true}, during: "clickhouse unavailable; records wait in JetStream",
			setup: func(t *testing.T, cfg *node.Config) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				closed := ln.Addr().String()
				ln.Close()
				cfg.Archiver = archiver.Config{ClickHouse: archiver.ClickHouseConfig{Addrs: []string{closed}, DialTimeout: time.Second}}
			}},
		{name: "ingest", roles: node.Roles{Name: "ingest", Ingest: true}, want: "ingest drained",
			setup: func(_ *testing.T, cfg *node.Config) { cfg.Conn.URLs = ns.ClientURL() }},
		{name: "decider", roles: node.Roles{Name: "decider", Deciders: 2}, want: "decider started",
			setup: func(_ *testing.T, cfg *node.Config) { cfg.Conn.URLs = ns.ClientURL() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs testlog.Buffer
			cfg := baseConfig(t, tt.roles)
			cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			if tt.roles.Ingest {
				cfg.Admin.Tokens = []string{"tok-1"}
				cfg.Ingest.Auth = []string{"Bearer hook-1"}
			}
			tt.setup(t, &cfg)
			runLogged(t, cfg, func(n *node.Node) {
				if tt.during != "" {
					select {
					case <-logs.Written(tt.during):
					case <-time.After(30 * time.Second):
						t.Errorf("no %q logged within 30s", tt.during)
					}
				}
				if !tt.roles.Ingest {
					ready(t, n)
					return
				}
				for i, auth := range []string{"Bearer hook-1", "Bearer wrong", ""} {
					req, _ := http.NewRequest(http.MethodPost, "http://"+n.WebhookAddr()+"/vca", bytes.NewReader(withEventID(t, seed(t), fmt.Sprintf("dup-%d", i), 0)))
					req.Header.Set("Authorization", auth)
					do(t, req)
				}
				for _, tok := range []string{"tok-1", "wrong"} {
					req, _ := http.NewRequest(http.MethodGet, "http://"+n.AdminAddr()+"/v1/sessions", nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					do(t, req)
				}
				ready(t, n)
			})
			lines := 0
			sc := bufio.NewScanner(strings.NewReader(logs.String()))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				lines++
				if err := duplicateKey(sc.Bytes()); err != nil {
					t.Errorf("%v in %s", err, sc.Text())
				}
			}
			if lines < 5 || !strings.Contains(logs.String(), `"msg":"stopped"`) || !strings.Contains(logs.String(), tt.want+tt.during) {
				t.Fatalf("captured %d lines, not the node's start to stop with %q:\n%s", lines, tt.want, logs.String())
			}
		})
	}
}

// runLogged runs a node of cfg, calls exercise once it is ready, and stops
// it.
func runLogged(t *testing.T, cfg node.Config, exercise func(n *node.Node)) {
	t.Helper()
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("node not ready after 30s")
	}
	exercise(n)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func do(t *testing.T, req *http.Request) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// duplicateKey returns an error naming a key that an object of the JSON
// line holds twice, at any depth.
func duplicateKey(line []byte) error {
	dec := json.NewDecoder(strings.NewReader(string(line)))
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				if seen[key] {
					return fmt.Errorf("key %q twice", key)
				}
				seen[key] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	return walk()
}

// TestDuplicateKeyFound: the check finds a duplicate at any depth and
// passes distinct keys.
func TestDuplicateKeyFound(t *testing.T) {
	for line, dup := range map[string]bool{
		`{"a":1,"b":{"c":2},"d":[{"c":3}]}`:      false,
		`{"component":"ingest","component":"x"}`: true,
		`{"a":{"b":1,"b":2}}`:                    true,
		`{"a":[{"b":1,"b":2}]}`:                  true,
	} {
		if err := duplicateKey([]byte(line)); (err != nil) != dup {
			t.Errorf("duplicateKey(%s) = %v, want a duplicate: %v", line, err, dup)
		}
	}
}

// TestEmbeddedNATSPortBusy: serve's embedded server on a port another
// listener holds fails the start at once, naming the address, instead of
// waiting for a server that never listens.
func TestEmbeddedNATSPortBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := baseConfig(t, node.Roles{Name: "serve", Embedded: true, Ingest: true, Deciders: 1})
	cfg.Embedded.Listen = ln.Addr().String()
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "embedded NATS server") || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run with the NATS port taken: %v, want an error naming %s", err, ln.Addr())
	}
	if strings.Contains(err.Error(), "not ready") {
		t.Errorf("Run waited for the server: %v", err)
	}
}
