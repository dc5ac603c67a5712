// Package natstest starts real NATS servers for tests: in-process, with
// JetStream, on a random port, with their store in the test's temporary
// directory, and stopped when the test ends. RunCluster starts a
// three-node JetStream cluster whose nodes can be shut down or killed and
// started again.
package natstest

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options returns the options RunServer uses: a random port (the default
// test options listen on 4222, like `callflow serve`) and JetStream stored
// under dir.
func Options(dir string) *server.Options {
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = true
	opts.StoreDir = dir
	// Stream reservations (--stream-max-bytes) must not depend on the
	// test machine's free disk.
	opts.JetStreamMaxStore = server.JetStreamMaxStoreDefault
	return &opts
}

// RunServer starts a JetStream-enabled server that shuts down when t ends.
func RunServer(t testing.TB) *server.Server {
	t.Helper()
	s := natsserver.RunServer(Options(t.TempDir()))
	t.Cleanup(s.Shutdown)
	return s
}

// RunServerWith starts a server with opts (from Options, adjusted) that
// shuts down when t ends. Starting it again with the same opts after a
// shutdown brings back the same port and store, so clients reconnect.
func RunServerWith(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s := natsserver.RunServer(opts)
	t.Cleanup(s.Shutdown)
	return s
}

// Connect connects to s; the connection closes when t ends.
func Connect(t testing.TB, s *server.Server, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("connect to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// CheckFor calls f every interval until it returns nil or total has
// passed, then fails the test with f's last error.
func CheckFor(t testing.TB, total, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(interval)
	}
	if err == nil {
		err = errors.New("condition not met")
	}
	t.Fatalf("after %s: %v", total, err)
}
