package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/ingest"
	"github.com/callflow/callflow/internal/admin"
	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/node"
	"github.com/callflow/callflow/wire"
)

// seed is the 8x8 example CALL_ACTION.
func seed(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "wire", "testdata", "call_action.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withEventID returns body with its payload's eventId replaced, and pad
// bytes of an unknown field (recorded like any other).
func withEventID(t *testing.T, body []byte, id string, pad int) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatal(err)
	}
	p := ev["payload"].(map[string]any)
	p["eventId"] = id
	if pad > 0 {
		p["padding"] = strings.Repeat("x", pad)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func baseConfig(t *testing.T, r node.Roles) node.Config {
	return node.Config{
		Roles:           r,
		Version:         "0.0.0-test",
		Embedded:        broker.EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir()},
		Stream:          broker.StreamConfig{Name: broker.DefaultStream, MaxAge: time.Hour, Duplicates: time.Minute, Replicas: 1},
		Ingest:          ingest.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), DecideTimeout: 2 * time.Second},
		Admin:           admin.Config{Addr: "127.0.0.1:0", SessionAPI: r.Ingest},
		ShutdownTimeout: 10 * time.Second,
	}
}

// start runs n until the test ends and returns once it is ready.
func start(t *testing.T, n *node.Node) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err, ok := <-done:
			if ok && err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	select {
	case <-n.Ready():
	case err := <-done:
		close(done)
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("node not ready after 30s")
	}
}

type readiness struct {
	code   int
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func ready(t *testing.T, n *node.Node) readiness {
	t.Helper()
	resp, err := http.Get("http://" + n.AdminAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := readiness{code: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func post(t *testing.T, n *node.Node, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+n.WebhookAddr()+"/vca", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A serve node runs in-process: embedded NATS, a decider, the ingestor;
// it answers, is ready, and stops cleanly when its context ends.
func TestServeNodeInProcess(t *testing.T) {
	n, err := node.New(baseConfig(t, node.Roles{Name: "serve", Embedded: true, Ingest: true, Deciders: 1}))
	if err != nil {
		t.Fatal(err)
	}
	start(t, n)
	if n.NATSURL() == "" || n.WebhookAddr() == "" || n.AdminAddr() == "" {
		t.Fatalf("addresses: nats %q webhook %q admin %q", n.NATSURL(), n.WebhookAddr(), n.AdminAddr())
	}
	if r := ready(t, n); r.code != http.StatusOK {
		t.Fatalf("readyz %d %+v", r.code, r)
	}
	code, body := post(t, n, seed(t))
	if code != http.StatusOK || !strings.Contains(body, `"callflow"`) {
		t.Fatalf("webhook answered %d %s", code, body)
	}
	// No session exists: the decider's out-of-session answer.
	if !strings.Contains(body, `"clientActionId":"`+wire.ClientActionOutOfSession+`"`) {
		t.Errorf("webhook answer is not the decider's out-of-session answer: %s", body)
	}
}

// Without NATS an ingestor still answers every call and keeps its record
// in the spool, so it stays ready (NATS reported, not failing it); it is
// not ready once the spool has too little room left for new records.
func TestIngestReadinessFollowsRecordsNotNATS(t *testing.T) {
	opts := natstest.Options(t.TempDir())
	ns := natstest.RunServerWith(t, opts)
	cfg := baseConfig(t, node.Roles{Name: "ingest", Ingest: true})
	cfg.Conn = broker.ConnConfig{URLs: ns.ClientURL()}
	cfg.Ingest.SpoolMaxBytes = 4 << 20
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, n)
	if r := ready(t, n); r.code != http.StatusOK || r.Checks["nats"] != "ok" || r.Checks["records"] != "ok" {
		t.Fatalf("readyz with NATS up: %d %+v", r.code, r)
	}

	ns.Shutdown()
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if r := ready(t, n); r.Checks["nats"] == "ok" {
			return fmt.Errorf("readyz still reports NATS ok: %+v", r)
		}
		return nil
	})
	if r := ready(t, n); r.code != http.StatusOK || r.Checks["records"] != "ok" {
		t.Fatalf("readyz with NATS down and an empty spool: %d %+v, want ready", r.code, r)
	}
	if code, body := post(t, n, withEventID(t, seed(t), "no-nats-1", 0)); code != http.StatusOK || !strings.Contains(body, `"clientActionId":"`+wire.ClientActionFallback+`"`) {
		t.Fatalf("call without NATS answered %d %s, want the fallback", code, body)
	}

	// Fill the spool with large (padded) events until the ingestor says
	// it cannot keep more records.
	body := seed(t)
	sent := 0
	natstest.CheckFor(t, 60*time.Second, time.Millisecond, func() error {
		r := ready(t, n)
		if r.code == http.StatusServiceUnavailable {
			if r.Checks["records"] == "ok" {
				t.Fatalf("not ready for another reason than records: %+v", r)
			}
			return nil
		}
		for range 8 {
			sent++
			if code, b := post(t, n, withEventID(t, body, fmt.Sprintf("fill-%d", sent), 60<<10)); code != http.StatusOK {
				t.Fatalf("call %d answered %d %s", sent, code, b)
			}
		}
		return fmt.Errorf("still ready after %d padded calls: %+v", sent, r.Checks)
	})
	if sent < 40 {
		t.Errorf("not ready after only %d calls of 60 KiB in a 4 MiB spool", sent)
	}
}
