package archiver

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/secret"
)

// TestPasswordFuncAtEachDial: with PasswordFunc, each connection the pool
// opens presents the password it returns then, so that a rotated password
// needs no restart. A listener reads each connection's client hello
// (where the native protocol sends the password) and closes it.
func TestPasswordFuncAtEachDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hellos := make(chan []byte, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b := make([]byte, 512)
			n, _ := io.ReadAtLeast(c, b, 1)
			// The rest of the hello, if it came in pieces.
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			m, _ := c.Read(b[n:])
			c.Close()
			hellos <- b[:n+m]
		}
	}()
	var password secret.Value
	password.Store("ch-old-a1b2")
	conn, err := Connect(ClickHouseConfig{Addrs: []string{ln.Addr().String()}, Username: "callflow", Password: "static-never-sent",
		PasswordFunc: password.Load, DialTimeout: 5 * time.Second, QueryTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, want := range []string{"ch-old-a1b2", "ch-new-c3d4"} {
		password.Store(want)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := conn.Ping(ctx); err == nil {
			t.Fatal("ping of a listener that closes every connection succeeded")
		}
		cancel()
		select {
		case hello := <-hellos:
			if !bytes.Contains(hello, []byte(want)) || bytes.Contains(hello, []byte("static-never-sent")) {
				t.Errorf("client hello %q does not present the password %q", hello, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no connection reached the listener")
		}
	}
}
