package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/archiver"
	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/node"
	"github.com/callflow/callflow/wire"
)

// ivrCall is one caller walking a flow through the webhook, as 8x8 would:
// a CALL_RECEIVED, then an ACTION_COMPLETED per answer that waits for
// digits, echoing its clientActionId with the digits pressed.
type ivrCall struct {
	t        *testing.T
	n        *node.Node
	id, from string
	to       string
	turn     int
	last     string // the last answer's clientActionId
}

// vca posts the call's next VCA and returns the answer.
func (c *ivrCall) vca(status, digits string) wire.Response {
	c.t.Helper()
	c.turn++
	payload := map[string]any{
		"eventId": fmt.Sprintf("%s-%d", c.id, c.turn), "callId": c.id + "-leg", "sessionId": c.id,
		"subAccountId": "acme", "callStatus": status, "source": c.from, "destination": c.to,
		"timestamp": time.Now().UTC().Format(time.RFC3339),
	}
	if c.last != "" {
		payload["clientActionId"] = c.last
		payload["eventData"] = map[string]any{"dtmf": digits}
	}
	body, _ := json.Marshal(map[string]any{"namespace": "VOICE", "eventType": "CALL_ACTION", "payload": payload})
	code, answer := post(c.t, c.n, body)
	if code != http.StatusOK {
		c.t.Fatalf("%s turn %d: %d %s", c.id, c.turn, code, answer)
	}
	r, err := wire.ParseResponse([]byte(answer))
	if err != nil {
		c.t.Fatalf("%s turn %d: %v: %s", c.id, c.turn, err, answer)
	}
	c.last = r.ClientActionID
	return *r
}

func (c *ivrCall) start() wire.Response         { return c.vca("CALL_RECEIVED", "") }
func (c *ivrCall) press(d string) wire.Response { return c.vca("ACTION_COMPLETED", d) }

// last returns the last action of r.
func lastAction(r wire.Response) wire.Action { return r.Callflow[len(r.Callflow)-1] }

// The menu, end to end against real NATS and ClickHouse: the
// prompt, a wrong key and a silence asked again, a transfer, PIN-routed
// masking, the goodbye after the tries, and a flow changed mid-call; every
// step is archived, and the funnel query reads it back.
func TestFlowEndToEnd(t *testing.T) {
	ch := chtest.Addr(t)
	db := chtest.Database(t, ch)
	cfg := baseConfig(t, node.Roles{Name: "serve", Embedded: true, Ingest: true, Deciders: 2, Archiver: true})
	cfg.Archiver = archiver.Config{
		ClickHouse: archiver.ClickHouseConfig{Addrs: []string{ch}, Database: db},
		Batch:      archiver.BatchConfig{MaxAge: 50 * time.Millisecond},
	}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, n)

	flow, err := os.ReadFile(filepath.Join("..", "..", "deploy", "flows", "main-menu.json"))
	if err != nil {
		t.Fatal(err)
	}
	const number, caller, driver = "+6568350001", "+6591110001", "+6591110002"
	for _, req := range []struct{ method, path, body string }{
		{http.MethodPut, "/v1/flows/main-menu", string(flow)},
		{http.MethodPut, "/v1/numbers/" + number, `{"subAccountId": "acme", "flow": "main-menu"}`},
		{http.MethodPost, "/v1/sessions", `{"virtualNumber": "` + number + `", "participants": ["` + caller + `", "` + driver + `"], "pin": "4321"}`},
	} {
		if code, body := adminCall(t, n, req.method, req.path, req.body); code/100 != 2 {
			t.Fatalf("%s %s: %d %s", req.method, req.path, code, body)
		}
	}

	// The caller's order: a wrong key and a silence, then 2 (driver), then
	// the order's PIN: connected to the driver.
	c := &ivrCall{t: t, n: n, id: "ivr-driver", from: caller, to: number}
	if a := lastAction(c.start()); a.Action != wire.ActionSayAndCapture || !strings.Contains(a.Params.Text, "For sales press 1") {
		t.Fatalf("first answer %+v, want the menu's prompt", a)
	}
	for _, d := range []string{"9", ""} {
		if a := lastAction(c.press(d)); a.Action != wire.ActionSayAndCapture || !strings.Contains(a.Params.Text, "For sales") {
			t.Fatalf("after %q: %+v, want the menu asked again", d, a)
		}
	}
	if a := lastAction(c.press("2")); a.Action != wire.ActionSayAndCapture || !strings.Contains(a.Params.Text, "PIN") {
		t.Fatalf("after 2: %+v, want the PIN prompt", a)
	}
	if a := lastAction(c.press("4321#")); a.Action != wire.ActionMakeCall || a.Params.Destination != driver || a.Params.Source != number {
		t.Fatalf("after the PIN: %+v, want a makeCall to the driver from %s", a, number)
	}

	// A caller out of tries hears the goodbye.
	bye := &ivrCall{t: t, n: n, id: "ivr-bye", from: "+6591110003", to: number}
	bye.start()
	var a wire.Action
	for _, d := range []string{"7", "8", "9"} {
		r := bye.press(d)
		a = lastAction(r)
	}
	if a.Action != wire.ActionHangup {
		t.Fatalf("after three wrong keys: %+v, want the goodbye and a hangup", a)
	}

	// A flow changed mid-call: a caller in version 1 finishes on it, a
	// new caller gets version 2.
	inV1 := &ivrCall{t: t, n: n, id: "ivr-v1", from: "+6591110004", to: number}
	inV1.start()
	v2 := strings.Replace(string(flow), "+6560000001", "+6560000002", 1)
	if code, body := adminCall(t, n, http.MethodPut, "/v1/flows/main-menu", v2); code != http.StatusOK || !strings.Contains(body, `"version":2`) {
		t.Fatalf("flow v2: %d %s", code, body)
	}
	if a := lastAction(inV1.press("1")); a.Action != wire.ActionMakeCall || a.Params.Destination != "+6560000001" {
		t.Fatalf("the version-1 caller transferred to %+v, want version 1's +6560000001", a)
	}
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		newer := &ivrCall{t: t, n: n, id: fmt.Sprintf("ivr-v2-%d", time.Now().UnixNano()), from: "+6591110005", to: number}
		newer.start()
		if a := lastAction(newer.press("1")); a.Params.Destination != "+6560000002" {
			return fmt.Errorf("a new caller transferred to %s, want version 2's +6560000002", a.Params.Destination)
		}
		return nil
	})

	// Every step is archived: the funnel of version 1 reaches the PIN step
	// and the transfer, and the driver's call is recorded with its session.
	conn := chtest.Conn(t, ch)
	natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		steps := chtest.Count(t, conn, "SELECT uniqExact(flow_step) FROM "+db+".call_events FINAL WHERE flow_id = 'main-menu' AND flow_version = 1")
		connects := chtest.Count(t, conn, "SELECT count() FROM "+db+".call_events FINAL WHERE session_id = 'ivr-driver' AND decision_outcome = 'connect' AND masking_session_id != '' AND digits = '4321#'")
		if steps < 3 || connects != 1 {
			return fmt.Errorf("archived: %d steps of version 1 (want welcome, driver, sales...), %d PIN connects (want 1)", steps, connects)
		}
		return nil
	})
}
