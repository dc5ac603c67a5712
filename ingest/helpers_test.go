package ingest

import (
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/callflow/callflow/decider"
	"github.com/callflow/callflow/ingest/spool"
	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// The seed's numbers: the caller (a session participant) dials the
// virtual number; otherParty is the participant the call is connected to.
const (
	seedSource      = "+65123456789"
	seedDestination = "+65987654321"
	otherParty      = "+6587654321"
	seedEventID     = "eb0fc709-9693-11ea-454d-1705dde98182"
	seedSubAccount  = "your_subaccount_id"
	testStream      = "CALLS"
	testInstance    = "ingest-test-1"
	decideQueue     = "callflow-deciders"
	decideSubject   = "callflow.decide"
)

// seedBody is the seed's example CALL_ACTION, byte for byte.
func seedBody(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "wire", "testdata", "call_action.json"))
	if err != nil {
		t.Fatalf("read seed webhook: %v", err)
	}
	return b
}

// event builds a webhook body from the seed with payload fields replaced
// (a nil value deletes the field) and, when eventType is not empty, another
// event type.
func event(t testing.TB, eventType string, payload map[string]any) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(seedBody(t), &ev); err != nil {
		t.Fatalf("seed: %v", err)
	}
	if eventType != "" {
		ev["eventType"] = eventType
	}
	p := ev["payload"].(map[string]any)
	for k, v := range payload {
		if v == nil {
			delete(p, k)
		} else {
			p[k] = v
		}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("marshal event: %v", err)
	}
	return b
}

// callAction is a CALL_ACTION like the seed's with its own eventId.
func callAction(t testing.TB, eventID string) []byte {
	t.Helper()
	return event(t, "", map[string]any{"eventId": eventID})
}

// env is one ingestor on a real in-process NATS server with JetStream.
type env struct {
	t       *testing.T
	ns      *server.Server
	nc      *nats.Conn // the test's own connection, for inspecting
	js      jetstream.JetStream
	srv     *Server
	cfg     Config
	url     string
	client  *http.Client
	store   *session.Store
	served  chan error
	stopped atomic.Bool
}

type envOptions struct {
	// cfg adjusts the ingestor's configuration.
	cfg func(*Config)
	// noStream leaves the records stream uncreated.
	noStream bool
	// deciders is the number of real deciders to start.
	deciders int
	// local makes the first of them the ingestor's in-process decider.
	local bool
	// ns is a server to use instead of a fresh one.
	ns *server.Server
	// conn is the ingestor's connection to use instead of a fresh one to
	// ns (e.g. one from broker.Connect, or through a proxy).
	conn *nats.Conn
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ns := o.ns
	if ns == nil {
		ns = natstest.RunServer(t)
	}
	nc, js := natstest.Connect(t, ns)
	e := &env{t: t, ns: ns, nc: nc, js: js, served: make(chan error, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !o.noStream {
		if _, err := broker.EnsureStream(ctx, js, broker.StreamConfig{
			Name: testStream, MaxAge: time.Hour, Duplicates: 10 * time.Minute, Replicas: 1,
		}, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatalf("ensure stream: %v", err)
		}
	}
	var started []*decider.Service
	if o.deciders > 0 {
		started = e.startDeciders(o.deciders)
	}
	e.cfg = Config{
		DecideTimeout: 2 * time.Second,
		RecordTimeout: 2 * time.Second,
		Breaker:       BreakerConfig{Failures: 1000, OpenFor: time.Minute},
		DataDir:       t.TempDir(),
		Instance:      testInstance,
	}
	if o.local {
		e.cfg.Local = started[0]
	}
	if o.cfg != nil {
		o.cfg(&e.cfg)
	}
	inc := o.conn
	if inc == nil {
		inc, _ = natstest.Connect(t, ns)
	}
	srv, err := New(inc, e.cfg)
	if err != nil {
		t.Fatalf("ingest.New: %v", err)
	}
	e.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	e.url = "http://" + ln.Addr().String()
	go func() { e.served <- srv.Serve(ln) }()
	e.client = &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
	}
	t.Cleanup(func() {
		e.client.CloseIdleConnections()
		e.shutdown()
	})
	return e
}

// shutdown stops the ingestor (once) and checks that Serve returned.
func (e *env) shutdown() error {
	if !e.stopped.CompareAndSwap(false, true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := e.srv.Shutdown(ctx)
	select {
	case serr := <-e.served:
		if serr != nil {
			e.t.Errorf("Serve returned %v", serr)
		}
	case <-time.After(10 * time.Second):
		e.t.Errorf("Serve did not return after Shutdown")
	}
	return err
}

// startDeciders opens the session store (once) and starts n real deciders,
// each on its own connection, stopped when the test ends.
func (e *env) startDeciders(n int) []*decider.Service {
	e.t.Helper()
	if e.store == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := session.Open(ctx, e.js, session.Config{})
		if err != nil {
			e.t.Fatalf("session.Open: %v", err)
		}
		e.t.Cleanup(st.Close)
		e.store = st
	}
	var out []*decider.Service
	for range n {
		dnc, _ := natstest.Connect(e.t, e.ns)
		d, err := decider.Start(dnc, e.store, decider.Config{})
		if err != nil {
			e.t.Fatalf("decider.Start: %v", err)
		}
		e.t.Cleanup(func() { _ = d.Stop() })
		out = append(out, d)
	}
	return out
}

// seedSession creates the session that routes the seed's call: the seed's
// destination is the virtual number, its source a participant.
func (e *env) seedSession() session.Session {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.store.Create(ctx, session.Request{
		VirtualNumber: seedDestination,
		Participants:  []string{seedSource, otherParty},
	})
	if err != nil {
		e.t.Fatalf("create session: %v", err)
	}
	return s
}

type answer struct {
	status  int
	header  http.Header
	body    []byte
	elapsed time.Duration
}

func (a answer) String() string {
	return fmt.Sprintf("%d %s", a.status, a.body)
}

// do sends a request with a real HTTP client.
func (e *env) do(method, path string, body io.Reader) (answer, error) {
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := e.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b, elapsed: time.Since(start)}, nil
}

// post posts body to the webhook path and fails the test on a transport
// error.
func (e *env) post(body []byte) answer {
	e.t.Helper()
	a, err := e.do(http.MethodPost, "/vca", bytes.NewReader(body))
	if err != nil {
		e.t.Fatalf("POST /vca: %v", err)
	}
	return a
}

// callflow is a CALL_ACTION answer decoded strictly.
type callflow struct {
	ClientActionID string `json:"clientActionId"`
	Callflow       []struct {
		Action string         `json:"action"`
		Params map[string]any `json:"params"`
	} `json:"callflow"`
}

// decodeStrict decodes b into v refusing unknown fields and trailing data.
func decodeStrict(b []byte, v any) error {
	if !json.Valid(b) {
		return fmt.Errorf("not valid JSON: %q", b)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// wantCallflow checks a 200 JSON answer and returns its callflow.
func wantCallflow(t testing.TB, a answer) callflow {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(a.body, &keys); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, a.body)
	}
	if len(keys) != 2 || keys["clientActionId"] == nil || keys["callflow"] == nil {
		t.Fatalf("answer keys = %v, want exactly clientActionId and callflow: %s", keys, a.body)
	}
	var cf callflow
	if err := decodeStrict(a.body, &cf); err != nil {
		t.Fatalf("answer is not a strict callflow: %v: %s", err, a.body)
	}
	if _, err := wire.ParseResponse(a.body); err != nil {
		t.Fatalf("answer does not parse as a callflow: %v", err)
	}
	return cf
}

// wantSayHangup checks a say + hangup answer with clientActionId id.
func wantSayHangup(t testing.TB, a answer, id, text string) {
	t.Helper()
	cf := wantCallflow(t, a)
	if cf.ClientActionID != id {
		t.Errorf("clientActionId = %q, want %q", cf.ClientActionID, id)
	}
	if len(cf.Callflow) != 2 || cf.Callflow[0].Action != wire.ActionSay || cf.Callflow[1].Action != wire.ActionHangup {
		t.Fatalf("callflow = %s, want say + hangup", a.body)
	}
	if got := cf.Callflow[0].Params["text"]; got != text {
		t.Errorf("say text = %q, want %q", got, text)
	}
}

// wantFallback checks the fallback answer.
func wantFallback(t testing.TB, a answer) {
	t.Helper()
	wantSayHangup(t, a, wire.ClientActionFallback, DefaultFallback.Text)
}

// wantError checks an error answer: status, JSON {"error": "..."} naming
// field.
func wantError(t testing.TB, a answer, status int, field string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status = %d, want %d; body %s", a.status, status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body struct {
		Error string `json:"error"`
	}
	if err := decodeStrict(a.body, &body); err != nil {
		t.Fatalf("error body is not {\"error\": ...}: %v: %s", err, a.body)
	}
	if body.Error == "" || !strings.Contains(body.Error, field) {
		t.Errorf("error = %q, want it to name %q", body.Error, field)
	}
}

// streamMsg is one message of the records stream.
type streamMsg struct {
	subject string
	msgID   string
	data    []byte
	rec     *wire.Record
	err     error // from wire.ParseRecord
}

// messages returns every message in the records stream.
func (e *env) messages() []streamMsg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, testStream)
	if err != nil {
		e.t.Fatalf("stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.t.Fatalf("stream info: %v", err)
	}
	var out []streamMsg
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatalf("get message %d: %v", seq, err)
		}
		sm := streamMsg{subject: m.Subject, msgID: m.Header.Get(nats.MsgIdHdr), data: m.Data}
		sm.rec, sm.err = wire.ParseRecord(m.Data)
		out = append(out, sm)
	}
	return out
}

// count is the number of messages in the records stream.
func (e *env) count() uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, testStream)
	if err != nil {
		e.t.Fatalf("stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

// recordOf returns the one message recorded under id, failing the test
// unless there is exactly one.
func (e *env) recordOf(id string) streamMsg {
	e.t.Helper()
	var found []streamMsg
	for _, m := range e.messages() {
		if m.msgID == id {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		e.t.Fatalf("%d messages with Nats-Msg-Id %q in the stream, want 1", len(found), id)
	}
	m := found[0]
	if m.err != nil {
		e.t.Fatalf("record %s: %v", id, m.err)
	}
	return m
}

// checkRecord checks what every record must hold: the id, type, version,
// instance, a receive time, and the event exactly as posted.
func checkRecord(t testing.TB, m streamMsg, id, eventType, subject string, body []byte) {
	t.Helper()
	r := m.rec
	if m.subject != subject {
		t.Errorf("subject = %q, want %q", m.subject, subject)
	}
	if m.msgID != id || r.ID != id {
		t.Errorf("Nats-Msg-Id = %q, record id = %q, want %q", m.msgID, r.ID, id)
	}
	if r.Version != wire.RecordVersion {
		t.Errorf("version = %d, want %d", r.Version, wire.RecordVersion)
	}
	if r.EventType != eventType {
		t.Errorf("eventType = %q, want %q", r.EventType, eventType)
	}
	if r.Instance != testInstance {
		t.Errorf("instance = %q, want %q", r.Instance, testInstance)
	}
	if r.ReceivedAt.IsZero() || time.Since(r.ReceivedAt) > time.Minute || time.Until(r.ReceivedAt) > time.Second {
		t.Errorf("receivedAt = %v, want about now", r.ReceivedAt)
	}
	// The body is embedded verbatim: the message ends with it.
	if suffix := append(append([]byte(`,"event":`), body...), '}'); !bytes.HasSuffix(m.data, suffix) {
		t.Errorf("record does not end with the posted body verbatim:\n%s", m.data)
	}
	if !bytes.Equal(r.Event, bytes.TrimSpace(body)) {
		t.Errorf("record event = %s, want %s", r.Event, body)
	}
}

// fakeDecider answers decide requests on a plain queue subscription in the
// deciders' group, with reply (nil: never answers), after delay.
func fakeDecider(t testing.TB, ns *server.Server, delay time.Duration, reply func(m *nats.Msg)) *atomic.Int64 {
	t.Helper()
	nc, _ := natstest.Connect(t, ns)
	var got atomic.Int64
	sub, err := nc.QueueSubscribe(decideSubject, decideQueue, func(m *nats.Msg) {
		got.Add(1)
		if reply == nil {
			return
		}
		if delay > 0 {
			time.AfterFunc(delay, func() { reply(m) })
			return
		}
		reply(m)
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return &got
}

// errorDecider is a micro service in the deciders' queue group that
// answers every request with a service error; its subscription is
// registered on the server when it returns.
func errorDecider(t testing.TB, ns *server.Server) {
	t.Helper()
	nc, _ := natstest.Connect(t, ns)
	svc, err := micro.AddService(nc, micro.Config{
		Name: "broken-decider", Version: "0.0.1", QueueGroup: decideQueue,
		Endpoint: &micro.EndpointConfig{
			Subject: decideSubject,
			Handler: micro.HandlerFunc(func(r micro.Request) { _ = r.Error("500", "policy exploded", nil) }),
		},
	})
	if err != nil {
		t.Fatalf("micro.AddService: %v", err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	// AddService sends its subscriptions without waiting for the server:
	// until the flush's PONG comes back a request may find no responders.
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

// readSpool returns what the ingestor's spool holds, oldest first.
func readSpool(t testing.TB, dataDir string) []spool.Entry {
	t.Helper()
	entries, err := spool.Read(filepath.Join(dataDir, "spool"))
	if err != nil {
		t.Fatalf("read spool: %v", err)
	}
	return entries
}
