package node_test

import (
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

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/node"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// End to end: 8x8 POSTs a VIRTUAL_NUMBER_UPDATE to a running serve node;
// its numbers appear in the pool with no admin call, the change is
// audited with 8x8 as its author, and readiness and metrics report the
// feed.
func TestVirtualNumberUpdateFillsPool(t *testing.T) {
	n, err := node.New(baseConfig(t, node.Roles{Name: "serve", Embedded: true, Ingest: true, Deciders: 1}))
	if err != nil {
		t.Fatal(err)
	}
	start(t, n)
	body, err := os.ReadFile(filepath.Join("..", "..", "wire", "testdata", "virtual_number_update.json"))
	if err != nil {
		t.Fatal(err)
	}
	if code, answer := post(t, n, body); code != http.StatusOK {
		t.Fatalf("webhook answered %d %s", code, answer)
	}

	// The pool as another process sees it: a store on the same bucket.
	nc, err := nats.Connect(n.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := session.Open(ctx, js, session.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	want := map[string]string{"+6512345678": session.NumberActive, "+6512345679": session.NumberUnhealthy}
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		for number, status := range want {
			v, err := store.GetNumber(ctx, number, nil)
			if err != nil {
				return fmt.Errorf("%s: %w", number, err)
			}
			if v.Status != status || v.SubAccountID != "your_subaccount_id" || v.CountryCode != "SG" {
				return fmt.Errorf("%s: %+v", number, v.Number)
			}
		}
		return nil
	})

	// Two audit records by 8x8, naming the webhook's record.
	cons, err := js.OrderedConsumer(ctx, "CALLS", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.AuditSubject(wire.AuditNumberUpdate)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("audit record: %v", err)
		}
		rec, err := wire.ParseRecord(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Payload wire.Audit `json:"payload"`
		}
		if err := json.Unmarshal(rec.Event, &ev); err != nil {
			t.Fatal(err)
		}
		a := ev.Payload
		if a.Operation != wire.AuditNumberUpdate || a.Actor.Author != wire.Author8x8 || a.Actor.Source == "" ||
			a.SubAccountID != "your_subaccount_id" || want[a.VirtualNumber] == "" {
			t.Errorf("audit %+v", a)
		}
	}

	if r := ready(t, n); r.code != http.StatusOK || r.Checks["pool_feed"] != "ok" {
		t.Errorf("readyz %d %+v, want ok with the pool_feed check", r.code, r)
	}
	resp, err := http.Get("http://" + n.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{
		"# TYPE callflow_pool_numbers gauge",
		"# TYPE callflow_pool_updates_total counter",
		"# TYPE callflow_pool_number_changes_total counter",
		"# TYPE callflow_pool_audit_failures_total counter",
		`callflow_pool_updates_total{result="applied"} 1`,
		`callflow_pool_numbers{status="Active",sub_account="your_subaccount_id"} 1`,
		`callflow_pool_numbers{status="Unhealthy",sub_account="your_subaccount_id"} 1`,
		`callflow_pool_number_changes_total{status="Active"} 1`,
	} {
		if !strings.Contains(string(metrics), line+"\n") {
			t.Errorf("/metrics lacks %s", line)
		}
	}
}
