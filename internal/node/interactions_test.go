package node_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/archiver"
	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/node"
)

// adminCall sends one request to n's admin API and returns the status and
// body.
func adminCall(t *testing.T, n *node.Node, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.AdminAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestInteractionsFromTheArchive: a serve node with ClickHouse answers
// GET /v1/sessions/{id}/interactions from the archive: a call connected
// in a session, archived, is its interaction. A node without ClickHouse
// answers 503 saying so.
func TestInteractionsFromTheArchive(t *testing.T) {
	ch := chtest.Addr(t)
	db := chtest.Database(t, ch)
	cfg := baseConfig(t, node.Roles{Name: "serve", Embedded: true, Ingest: true, Deciders: 1, Archiver: true})
	cfg.Archiver = archiver.Config{
		ClickHouse: archiver.ClickHouseConfig{Addrs: []string{ch}, Database: db},
		Batch:      archiver.BatchConfig{MaxAge: 50 * time.Millisecond},
	}
	cfg.History = &cfg.Archiver.ClickHouse
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, n)

	code, body := adminCall(t, n, http.MethodPost, "/v1/sessions",
		`{"virtualNumber":"+65987654321","participants":["+65123456789","+6587654321"],"ttlSeconds":3600}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	var sess struct{ ID string }
	if err := json.Unmarshal([]byte(body), &sess); err != nil {
		t.Fatal(err)
	}
	path := "/v1/sessions/" + sess.ID + "/interactions"
	// The archiver creates its tables as it starts, in the background:
	// until then the archive cannot answer (503).
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if code, body := adminCall(t, n, http.MethodGet, path, ""); code != http.StatusOK || !strings.Contains(body, `"interactions":[]`) {
			return fmt.Errorf("before any call: %d %s, want an empty list", code, body)
		}
		return nil
	})

	// The seed's caller calls the virtual number, now.
	var ev map[string]any
	if err := json.Unmarshal(seed(t), &ev); err != nil {
		t.Fatal(err)
	}
	ev["payload"].(map[string]any)["timestamp"] = time.Now().UTC().Format(time.RFC3339)
	call, _ := json.Marshal(ev)
	if code, body := post(t, n, call); code != http.StatusOK || !strings.Contains(body, "makeCall") {
		t.Fatalf("webhook: %d %s, want a makeCall", code, body)
	}

	var page struct {
		Interactions []archiver.Interaction `json:"interactions"`
		NextCursor   *string                `json:"nextCursor"`
	}
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		code, body := adminCall(t, n, http.MethodGet, path, "")
		if code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			return err
		}
		if len(page.Interactions) != 1 {
			return fmt.Errorf("%d interactions: %s", len(page.Interactions), body)
		}
		return nil
	})
	got := page.Interactions[0]
	if got.MaskingSessionID != sess.ID || got.Caller != "+65123456789" || got.Callee != "+6587654321" || got.VirtualNumber != "+65987654321" || page.NextCursor != nil {
		t.Errorf("interaction %+v, next %v", got, page.NextCursor)
	}
	if code, body := adminCall(t, n, http.MethodGet, path+"?cursor=bogus", ""); code != http.StatusBadRequest || !strings.Contains(body, "cursor") {
		t.Errorf("bad cursor: %d %s, want 400 naming cursor", code, body)
	}

	// Without ClickHouse: 503, saying what is missing.
	bare, err := node.New(baseConfig(t, node.Roles{Name: "serve", Embedded: true, Ingest: true, Deciders: 1}))
	if err != nil {
		t.Fatal(err)
	}
	start(t, bare)
	code, body = adminCall(t, bare, http.MethodPost, "/v1/sessions", `{"virtualNumber":"+65987654321","participants":["+65123456789","+6587654321"]}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	if err := json.Unmarshal([]byte(body), &sess); err != nil {
		t.Fatal(err)
	}
	if code, body := adminCall(t, bare, http.MethodGet, "/v1/sessions/"+sess.ID+"/interactions", ""); code != http.StatusServiceUnavailable ||
		!strings.Contains(body, "interactions need ClickHouse (--clickhouse-addr)") {
		t.Errorf("without ClickHouse: %d %s, want 503", code, body)
	}
}
