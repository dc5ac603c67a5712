package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callflow/callflow/decider"
	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// bodyMaker writes distinct CALL_ACTIONs from the seed into one buffer:
// each gets its own eventId (a run-unique prefix and a counter), so
// JetStream stores every one rather than dropping repeats.
type bodyMaker struct {
	buf []byte
	at  int // offset of the counter's 16 hex digits
}

var benchCounter atomic.Uint64

func newBodyMaker(b *testing.B) *bodyMaker {
	prefix := "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
	id := prefix + "0000000000000000"
	buf := bytes.Replace(seedBody(b), []byte(seedEventID), []byte(id), 1)
	return &bodyMaker{buf: buf, at: bytes.Index(buf, []byte(id)) + len(prefix)}
}

func (m *bodyMaker) next() []byte {
	n := benchCounter.Add(1)
	const hex = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		m.buf[m.at+i] = hex[n&15]
		n >>= 4
	}
	return m.buf
}

// BenchmarkHandler measures the whole webhook path of a CALL_ACTION: parse,
// decide over NATS with 2 real deciders (the caller is in a session, so the
// answer is a makeCall), record in JetStream and wait for the ack, answer.
// The NATS server runs in this process, so allocations include its share;
// DECISIONS' allocation target is measured with the server elsewhere.
func BenchmarkHandler(b *testing.B) {
	ns := natstest.RunServer(b)
	nc, js := natstest.Connect(b, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := broker.EnsureStream(ctx, js, broker.StreamConfig{
		Name: testStream, MaxAge: time.Hour, Duplicates: time.Minute, Replicas: 1,
	}, slog.New(slog.DiscardHandler)); err != nil {
		b.Fatal(err)
	}
	st, err := session.Open(ctx, js, session.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	if _, err := st.Create(ctx, session.Request{VirtualNumber: seedDestination, Participants: []string{seedSource, otherParty}}); err != nil {
		b.Fatal(err)
	}
	for range 2 {
		dnc, _ := natstest.Connect(b, ns)
		d, err := decider.Start(dnc, st, decider.Config{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = d.Stop() })
	}
	srv, err := New(nc, Config{DataDir: b.TempDir(), Instance: testInstance, DecideTimeout: 5 * time.Second, RecordTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("direct", func(b *testing.B) { benchDirect(b, srv) })

	ln := fasthttputil.NewInmemoryListener()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	b.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			b.Errorf("Shutdown: %v", err)
		}
		<-served
	})
	client := &fasthttp.Client{
		Dial:            func(string) (net.Conn, error) { return ln.Dial() },
		MaxConnsPerHost: 1024,
	}
	post := func(bm *bodyMaker, req *fasthttp.Request, resp *fasthttp.Response) error {
		req.SetBody(bm.next())
		if err := client.Do(req, resp); err != nil {
			return err
		}
		if resp.StatusCode() != fasthttp.StatusOK {
			return fmt.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
		}
		return nil
	}
	newReq := func() *fasthttp.Request {
		req := fasthttp.AcquireRequest()
		req.SetRequestURI("http://callflow/vca")
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		return req
	}

	b.Run("http", func(b *testing.B) {
		req, resp := newReq(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		bm := newBodyMaker(b)
		b.ReportAllocs()
		for b.Loop() {
			if err := post(bm, req, resp); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("http-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			req, resp := newReq(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			bm := newBodyMaker(b)
			for pb.Next() {
				if err := post(bm, req, resp); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// benchDirect calls the handler with a RequestCtx: no HTTP transport.
func benchDirect(b *testing.B, srv *Server) {
	var ctx fasthttp.RequestCtx
	bm := newBodyMaker(b)
	b.ReportAllocs()
	for b.Loop() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod(fasthttp.MethodPost)
		ctx.Request.SetRequestURI("/vca")
		ctx.Request.SetBody(bm.next())
		srv.route(&ctx)
		if ctx.Response.StatusCode() != fasthttp.StatusOK {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

// BenchmarkHandlerRemote is the handler's cost in the ingest process
// alone, as the performance target counts it: NATS, JetStream and the
// deciders run in another process, `callflow serve` started by
// scripts/bench.sh, which sets CALLFLOW_BENCH_NATS_URL. The answers are
// makeCalls (the caller is in a session) acknowledged by JetStream.
func BenchmarkHandlerRemote(b *testing.B) {
	url := os.Getenv("CALLFLOW_BENCH_NATS_URL")
	if url == "" {
		b.Skip("CALLFLOW_BENCH_NATS_URL is not set: run scripts/bench.sh, which starts callflow serve for it")
	}
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := session.Open(ctx, js, session.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	sess, err := st.Create(ctx, session.Request{VirtualNumber: seedDestination, Participants: []string{seedSource, otherParty}})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Delete(context.Background(), sess.ID)
	st.Close() // the deciders in the other process have it; nothing here watches the bucket
	srv, err := New(nc, Config{DataDir: b.TempDir(), Instance: testInstance, DecideTimeout: 5 * time.Second, RecordTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	// The deciders learn the session by watching the bucket: probe until
	// they connect the seed's caller.
	bodies := newBodyMaker(b)
	var probe fasthttp.RequestCtx
	for deadline := time.Now().Add(10 * time.Second); ; {
		probe.Request.Header.SetMethod(fasthttp.MethodPost)
		probe.Request.SetRequestURI("/vca")
		probe.Request.SetBody(bodies.next())
		srv.route(&probe)
		if bytes.Contains(probe.Response.Body(), []byte("makeCall")) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the remote deciders do not connect the seed's caller: %s", probe.Response.Body())
		}
		time.Sleep(20 * time.Millisecond)
	}
	benchDirect(b, srv)
}
