package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// binary is the callflow binary built once for the end-to-end tests, which
// run it as a user would: as a separate process, stopped with signals.
// When the tests run with the race detector, so does the binary: the
// processes the end-to-end, fault and security tests start are where
// most of the code runs.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "callflow-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "callflow")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build callflow:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// anyPort is the listen address children are given: the kernel picks a
// free port, and the test reads it from the child's log (proc.listening).
// A port the test picked and closed could be taken by anyone, a parallel
// package's test included, before the child bound it.
const anyPort = "127.0.0.1:0"

// childStartTimeout bounds how long a child takes to bind its listeners
// (connecting to NATS, creating the stream and the bucket, loading the
// session index), a race-detector build on a crowded machine included.
const childStartTimeout = 60 * time.Second

// listeners are where a child process listens, as it logs them once they
// are bound: the admin and webhook addresses of "callflow running" and the
// client URL of "embedded NATS server started".
type listeners struct {
	// Admin and Webhook are host:port; Webhook is "" for a role without
	// one.
	Admin, Webhook string
	// NATS is the embedded NATS server's client URL (nats://host:port),
	// "" without one.
	NATS string
}

// proc is a callflow process under test.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan error
	// exited is closed once the process has exited and its log is read
	// to the end.
	exited chan struct{}
	// running is closed when the process logs "callflow running"; addrs
	// is set before.
	running chan struct{}
	addrs   listeners
}

// start runs the binary with args and env; it is killed if the test ends
// first.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), done: make(chan error, 1), exited: make(chan struct{}), running: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.Write(sc.Bytes())
			p.logs.WriteByte('\n')
			p.mu.Unlock()
			p.noteListeners(sc.Bytes())
		}
		_, _ = io.Copy(io.Discard, stderr) // past an overlong line
		p.done <- p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("%v still running 10s after SIGKILL", args[:1])
		}
		// A race-detector build reports a race as it happens, and exits
		// with status 66 only if it gets to exit by itself.
		if strings.Contains(p.log(), "WARNING: DATA RACE") {
			t.Errorf("the race detector found a data race in %v", args[:1])
		}
		if t.Failed() {
			t.Logf("logs of %v:\n%s", args, p.log())
		}
	})
	return p
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// noteListeners reads the addresses from the log lines that announce
// them. The embedded NATS server's line comes first; "callflow running"
// comes once every listener is bound.
func (p *proc) noteListeners(line []byte) {
	if !bytes.Contains(line, []byte(`"embedded NATS server started"`)) && !bytes.Contains(line, []byte(`"callflow running"`)) {
		return
	}
	var e struct {
		Msg       string `json:"msg"`
		URL       string `json:"url"`
		AdminAddr string `json:"admin_addr"`
		Webhook   string `json:"webhook_addr"`
	}
	if json.Unmarshal(line, &e) != nil {
		return
	}
	switch e.Msg {
	case "embedded NATS server started":
		p.addrs.NATS = e.URL
	case "callflow running":
		select {
		case <-p.running:
			return // a second one (there is none today): the first counts
		default:
		}
		p.addrs.Admin, p.addrs.Webhook = e.AdminAddr, e.Webhook
		close(p.running)
	}
}

// listening waits until p has bound its listeners and returns their
// addresses, as p logged them. It fails the test if p exits first, or
// logs nothing of the kind within childStartTimeout.
func (p *proc) listening(t *testing.T) listeners {
	t.Helper()
	select {
	case <-p.running:
		if p.addrs.Admin == "" {
			t.Fatalf("%v logged no admin_addr in its \"callflow running\" line:\n%s", p.cmd.Args[1:2], p.log())
		}
		return p.addrs
	case err := <-p.done:
		p.done <- err // for whoever waits next
		t.Fatalf("%v exited before listening: %v\n%s", p.cmd.Args[1:2], err, p.log())
	case <-time.After(childStartTimeout):
		t.Fatalf("%v did not log \"callflow running\" within %s:\n%s", p.cmd.Args[1:2], childStartTimeout, p.log())
	}
	return listeners{}
}

// startOn starts the binary with args that name fixed listen addresses
// (addrs, host:port): a process restarted where its clients keep sending,
// the one legitimate reuse of a port. Until the process is listening,
// another socket may hold one of them (the kernel hands a closed port to
// anyone): a start that failed with "address already in use" is retried
// until childStartTimeout.
func startOn(t *testing.T, env, addrs []string, args ...string) *proc {
	t.Helper()
	deadline := time.Now().Add(childStartTimeout)
	for attempt := 1; ; attempt++ {
		taken := portsTaken(addrs)
		if taken == nil {
			p := start(t, env, args...)
			select {
			case <-p.running:
				return p
			case err := <-p.done:
				p.done <- err
				logs := p.log()
				if taken = portsTaken(addrs); taken == nil && !strings.Contains(logs, "address already in use") {
					t.Fatalf("%v exited before listening: %v\n%s", args[:1], err, logs)
				}
				if taken == nil {
					taken = errors.New("address already in use")
				}
			case <-time.After(time.Until(deadline)):
				t.Fatalf("%v did not log \"callflow running\" within %s:\n%s", args[:1], childStartTimeout, p.log())
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: %d attempts to listen on %v again within %s: %v", args[:1], attempt, addrs, childStartTimeout, taken)
		}
		if attempt == 1 {
			t.Logf("%v cannot listen on %v yet (%v); retrying", args[:1], addrs, taken)
		}
		time.Sleep(100 * time.Millisecond) // poll until the holder lets go
	}
}

// portsTaken reports whether one of addrs cannot be bound right now.
func portsTaken(addrs []string) error {
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return err
		}
		ln.Close()
	}
	return nil
}

// stop sends SIGTERM and returns the exit error, failing after a bound.
func (p *proc) stop(t *testing.T) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("process did not stop within 20s of SIGTERM")
		return nil
	}
}

// waitReady waits until p listens and its /readyz answers 200, and
// returns where it listens.
func waitReady(t *testing.T, p *proc) listeners {
	t.Helper()
	a := p.listening(t)
	natstest.CheckFor(t, childStartTimeout, 50*time.Millisecond, func() error {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("process exited before ready: %v\n%s", err, p.log())
		default:
		}
		resp, err := http.Get("http://" + a.Admin + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("readyz %d: %s", resp.StatusCode, b)
		}
		return nil
	})
	return a
}

// cli runs a short-lived callflow command and returns its stdout.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%w: %s", err, errb.String())
	}
	return out.String(), nil
}

func postWebhook(t *testing.T, addr string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/vca", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("post webhook: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, b
}

func seedEvent(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../wire/testdata/call_action.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withPayload returns the seed event with payload fields replaced.
func withPayload(t *testing.T, eventType string, fields map[string]any) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(seedEvent(t), &ev); err != nil {
		t.Fatal(err)
	}
	ev["eventType"] = eventType
	p := ev["payload"].(map[string]any)
	for k, v := range fields {
		if v == nil {
			delete(p, k)
		} else {
			p[k] = v
		}
	}
	b, _ := json.Marshal(ev)
	return b
}

func parseCallflow(t *testing.T, body []byte) *wire.Response {
	t.Helper()
	if !json.Valid(body) {
		t.Fatalf("answer is not strict JSON: %s", body)
	}
	r, err := wire.ParseResponse(body)
	if err != nil {
		t.Fatalf("answer is not a callflow: %v: %s", err, body)
	}
	return r
}

// streamRecords reads every record in the CALLS stream.
func streamRecords(t *testing.T, natsURL string, want int) map[string]*wire.Record {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs map[string]*wire.Record
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		s, err := js.Stream(ctx, "CALLS")
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if int(info.State.Msgs) != want {
			return fmt.Errorf("stream holds %d records, want %d", info.State.Msgs, want)
		}
		recs = map[string]*wire.Record{}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if err != nil {
				return err
			}
			r, err := wire.ParseRecord(m.Data)
			if err != nil {
				return err
			}
			if m.Header.Get(nats.MsgIdHdr) != r.ID {
				return fmt.Errorf("Nats-Msg-Id %q != record id %q", m.Header.Get(nats.MsgIdHdr), r.ID)
			}
			if _, dup := recs[r.ID]; dup {
				return fmt.Errorf("record %s stored twice", r.ID)
			}
			recs[r.ID] = r
		}
		return nil
	})
	return recs
}

// TestServeEndToEnd runs `callflow serve` as a user would, on a fresh data
// directory: a session created with the CLI, the seed's webhook answered
// with a makeCall, every webhook in the stream once, and a clean stop on
// SIGTERM.
func TestServeEndToEnd(t *testing.T) {
	p := start(t,
		// The webhook address comes from the environment, as in a container.
		[]string{"CALLFLOW_HTTP_ADDR=" + anyPort},
		"serve", "--data-dir", t.TempDir(), "--admin-addr", anyPort, "--nats-listen", anyPort, "--log-format", "json")
	a := waitReady(t, p)
	httpAddr, adminURL := a.Webhook, "http://"+a.Admin
	// The default is every interface on 8080: the environment was read.
	if host, _, err := net.SplitHostPort(httpAddr); err != nil || host != "127.0.0.1" {
		t.Fatalf("the webhook listens on %q (%v), want 127.0.0.1 from CALLFLOW_HTTP_ADDR", httpAddr, err)
	}

	// A session binding the seed's caller to the seed's virtual number.
	out, err := cli(t, "sessions", "create", "--admin-url", adminURL,
		"--virtual-number", "+65987654321", "--participants", "+65 1234 56789,6587654321", "--ttl", "1h")
	if err != nil {
		t.Fatalf("sessions create: %v", err)
	}
	var sess struct {
		ID           string
		Participants []string
		ExpiresAt    *time.Time
	}
	if err := json.Unmarshal([]byte(out), &sess); err != nil || sess.ID == "" || sess.ExpiresAt == nil {
		t.Fatalf("sessions create printed %q (%v)", out, err)
	}
	if _, err := cli(t, "sessions", "create", "--admin-url", adminURL,
		"--virtual-number", "+65987654321", "--participants", "+65123456789,+6511112222"); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("conflicting session: err = %v, want a 409", err)
	}

	// The seed's webhook: connected to the other participant.
	seed := seedEvent(t)
	status, body := postWebhook(t, httpAddr, seed)
	if status != http.StatusOK {
		t.Fatalf("seed webhook: %d %s", status, body)
	}
	r := parseCallflow(t, body)
	last := r.Callflow[len(r.Callflow)-1]
	if last.Action != wire.ActionMakeCall || last.Params.Source != "+65987654321" || last.Params.Destination != "+6587654321" {
		t.Errorf("seed webhook answered %s, want makeCall from +65987654321 to +6587654321", body)
	}
	// 8x8 sending the same webhook again gets the same answer; it is stored once.
	if status, again := postWebhook(t, httpAddr, seed); status != http.StatusOK || !bytes.Equal(again, body) {
		t.Errorf("repeated webhook: %d %s", status, again)
	}

	// A stranger is out of session: say + hangup.
	stranger := withPayload(t, wire.EventCallAction, map[string]any{"eventId": "ev-stranger", "source": "+6599990000"})
	_, body = postWebhook(t, httpAddr, stranger)
	r = parseCallflow(t, body)
	if len(r.Callflow) != 2 || r.Callflow[0].Action != wire.ActionSay || r.Callflow[1].Action != wire.ActionHangup {
		t.Errorf("stranger answered %s, want say + hangup", body)
	}

	// Other event types are acknowledged and recorded.
	status, body = postWebhook(t, httpAddr, withPayload(t, wire.EventCallStatus, map[string]any{"eventId": "ev-status", "callStatus": "CALL_CONNECTED"}))
	if status != http.StatusOK || !json.Valid(body) {
		t.Errorf("CALL_STATUS: %d %s", status, body)
	}
	summary := []byte(`{"namespace":"VOICE","eventType":"SESSION_SUMMARY","payload":{"sessionId":"s-1","subAccountId":"acct","sessionStatus":"COMPLETED","callCount":2}}`)
	if status, body = postWebhook(t, httpAddr, summary); status != http.StatusOK {
		t.Errorf("SESSION_SUMMARY: %d %s", status, body)
	}

	// Bad input is refused with a JSON error naming the field, and not recorded.
	status, body = postWebhook(t, httpAddr, withPayload(t, wire.EventCallAction, map[string]any{"callId": nil}))
	if status != http.StatusBadRequest || !strings.Contains(string(body), "payload.callId") {
		t.Errorf("missing callId: %d %s", status, body)
	}

	// Four webhooks and the audit record of the session's creation.
	recs := streamRecords(t, a.NATS, 5)
	var audits int
	for _, r := range recs {
		if r.EventType != wire.EventSessionAudit {
			continue
		}
		audits++
		ev, err := wire.ParseEvent(r.Event)
		if err != nil || ev.Payload.SessionID != sess.ID || !strings.Contains(string(r.Event), `"operation":"create"`) {
			t.Errorf("audit record %s (%v), want the creation of session %s", r.Event, err, sess.ID)
		}
	}
	if audits != 1 {
		t.Errorf("%d audit records, want 1 (the conflicting create changed nothing)", audits)
	}
	seedRec := recs["eb0fc709-9693-11ea-454d-1705dde98182"]
	if seedRec == nil || seedRec.Decision == nil || seedRec.Decision.Source != wire.SourceDecider || seedRec.Decision.Outcome != wire.OutcomeConnect {
		t.Errorf("seed record: %+v", seedRec)
	} else if !bytes.Equal(seedRec.Event, bytes.TrimSpace(seed)) {
		t.Errorf("recorded event differs from the posted body")
	}
	if rec := recs["ev-stranger"]; rec == nil || rec.Decision.Outcome != wire.OutcomeOutOfSession {
		t.Errorf("stranger record: %+v", rec)
	}
	if rec := recs["ev-status"]; rec == nil || rec.Decision != nil {
		t.Errorf("CALL_STATUS record: %+v", rec)
	}

	// The session API round trip through the CLI.
	if out, err := cli(t, "sessions", "list", "--admin-url", adminURL, "--virtual-number", "+65987654321"); err != nil || !strings.Contains(out, sess.ID) {
		t.Errorf("sessions list: %q %v", out, err)
	}
	if _, err := cli(t, "sessions", "delete", "--admin-url", adminURL, sess.ID); err != nil {
		t.Errorf("sessions delete: %v", err)
	}
	if _, err := cli(t, "sessions", "get", "--admin-url", adminURL, sess.ID); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("sessions get after delete: %v, want a 404", err)
	}

	if err := p.stop(t); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM\n%s", err, p.log())
	}
	if !strings.Contains(p.log(), `"msg":"stopped"`) {
		t.Errorf("no clean stop in the logs")
	}
}

// TestServeWithoutDeciders checks the breaker from the outside: with no
// decider at all, every call still gets the fallback, and once the breaker
// is open the fallback no longer waits for anything.
func TestServeWithoutDeciders(t *testing.T) {
	p := start(t, nil, "serve", "--deciders", "0", "--data-dir", t.TempDir(), "--http-addr", anyPort,
		"--admin-addr", anyPort, "--nats-listen", anyPort, "--breaker-failures", "2", "--breaker-open-for", "1m",
		"--fallback-text", "Please hold the line later.")
	a := waitReady(t, p)
	httpAddr := a.Webhook

	const calls = 5
	for i := range calls {
		status, body := postWebhook(t, httpAddr, withPayload(t, wire.EventCallAction, map[string]any{"eventId": fmt.Sprintf("fb-%d", i)}))
		if status != http.StatusOK {
			t.Fatalf("call %d: %d %s", i, status, body)
		}
		r := parseCallflow(t, body)
		if r.ClientActionID != "fallback" || r.Callflow[0].Params.Text != "Please hold the line later." || r.Callflow[1].Action != wire.ActionHangup {
			t.Errorf("call %d answered %s, want the configured fallback", i, body)
		}
	}
	recs := streamRecords(t, a.NATS, calls)
	for i := range calls {
		rec := recs[fmt.Sprintf("fb-%d", i)]
		want := "no_responders"
		if i >= 2 {
			want = "breaker_open"
		}
		if rec == nil || rec.Decision.Source != wire.SourceFallback || rec.Decision.FallbackReason != want {
			t.Errorf("record of call %d: %+v, want fallback because %s", i, rec.Decision, want)
		}
	}
	if err := p.stop(t); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM", err)
	}
}

// TestSeparateRoles runs ingest and decider as separate processes against
// an external NATS server, ingest first: roles start in any order, and the
// deciders are discoverable as a micro service.
func TestSeparateRoles(t *testing.T) {
	ns := natstest.RunServer(t)
	url := ns.ClientURL()

	ing := start(t, nil, "ingest", "--nats-url", url, "--http-addr", anyPort, "--admin-addr", anyPort, "--data-dir", t.TempDir())
	ia := waitReady(t, ing)
	httpAddr, ingestAdmin := ia.Webhook, ia.Admin
	dec := start(t, nil, "decider", "--nats-url", url, "--admin-addr", anyPort, "--deciders", "3")
	if da := waitReady(t, dec); da.Webhook != "" {
		t.Errorf("the decider listens for webhooks on %s", da.Webhook)
	}

	nc, _ := natstest.Connect(t, ns)
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		sub, err := nc.SubscribeSync(nats.NewInbox())
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		subject, _ := micro.ControlSubject(micro.PingVerb, "callflow-decider", "")
		if err := nc.PublishRequest(subject, sub.Subject, nil); err != nil {
			return err
		}
		n := 0
		for {
			if _, err := sub.NextMsg(500 * time.Millisecond); err != nil {
				break
			}
			n++
		}
		if n != 3 {
			return fmt.Errorf("%d deciders answered PING, want 3", n)
		}
		return nil
	})

	if _, err := cli(t, "sessions", "create", "--admin-url", "http://"+ingestAdmin,
		"--virtual-number", "+65987654321", "--participants", "+65123456789,+6587654321"); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		_, body := postWebhook(t, httpAddr, withPayload(t, wire.EventCallAction, map[string]any{"eventId": fmt.Sprintf("sep-%d", time.Now().UnixNano())}))
		r := parseCallflow(t, body)
		if r.Callflow[len(r.Callflow)-1].Action != wire.ActionMakeCall {
			return fmt.Errorf("answered %s, want a makeCall once the deciders see the session", body)
		}
		return nil
	})
	for _, p := range []*proc{ing, dec} {
		if err := p.stop(t); err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	}
}

// TestCommandLine covers what fails before anything starts.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      []string
		wantCode int
		wantErr  string
	}{
		{"no command", nil, nil, 2, "Usage"},
		{"unknown command", []string{"fly"}, nil, 2, `unknown command "fly"`},
		{"help lists env vars", []string{"serve", "--help"}, nil, 0, "CALLFLOW_HTTP_ADDR"},
		{"unknown flag", []string{"serve", "--no-such-flag"}, nil, 2, "no-such-flag"},
		{"bad env value", []string{"serve"}, []string{"CALLFLOW_DECIDERS=many"}, 2, "CALLFLOW_DECIDERS"},
		{"admin without token off loopback", []string{"serve", "--admin-addr", "0.0.0.0:0"}, nil, 1, "admin token is required"},
		{"negative deciders", []string{"serve", "--deciders", "-1"}, nil, 1, "--deciders"},
		{"bad log level", []string{"serve", "--log-level", "loud"}, nil, 1, "--log-level"},
		{"decider needs one", []string{"decider", "--deciders", "0"}, nil, 1, "--deciders"},
		{"version", []string{"version"}, nil, 0, "callflow "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, kv := range tt.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String()+stdout.String(), tt.wantErr) {
				t.Errorf("output does not mention %q:\n%s", tt.wantErr, stderr.String())
			}
		})
	}
}
