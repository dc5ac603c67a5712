package bench

import (
	"net"

	"github.com/valyala/fasthttp"
)

// BaselineCallflow is what the baseline answers to every request: a
// makeCall callflow of the size the real system answers in-session calls
// with.
const BaselineCallflow = `{"clientActionId":"baseline","callflow":[{"action":"makeCall","params":{"source":"+6598765432","destination":"+6587654321"}}]}`

// Baseline is a bare fasthttp server on a loopback port that answers
// BaselineCallflow to every request without reading it: no parsing, no
// NATS, no storage. Measured beside the real system with the same load, it
// is the machine's ceiling for an HTTP answer.
type Baseline struct {
	srv  *fasthttp.Server
	ln   net.Listener
	done chan struct{}
}

// StartBaseline starts the baseline server on 127.0.0.1:0.
func StartBaseline() (*Baseline, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	body := []byte(BaselineCallflow)
	b := &Baseline{ln: ln, done: make(chan struct{})}
	b.srv = &fasthttp.Server{
		Name: "callflow-bench-baseline",
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.SetBody(body)
		},
	}
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(ln)
	}()
	return b, nil
}

// URL is where the baseline answers.
func (b *Baseline) URL() string { return "http://" + b.ln.Addr().String() + "/vca" }

// Close stops the server and waits for it.
func (b *Baseline) Close() error {
	err := b.srv.Shutdown()
	<-b.done
	return err
}
