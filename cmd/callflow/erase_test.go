package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/wire"
)

// TestArchiverErase: `callflow archiver erase` removes one caller's
// archived calls and keeps another's, as OPERATIONS.md describes; a bad
// number is refused before anything is touched.
func TestArchiverErase(t *testing.T) {
	chAddr := chtest.Addr(t)
	db := chtest.Database(t, chAddr)
	p := start(t, nil, "serve", "--data-dir", t.TempDir(), "--http-addr", anyPort, "--admin-addr", anyPort, "--nats-listen", anyPort,
		"--clickhouse-addr", chAddr, "--clickhouse-database", db, "--archive-retention-months", "1200") // accepted; drops nothing of 2019
	a := waitReady(t, p)
	for i, source := range []string{"+6591230001", "+6591230001", "+6591230002"} {
		body := withPayload(t, wire.EventCallAction, map[string]any{"eventId": "erase-" + string(rune('a'+i)), "source": source})
		resp, err := http.Post("http://"+a.Webhook+"/vca", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("webhook %d: %d", i, resp.StatusCode)
		}
	}
	waitCount(t, chAddr, "SELECT count() FROM "+db+".call_events", 3)

	out, err := cli(t, "archiver", "erase", "--number", "+6591230001", "--clickhouse-addr", chAddr, "--clickhouse-database", db, "--timeout", "60s")
	if err != nil {
		t.Fatalf("erase: %v\n%s", err, out)
	}
	if !strings.Contains(out, "call_events\t2 rows erased") {
		t.Errorf("erase printed %q, want the two rows of call_events", out)
	}
	waitCount(t, chAddr, "SELECT count() FROM "+db+".call_events WHERE position(raw, '6591230001') > 0", 0)
	waitCount(t, chAddr, "SELECT count() FROM "+db+".call_events", 1)

	if out, err := cli(t, "archiver", "erase", "--number", "12ab", "--clickhouse-addr", chAddr, "--clickhouse-database", db); err == nil || !strings.Contains(err.Error(), "invalid") {
		t.Errorf("erase of a malformed number: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	if err := p.stop(t); err != nil || time.Now().After(deadline) {
		t.Fatalf("serve exit: %v", err)
	}
}
