package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
)

// exampleFlows is where the example flows are.
const exampleFlows = "../../deploy/flows"

// TestExampleFlowsValid reads every file of deploy/flows as `flows apply`
// does (YAML converted to the JSON the API takes) and checks each flow as
// the API would: session.ParseFlow, then Validate. The examples are a
// sales/support menu and PIN-routed deliveries, besides the README's.
func TestExampleFlowsValid(t *testing.T) {
	docs, err := readFlowFiles(exampleFlows)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, d := range docs {
		f, err := session.ParseFlow(d.body)
		if err != nil {
			t.Errorf("%s: %v", d.where, err)
			continue
		}
		if err := f.Validate(); err != nil {
			t.Errorf("%s: %v", d.where, err)
		}
		ids[f.ID] = true
		kinds := map[string]bool{}
		for _, st := range f.Steps {
			kinds[st.Kind()] = true
		}
		t.Logf("%s: flow %s, %d steps, kinds %v", d.where, f.ID, len(f.Steps), kinds)
	}
	for _, id := range []string{"main-menu", "sales-support", "deliveries"} {
		if !ids[id] {
			t.Errorf("deploy/flows has no flow %q", id)
		}
	}
}

// TestFlowFiles: YAML becomes the JSON the API takes (keys as written, so
// that options: {1: sales} is {"1": "sales"}; quoted numbers stay
// strings), several flows per file as YAML documents, JSON values or a
// list; what cannot be a flow is refused with the file and place.
func TestFlowFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	docs, err := readFlowFile(write("two.yaml", `
id: a
start: s
steps:
  s: {menu: {say: {text: hi}, options: {1: t, "*": s, 01: t}}}
  t: {transfer: {destination: "+6560000001"}}
---
# an empty document is skipped
---
- id: b
  start: s
  steps: {s: {hangup: {}}}
- id: c
  start: s
  steps: {s: {hangup: {say: {text: "yes", repetition: 2}}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range docs {
		got = append(got, d.id+" "+string(d.body))
	}
	want := []string{
		`a {"id":"a","start":"s","steps":{"s":{"menu":{"options":{"*":"s","01":"t","1":"t"},"say":{"text":"hi"}}},"t":{"transfer":{"destination":"+6560000001"}}}}`,
		`b {"id":"b","start":"s","steps":{"s":{"hangup":{}}}}`,
		`c {"id":"c","start":"s","steps":{"s":{"hangup":{"say":{"repetition":2,"text":"yes"}}}}}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("read\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	docs, err = readFlowFile(write("two.json", `{"id": "x", "start": "s", "steps": {}} [{"id": "y"}]`))
	if err != nil || len(docs) != 2 || docs[0].id != "x" || docs[1].id != "y" {
		t.Errorf("two JSON values: %+v, %v", docs, err)
	}
	for name, body := range map[string]string{
		"dup.yaml":    "id: a\nid: b\n",
		"noid.yaml":   "start: s\n",
		"scalar.yaml": "hello\n",
		"bad.json":    `{"id": "a",}`,
		"merge.yaml":  "base: &b {start: s}\nid: a\n<<: *b\n",
		"numid.json":  `{"id": 7}`,
	} {
		if _, err := readFlowFile(write(name, body)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v, want one naming the file", name, err)
		}
	}
	if _, err := parseDigits("1,,12#,*"); err != nil {
		t.Errorf("parseDigits: %v", err)
	}
	for _, bad := range []string{"1,a", "12 3", strings.Repeat("1", 30)} {
		if _, err := parseDigits(bad); err == nil {
			t.Errorf("parseDigits(%q) accepted", bad)
		}
	}
}

// TestFlowsCLI drives `callflow flows` against a real `callflow serve`:
// every example flow of deploy/flows is applied through the admin API
// (201, then 200 with the next version), read, listed and deleted
// (409 while attached to a number, unless --force); `flows simulate`
// walks the main menu through serve's deciders (the flow engine) to a PIN
// connect and to a transfer; the API's refusals print its message and
// exit 1, usage errors exit 2.
func TestFlowsCLI(t *testing.T) {
	const root, acme = "flows-root-5c1d", "flows-acme-7e2a"
	p := start(t, nil, "serve", "--data-dir", t.TempDir(), "--http-addr", anyPort, "--admin-addr", anyPort,
		"--nats-listen", anyPort, "--clickhouse-addr", "", "--admin-token", root+","+acme+"@acme")
	adminURL := "http://" + waitReady(t, p).Admin
	as := func(token string, args ...string) []string {
		return append(args[:2:2], append([]string{"--admin-url", adminURL, "--admin-token", token}, args[2:]...)...)
	}
	run := func(token string, args ...string) string {
		t.Helper()
		out, stderr, code := cliCode(t, as(token, args...)...)
		if code != 0 {
			t.Fatalf("callflow %v: exit %d: %s", args, code, stderr)
		}
		return out
	}

	// The examples, as a directory: each created (201).
	files, err := filepath.Glob(filepath.Join(exampleFlows, "*"))
	if err != nil || len(files) < 3 {
		t.Fatalf("deploy/flows: %v %v", files, err)
	}
	out := run(root, "flows", "apply", "-f", exampleFlows)
	created := regexp.MustCompile(`(?m)^flow (\S+) version 1 created \(`).FindAllStringSubmatch(out, -1)
	if len(created) != len(files) {
		t.Fatalf("flows apply -f deploy/flows printed\n%s\nwant one created flow per file (%d)", out, len(files))
	}
	// One file again, with the acme token: a new version (200).
	out = run(acme, "flows", "apply", "-f", filepath.Join(exampleFlows, "main-menu.json"))
	if !strings.HasPrefix(out, "flow main-menu version 2 updated (") {
		t.Errorf("second apply printed %q", out)
	}
	var f session.Flow
	if err := json.Unmarshal([]byte(run(acme, "flows", "get", "main-menu")), &f); err != nil {
		t.Fatal(err)
	}
	if f.ID != "main-menu" || f.Version != 2 || f.SubAccountID != "acme" || f.Steps["welcome"].Menu == nil {
		t.Errorf("flows get: %+v", f)
	}
	var list struct {
		Flows      []session.Flow
		NextCursor *string
	}
	if err := json.Unmarshal([]byte(run(acme, "flows", "list", "--limit", "1", "--all")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Flows) != len(files) || list.NextCursor != nil {
		t.Errorf("flows list --all: %d flows, next %v", len(list.Flows), list.NextCursor)
	}
	if err := json.Unmarshal([]byte(run(root, "flows", "list", "--sub-account", "globex")), &list); err != nil || len(list.Flows) != 0 {
		t.Errorf("flows list --sub-account globex: %+v %v", list, err)
	}

	// --output on list and get.
	ids := strings.Fields(run(acme, "flows", "list", "-o", "ids"))
	if len(ids) != len(files) || !slices.Contains(ids, "main-menu") {
		t.Errorf("flows list -o ids: %q", ids)
	}
	table := strings.Split(strings.TrimSpace(run(acme, "flows", "get", "main-menu", "-o", "table")), "\n")
	if len(table) != 2 || !strings.HasPrefix(table[0], "ID ") || !strings.Contains(table[0], "VERSION") ||
		!strings.HasPrefix(table[1], "main-menu  2 ") || !strings.Contains(table[1], " acme ") {
		t.Errorf("flows get -o table:\n%s", strings.Join(table, "\n"))
	}

	// Attached to a number, a flow is not deleted without --force.
	adminDo(t, adminURL, root, http.MethodPut, "/v1/numbers/+6568340001", `{"subAccountId": "acme", "flow": "deliveries"}`, http.StatusCreated)

	// simulate through serve's deciders: the README's main menu on a
	// number with a PIN session; a wrong key, a silence, then the driver's
	// menu and the PIN connect the caller to the other participant.
	adminDo(t, adminURL, root, http.MethodPut, "/v1/numbers/+6568340002", `{"subAccountId": "acme", "flow": "main-menu"}`, http.StatusCreated)
	adminDo(t, adminURL, root, http.MethodPost, "/v1/sessions",
		`{"virtualNumber": "+6568340002", "subAccountId": "acme", "participants": ["+6591230011", "+6591230012"], "pin": "4321"}`, http.StatusCreated)
	natsURL := p.addrs.NATS
	out = run(root, "flows", "simulate", "--nats-url", natsURL, "--number", "+6568340002", "--from", "+6591230011",
		"--sub-account", "acme", "--digits", "9,,2,4321")
	for _, want := range []string{
		"answer: flow main-menu version 2, step welcome (flow); clientActionId flow:main-menu:2:welcome:0",
		`sayAndCapture "For sales press 1. For your driver press 2."`,
		"clientActionId flow:main-menu:2:welcome:2",
		"5. ACTION_COMPLETED, digits 4321",
		"step driver (connect), session ",
		"makeCall +6568340002 -> +6591230012",
		"the call is connected to +6591230012 (makeCall)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("simulate through serve printed\n%s\nwithout %q", out, want)
		}
	}
	out = run(root, "flows", "simulate", "--nats-url", natsURL, "--number", "+6568340002", "--from", "+6599999999", "--digits", "1")
	if !strings.Contains(out, `say "Connecting you to sales."`) || !strings.Contains(out, "the call is connected to +6560000001 (makeCall)") {
		t.Errorf("simulate to sales printed\n%s", out)
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("id: broken\nstart: a\nsteps:\n  a: {menu: {say: {text: hi}, options: {1: nowhere}}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	errs := []struct {
		name  string
		token string
		args  []string
		code  int
		want  string
	}{
		{"invalid flow", root, []string{"flows", "apply", "-f", bad}, 1, `flow "broken" (` + bad + `): 400 Bad Request: steps.a.menu.options.1: step "nowhere" does not exist`},
		{"another tenant's flow", acme, []string{"flows", "apply", "-f", bad}, 1, "400 Bad Request"},
		{"missing file", root, []string{"flows", "apply", "-f", filepath.Join(dir, "nope.yaml")}, 1, "no such file"},
		{"apply without -f", root, []string{"flows", "apply"}, 2, "give the flows with -f"},
		{"get unknown", root, []string{"flows", "get", "nope"}, 1, "404 Not Found"},
		{"bad limit", root, []string{"flows", "list", "--limit", "5000"}, 1, "400 Bad Request: --limit: "},
		{"delete attached", root, []string{"flows", "delete", "deliveries"}, 1, "409 Conflict"},
		{"get without id", root, []string{"flows", "get"}, 2, "exactly one argument"},
		{"a flag of another verb", root, []string{"flows", "get", "--force", "x"}, 2, "does not take --force"},
		{"unknown verb", root, []string{"flows", "put", "x"}, 2, "unknown action"},
		{"simulate without number", root, []string{"flows", "simulate", "--from", "+6591230011"}, 2, "give --number"},
		{"simulate with bad digits", root, []string{"flows", "simulate", "--number", "+6568340001", "--from", "+6591230011", "--digits", "1,x"}, 2, "--digits"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := cliCode(t, as(tt.token, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d with %q", code, stderr, tt.code, tt.want)
			}
		})
	}
	if out := run(root, "flows", "delete", "deliveries", "--force"); !strings.Contains(out, "204") {
		t.Errorf("flows delete --force printed %q", out)
	}
	if out := run(acme, "flows", "delete", "sales-support"); !strings.Contains(out, "204") {
		t.Errorf("flows delete printed %q", out)
	}
	if _, stderr, code := cliCode(t, as(root, "flows", "get", "deliveries")...); code != 1 || !strings.Contains(stderr, "404") {
		t.Errorf("get after delete: exit %d %q", code, stderr)
	}
}

// adminDo sends one request to the admin API and fails the test unless
// it answers want.
func adminDo(t *testing.T, adminURL, token, method, path, body string, want int) {
	t.Helper()
	req, err := http.NewRequest(method, adminURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s %s, want %d", method, path, resp.Status, b, want)
	}
}

// fakeDecider answers decide requests on nc with answer and keeps them.
type fakeDecider struct {
	mu   sync.Mutex
	reqs []wire.DecideRequest
}

func (d *fakeDecider) requests() []wire.DecideRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]wire.DecideRequest(nil), d.reqs...)
}

// TestFlowsSimulate runs `flows simulate` against a fake decider (a NATS
// responder on the decide subject that plays the main-menu flow):
// the requests are a CALL_RECEIVED, then ACTION_COMPLETED with the
// answer's clientActionId and the next digits (an empty entry: none); the
// walk stops at a makeCall, a hangup, or when the digits run out. With no
// decider listening it says so, exit 1.
func TestFlowsSimulate(t *testing.T) {
	ns := natstest.RunServer(t)
	nc, _ := natstest.Connect(t, ns)
	capture := func(step string, tries int, text string, min, max int) []byte {
		st := wire.FlowState{Flow: "main-menu", Version: 4, Step: step, Tries: tries}
		r := wire.Response{ClientActionID: st.ClientActionID(), Callflow: []wire.Action{
			wire.SayAndCaptureAction(wire.Capture{Say: wire.Say{Text: text}, MinDigits: min, MaxDigits: max, OverallTimeout: 5000, CompleteOnHash: true})}}
		return r.JSON()
	}
	const session = "5f1d0c6a2b7e4c1d9a8b3e2f4d6c8a10"
	d := &fakeDecider{}
	sub, err := nc.Subscribe(wire.DecideSubject, func(m *nats.Msg) {
		req, err := wire.ParseDecideRequest(m.Data)
		if err != nil {
			t.Errorf("decide request %q: %v", m.Data, err)
			return
		}
		d.mu.Lock()
		d.reqs = append(d.reqs, req)
		d.mu.Unlock()
		st, _ := wire.ParseFlowState(req.ClientActionID)
		var answer []byte
		switch {
		case req.CallStatus == "CALL_RECEIVED":
			answer = capture("welcome", 0, "For sales press 1. For your driver press 2.", 0, 1)
		case st.Step == "welcome" && req.DTMF == "2":
			answer = capture("driver", 0, "Enter your order PIN, then hash.", 4, 8)
		case st.Step == "welcome" && req.DTMF == "0":
			r := wire.SayThenHangup(wire.FlowState{Flow: "main-menu", Version: 4, Step: "bye"}.ClientActionID(), wire.Say{Text: "Goodbye."})
			answer = r.JSON()
		case st.Step == "welcome":
			answer = capture("welcome", st.Tries+1, "For sales press 1. For your driver press 2.", 0, 1)
		case st.Step == "driver" && req.DTMF == "1234#":
			r := wire.Response{ClientActionID: wire.FlowState{Flow: "main-menu", Version: 4, Step: "driver", Session: session}.ClientActionID(),
				Callflow: []wire.Action{wire.SayAction(wire.Say{Text: "Connecting you."}), wire.MakeCall("+6568340001", "+6591230012", false)}}
			answer = r.JSON()
		default:
			answer = capture("driver", st.Tries+1, "Enter your order PIN, then hash.", 4, 8)
		}
		_ = m.Respond(answer)
	})
	if err != nil {
		t.Fatal(err)
	}
	simulate := func(digits string) (string, []wire.DecideRequest) {
		t.Helper()
		before := len(d.requests())
		out, stderr, code := cliCode(t, "flows", "simulate", "--nats-url", ns.ClientURL(), "--number", "+6568340001",
			"--from", "+6591230011", "--sub-account", "acme", "--digits", digits)
		if code != 0 {
			t.Fatalf("simulate --digits %q: exit %d: %s", digits, code, stderr)
		}
		return out, d.requests()[before:]
	}

	// A wrong key, a silence, the driver's menu, a PIN: connected.
	out, reqs := simulate("9,,2,1234#")
	if len(reqs) != 5 {
		t.Fatalf("%d decide requests, want 5:\n%s", len(reqs), out)
	}
	wantDTMF := []string{"", "9", "", "2", "1234#"}
	for i, r := range reqs {
		wantStatus := "ACTION_COMPLETED"
		if i == 0 {
			wantStatus = "CALL_RECEIVED"
		}
		if r.CallStatus != wantStatus || r.DTMF != wantDTMF[i] || r.CallID != reqs[0].CallID || r.Source != "+6591230011" ||
			r.Destination != "+6568340001" || r.SubAccountID != "acme" || (i > 0 && r.EventID == reqs[i-1].EventID) {
			t.Errorf("request %d: %+v", i+1, r)
		}
	}
	for i, wantID := range []string{"", "flow:main-menu:4:welcome:0", "flow:main-menu:4:welcome:1", "flow:main-menu:4:welcome:2", "flow:main-menu:4:driver:0"} {
		if reqs[i].ClientActionID != wantID {
			t.Errorf("request %d: clientActionId %q, want %q (the answer before)", i+1, reqs[i].ClientActionID, wantID)
		}
	}
	for _, want := range []string{
		"1. CALL_RECEIVED",
		"answer: flow main-menu version 4, step welcome (flow); clientActionId flow:main-menu:4:welcome:0",
		`sayAndCapture "For sales press 1. For your driver press 2.": 1 digit(s) within 5s, # ends`,
		"2. ACTION_COMPLETED, digits 9",
		"3. ACTION_COMPLETED, no digits",
		`sayAndCapture "Enter your order PIN, then hash.": 4 to 8 digits`,
		"5. ACTION_COMPLETED, digits 1234#",
		"answer: flow main-menu version 4, step driver (connect), session " + session,
		`say "Connecting you."`,
		"makeCall +6568340001 -> +6591230012",
		"the call is connected to +6591230012 (makeCall)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("simulate printed\n%s\nwithout %q", out, want)
		}
	}

	// A hangup ends it; so do the digits running out.
	if out, reqs := simulate("0,5,6"); len(reqs) != 2 || !strings.Contains(out, "the call ends (hangup)") {
		t.Errorf("hangup: %d requests:\n%s", len(reqs), out)
	}
	if out, reqs := simulate("2"); len(reqs) != 2 || !strings.Contains(out, "--digits has no more") {
		t.Errorf("digits run out: %d requests:\n%s", len(reqs), out)
	}
	// --max-steps bounds a caller who never gets it right.
	out, _, code := cliCode(t, "flows", "simulate", "--nats-url", ns.ClientURL(), "--number", "+6568340001",
		"--from", "+6591230011", "--digits", "2,1,1,1,1,1,1", "--max-steps", "3")
	if code != 0 || !strings.Contains(out, "stopped after 3 answers") {
		t.Errorf("--max-steps 3: exit %d:\n%s", code, out)
	}

	// No decider.
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := cliCode(t, "flows", "simulate", "--nats-url", ns.ClientURL(), "--number", "+6568340001", "--from", "+6591230011")
	if code != 1 || !strings.Contains(stderr, "no decider is running on NATS at nats://") {
		t.Errorf("without a decider: exit %d, %q", code, stderr)
	}
	// A reply that is no callflow.
	if _, err := nc.Subscribe(wire.DecideSubject, func(m *nats.Msg) { _ = m.Respond([]byte(`{"nope": 1}`)) }); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = cliCode(t, "flows", "simulate", "--nats-url", ns.ClientURL(), "--number", "+6568340001", "--from", "+6591230011")
	if code != 1 || !strings.Contains(stderr, "not a valid callflow") {
		t.Errorf("a bad reply: exit %d, %q", code, stderr)
	}
}
