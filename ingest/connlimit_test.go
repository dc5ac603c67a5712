package ingest

import (
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Refusals over the per-address limit are answered and drained a bounded
// number at a time; past the bound a refused connection is closed at once,
// so one host cannot hold a descriptor and a goroutine per connection it
// opens.
func TestPerIPRefusalsBounded(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var rejected atomic.Uint64
	l := newPerIPListener(inner, 1, true, &rejected)
	const bound = 2
	l.refusing = make(chan struct{}, bound)
	l.linger = time.Minute // drains last until the clients close
	t.Cleanup(func() { _ = l.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()

	var clients []net.Conn
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		return c
	}
	t.Cleanup(func() {
		for _, c := range clients {
			_ = c.Close()
		}
	})

	// The one connection the address may hold.
	dial()
	select {
	case c := <-accepted:
		t.Cleanup(func() { _ = c.Close() })
	case <-time.After(10 * time.Second):
		t.Fatal("first connection not accepted")
	}
	// bound refusals are answered with 429 and then drained: their
	// clients hold them open, so each keeps its token.
	for i := range bound {
		b, err := io.ReadAll(dial())
		if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 429 ") {
			t.Fatalf("refusal %d: read %q, %v; want a 429 answer", i, b, err)
		}
	}
	// Past the bound, refused connections are closed without an answer.
	for i := range 3 {
		b, _ := io.ReadAll(dial())
		if len(b) != 0 {
			t.Errorf("refusal %d past the bound: read %q, want the connection closed at once", bound+i, b)
		}
	}
	if got := rejected.Load(); got != bound+3 {
		t.Errorf("%d refusals counted, want %d", got, bound+3)
	}
}
