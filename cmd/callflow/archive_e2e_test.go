package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/wire"
)

// postMany posts CALL_ACTIONs with ids prefix-0 .. prefix-(n-1) from a few
// concurrent clients and fails the test on any answer but 200. Each
// request is bounded, so it returns.
func postMany(t *testing.T, addr, prefix string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	ids := make(chan int)
	client := &http.Client{Timeout: 30 * time.Second}
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = withPayload(t, wire.EventCallAction, map[string]any{"eventId": fmt.Sprintf("%s-%d", prefix, i)})
	}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				resp, err := client.Post("http://"+addr+"/vca", "application/json", bytes.NewReader(bodies[i]))
				if err != nil {
					t.Errorf("webhook %d: %v", i, err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("webhook %d: %d %s", i, resp.StatusCode, b)
				}
			}
		}()
	}
	for i := range n {
		ids <- i
	}
	close(ids)
	wg.Wait()
}

func waitCount(t *testing.T, chAddr, query string, want uint64) {
	t.Helper()
	conn := chtest.Conn(t, chAddr)
	natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		var got uint64
		if err := conn.QueryRow(context.Background(), query).Scan(&got); err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s = %d, want %d", query, got, want)
		}
		return nil
	})
}

// TestServeArchivesToClickHouse: serve with a ClickHouse archives every
// posted webhook, each event id once through FINAL, 8x8's repeats included.
func TestServeArchivesToClickHouse(t *testing.T) {
	chAddr := chtest.Addr(t)
	db := chtest.Database(t, chAddr)
	p := start(t, nil, "serve", "--data-dir", t.TempDir(), "--http-addr", anyPort, "--admin-addr", anyPort, "--nats-listen", anyPort,
		"--clickhouse-addr", chAddr, "--clickhouse-database", db)
	a := waitReady(t, p)
	httpAddr, adminAddr := a.Webhook, a.Admin
	postMany(t, httpAddr, "serve", 300)
	postMany(t, httpAddr, "serve", 50) // 8x8 sending the first 50 again
	waitCount(t, chAddr, "SELECT count() FROM "+db+".call_events FINAL", 300)
	waitCount(t, chAddr, "SELECT uniq(event_id) FROM "+db+".call_events", 300)

	// Every metric the dashboard and the alerts use is exported, with the
	// type they assume.
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for name, typ := range documentedMetrics {
		if !strings.Contains(string(body), "# TYPE "+name+" "+typ+"\n") {
			t.Errorf("/metrics lacks %s of type %s", name, typ)
		}
	}
	if err := p.stop(t); err != nil {
		t.Fatalf("serve exit: %v", err)
	}
}

// TestArchiverKilledMidRun: an archiver killed with SIGKILL while records
// flow, then restarted, leaves every record in ClickHouse exactly once as
// read through FINAL.
func TestArchiverKilledMidRun(t *testing.T) {
	chAddr := chtest.Addr(t)
	db := chtest.Database(t, chAddr)
	srv := start(t, nil, "serve", "--data-dir", t.TempDir(), "--http-addr", anyPort, "--admin-addr", anyPort,
		"--nats-listen", anyPort, "--clickhouse-addr", "")
	a := waitReady(t, srv)
	httpAddr := a.Webhook
	archiverArgs := []string{"archiver", "--nats-url", a.NATS, "--admin-addr", anyPort, "--clickhouse-addr", chAddr,
		"--clickhouse-database", db, "--batch-max-rows", "100", "--batch-max-age", "50ms",
		// What the killed archiver held is redelivered after this.
		"--archiver-ack-wait", "3s"}

	arch := start(t, nil, archiverArgs...)
	const total = 1500
	posted := make(chan struct{})
	go func() { defer close(posted); postMany(t, httpAddr, "kill", total) }()

	// Kill it once it has written part of the flow.
	conn := chtest.Conn(t, chAddr)
	var archived uint64
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+db+".call_events").Scan(&archived); err != nil || archived == 0 {
			return fmt.Errorf("nothing archived yet (%v)", err)
		}
		return nil
	})
	if err := arch.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arch.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the archiver still runs 10s after SIGKILL")
	}
	if archived >= total {
		t.Fatalf("the whole flow was archived before the kill: the restart had nothing to do")
	}
	t.Logf("archiver killed with %d rows of %d archived", archived, total)

	restarted := start(t, nil, archiverArgs...)
	select {
	case <-posted:
	case <-time.After(2 * time.Minute):
		t.Fatal("posting the webhooks took over 2 minutes")
	}
	waitCount(t, chAddr, "SELECT count() FROM "+db+".call_events FINAL", total)
	waitCount(t, chAddr, "SELECT uniq(event_id) FROM "+db+".call_events", total)
	for _, p := range []*proc{restarted, srv} {
		if err := p.stop(t); err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	}
}
