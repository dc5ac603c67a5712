package bench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"
)

// The chain's subjects and stream, apart from anything callflow uses.
const (
	chainDecide  = "chainbench.decide"
	chainRecords = "chainbench.records."
	chainStream  = "CHAINBENCH"
	chainTimeout = 2 * time.Second
)

// Chain is the same service written the straightforward way, measured
// beside callflow with the same load: fasthttp, encoding/json for the
// webhook, the decide request, the reply and the record, one nc.Request to
// two queue-group responders, and one synchronous JetStream publish with a
// Nats-Msg-Id before each answer. Its NATS server is embedded in this
// process, with JetStream on disk, as `callflow serve`'s is, and its
// clients reach it over loopback TCP, as a user of nats.go would. The
// responders answer a makeCall to everything: the chain measures the
// plumbing, not a policy.
type Chain struct {
	ns         *server.Server
	nc         *nats.Conn
	responders []*nats.Conn
	js         jetstream.JetStream
	srv        *fasthttp.Server
	ln         net.Listener
	dir        string
	done       chan struct{}
}

// chainEvent is the webhook as a straightforward handler decodes it.
type chainEvent struct {
	Namespace string `json:"namespace"`
	EventType string `json:"eventType"`
	Payload   struct {
		EventID      string `json:"eventId"`
		CallID       string `json:"callId"`
		SessionID    string `json:"sessionId"`
		SubAccountID string `json:"subAccountId"`
		Source       string `json:"source"`
		Destination  string `json:"destination"`
	} `json:"payload"`
}

type chainRequest struct {
	CallID       string `json:"callId"`
	SubAccountID string `json:"subAccountId"`
	Source       string `json:"source"`
	Destination  string `json:"destination"`
}

type chainAction struct {
	Action string            `json:"action"`
	Params map[string]string `json:"params"`
}

type chainCallflow struct {
	ClientActionID string        `json:"clientActionId"`
	Callflow       []chainAction `json:"callflow"`
}

type chainRecord struct {
	ID         string          `json:"id"`
	EventType  string          `json:"eventType"`
	ReceivedAt time.Time       `json:"receivedAt"`
	Event      json.RawMessage `json:"event"`
	Decision   json.RawMessage `json:"decision,omitempty"`
}

// StartChain starts the chain's NATS server (JetStream in a temporary
// directory), its two responders and its HTTP server on addr
// ("127.0.0.1:0" picks a free port).
func StartChain(addr string) (c *Chain, err error) {
	c = &Chain{done: make(chan struct{})}
	if c.dir, err = os.MkdirTemp("", "callflow-bench-chain-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	c.ns, err = server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: c.dir,
		NoLog: true, NoSigs: true, MaxPayload: 1 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("chain: nats server: %w", err)
	}
	go c.ns.Start()
	if !c.ns.ReadyForConnections(10 * time.Second) {
		return nil, errors.New("chain: nats server not ready")
	}
	url := c.ns.ClientURL()
	for i := range 2 {
		rc, err := nats.Connect(url, nats.Name(fmt.Sprintf("chain-responder-%d", i)))
		if err != nil {
			return nil, fmt.Errorf("chain: responder: %w", err)
		}
		c.responders = append(c.responders, rc)
		if _, err := rc.QueueSubscribe(chainDecide, "deciders", chainRespond); err != nil {
			return nil, fmt.Errorf("chain: responder: %w", err)
		}
		if err := rc.Flush(); err != nil {
			return nil, fmt.Errorf("chain: responder: %w", err)
		}
	}
	if c.nc, err = nats.Connect(url, nats.Name("chain-ingest")); err != nil {
		return nil, fmt.Errorf("chain: connect: %w", err)
	}
	if c.js, err = jetstream.New(c.nc); err != nil {
		return nil, fmt.Errorf("chain: jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err = c.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: chainStream, Subjects: []string{chainRecords + ">"}, Storage: jetstream.FileStorage,
		Duplicates: 2 * time.Minute, MaxAge: time.Hour,
	}); err != nil {
		return nil, fmt.Errorf("chain: stream: %w", err)
	}
	if c.ln, err = net.Listen("tcp", addr); err != nil {
		return nil, err
	}
	c.srv = &fasthttp.Server{Name: "callflow-bench-chain", Handler: c.handle}
	go func() {
		defer close(c.done)
		_ = c.srv.Serve(c.ln)
	}()
	return c, nil
}

// chainRespond is a decider: decode the request, answer a callflow.
func chainRespond(m *nats.Msg) {
	var req chainRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		_ = m.Respond([]byte(`{"error":"bad request"}`))
		return
	}
	data, err := json.Marshal(chainCallflow{ClientActionID: "chain", Callflow: []chainAction{
		{Action: "makeCall", Params: map[string]string{"source": req.Destination, "destination": "+6587654321"}},
	}})
	if err != nil {
		return
	}
	_ = m.Respond(data)
}

// handle is the straightforward webhook handler.
func (c *Chain) handle(ctx *fasthttp.RequestCtx) {
	received := time.Now()
	body := ctx.PostBody()
	var ev chainEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		ctx.Error(`{"error":"malformed JSON"}`, fasthttp.StatusBadRequest)
		return
	}
	rec := chainRecord{ID: ev.Payload.EventID, EventType: ev.EventType, ReceivedAt: received, Event: body}
	if rec.ID == "" {
		sum := sha256.Sum256(body)
		rec.ID = hex.EncodeToString(sum[:16])
	}
	answer := []byte(`{"status":"received"}`)
	if ev.EventType == "CALL_ACTION" {
		req, err := json.Marshal(chainRequest{CallID: ev.Payload.CallID, SubAccountID: ev.Payload.SubAccountID,
			Source: ev.Payload.Source, Destination: ev.Payload.Destination})
		if err != nil {
			ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
			return
		}
		msg, err := c.nc.Request(chainDecide, req, chainTimeout)
		if err != nil {
			ctx.Error(`{"error":"no decision"}`, fasthttp.StatusServiceUnavailable)
			return
		}
		var cf chainCallflow
		if err := json.Unmarshal(msg.Data, &cf); err != nil {
			ctx.Error(`{"error":"bad decision"}`, fasthttp.StatusServiceUnavailable)
			return
		}
		answer = msg.Data
		rec.Decision = msg.Data
	}
	data, err := json.Marshal(rec)
	if err != nil {
		ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
		return
	}
	pctx, cancel := context.WithTimeout(context.Background(), chainTimeout)
	defer cancel()
	if _, err := c.js.Publish(pctx, chainRecords+ev.EventType, data, jetstream.WithMsgID(rec.ID)); err != nil {
		ctx.Error(`{"error":"not recorded"}`, fasthttp.StatusServiceUnavailable)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(answer)
}

// URL is where the chain answers.
func (c *Chain) URL() string { return "http://" + c.ln.Addr().String() + "/vca" }

// Close stops the HTTP server, the clients and the NATS server, and
// removes the stream's directory.
func (c *Chain) Close() error {
	var err error
	if c.srv != nil {
		err = c.srv.Shutdown()
		<-c.done
	}
	for _, nc := range append(c.responders, c.nc) {
		if nc != nil {
			nc.Close()
		}
	}
	if c.ns != nil {
		c.ns.Shutdown()
		c.ns.WaitForShutdown()
	}
	return errors.Join(err, os.RemoveAll(c.dir))
}

// chainReadyPrefix starts the line `callflow bench chain` prints once it
// answers, followed by its URL.
const chainReadyPrefix = "chain answering on "

// ServeChain runs the chain on addr until ctx ends, after printing its
// URL on out, for `callflow bench chain`.
func ServeChain(ctx context.Context, addr string, out io.Writer) error {
	c, err := StartChain(addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, chainReadyPrefix+c.URL())
	<-ctx.Done()
	return c.Close()
}

// startChainProcess runs command (a `callflow bench chain`) as a process of
// its own, as the system under test is, and returns its URL once it
// answers and a stop that ends it.
func startChainProcess(command []string) (string, func() error, error) {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		return cmd.Wait()
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), chainReadyPrefix); ok {
				lines <- url
			}
		}
		close(lines)
	}()
	select {
	case url, ok := <-lines:
		if ok {
			return url, stop, nil
		}
	case <-time.After(30 * time.Second):
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return "", nil, fmt.Errorf("%s did not start answering", strings.Join(command, " "))
}
