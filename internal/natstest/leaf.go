package natstest

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// RunHub starts a JetStream server of the JetStream domain that accepts
// leaf nodes, as the centre of a multi-region deployment; it returns the
// server and its leaf node listener (host:port). It shuts down when t ends.
func RunHub(t testing.TB, domain string) (*server.Server, string) {
	t.Helper()
	opts := Options(t.TempDir())
	opts.ServerName = domain
	opts.JetStreamDomain = domain
	opts.LeafNode.Host = "127.0.0.1"
	opts.LeafNode.Port = freePort(t)
	// Leaf nodes keep to the address they were given (a Relay in
	// RunLeaf) rather than the one the hub would advertise.
	opts.LeafNode.NoAdvertise = true
	return RunServerWith(t, opts), net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.LeafNode.Port))
}

// RunLeaf starts a JetStream server of its own JetStream domain, a
// region, joined as a leaf node to the hub whose leaf node listener is
// hubLeaf, through a Relay that can cut it off. Subjects matching deny
// cross the leaf connection in neither direction. The leaf reconnects
// within a fraction of a second once the relay is restored.
func RunLeaf(t testing.TB, domain, hubLeaf string, deny ...string) (*server.Server, *Relay) {
	t.Helper()
	relay := NewRelay(t, hubLeaf)
	opts := Options(t.TempDir())
	opts.ServerName = domain
	opts.JetStreamDomain = domain
	opts.LeafNode.ReconnectInterval = 100 * time.Millisecond
	opts.LeafNode.Remotes = []*server.RemoteLeafOpts{{
		URLs:        []*url.URL{{Scheme: "nats-leaf", Host: relay.Addr()}},
		DenyImports: deny,
		DenyExports: deny,
	}}
	return RunServerWith(t, opts), relay
}

// WaitLeaf waits until s has n leaf node connections.
func WaitLeaf(t testing.TB, s *server.Server, n int) {
	t.Helper()
	CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if got := s.NumLeafNodes(); got != n {
			return fmt.Errorf("%s has %d leaf node connections, want %d", s.Name(), got, n)
		}
		return nil
	})
}

// freePort returns a loopback TCP port nothing listened on a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
