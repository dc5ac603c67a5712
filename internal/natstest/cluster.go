package natstest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClusterSize is the number of nodes RunCluster starts: the smallest
// cluster that keeps an R3 stream writable with one node down.
const ClusterSize = 3

// ClusterFormTimeout bounds how long RunCluster and Cluster.Restart wait
// for the cluster to form (routes up, a JetStream meta leader, every
// running node current).
const ClusterFormTimeout = 60 * time.Second

// Cluster is an in-process JetStream cluster of ClusterSize nodes, each
// with its own store under the test's temporary directory. A node can be
// stopped (Shutdown, or Kill for a crash) and started again with the same
// store and the same client URL, as when one machine is restarted; clients
// configured with URL reconnect to it. Every node is shut down when the
// test ends.
//
// Every connection to a node, from clients and from the other nodes,
// passes through a loopback TCP relay of that node (the client URLs and
// route URLs are the relays' addresses, and the nodes advertise those), so
// that Kill can drop all of a node's connections at once, as a crash of
// its process would: no goodbye reaches the others.
type Cluster struct {
	// Name is the cluster name the nodes share.
	Name string

	t     testing.TB
	mu    sync.Mutex
	nodes []*clusterNode
	// routes[i][j] carries the route node i opens to node j (nil for
	// i == j).
	routes [][]*link
}

// clusterNode is one node: what it is started with, and the running
// server (nil while it is stopped).
type clusterNode struct {
	name     string
	storeDir string
	clients  *link // relays client connections to the node
	srv      *server.Server
	// The running server's listeners, "" while it is stopped.
	clientAddr, routeAddr string
}

// RunCluster starts a three-node JetStream cluster and returns once it has
// formed: every node is routed to the other two, JetStream has a meta
// leader and every node is current with it. It fails the test when that
// takes longer than ClusterFormTimeout.
func RunCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{Name: "callflow-test", t: t}
	base := t.TempDir()
	for i := range ClusterSize {
		c.nodes = append(c.nodes, &clusterNode{
			name:     "n" + strconv.Itoa(i+1),
			storeDir: filepath.Join(base, "n"+strconv.Itoa(i+1)),
		})
	}
	relay := func(target func() string) *link {
		l, err := newLink(target)
		if err != nil {
			t.Fatalf("relay: %v", err)
		}
		t.Cleanup(l.close)
		return l
	}
	c.routes = make([][]*link, ClusterSize)
	for i, n := range c.nodes {
		n.clients = relay(func() string { return c.listener(i, false) })
		c.routes[i] = make([]*link, ClusterSize)
		for j := range ClusterSize {
			if i != j {
				c.routes[i][j] = relay(func() string { return c.listener(j, true) })
			}
		}
	}
	// Registered after the cleanups of the store directories and of the
	// relays, so it runs before them: the nodes stop as a cluster, then
	// their stores are removed.
	t.Cleanup(c.shutdownAll)
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes))
	for i := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.start(i)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	c.WaitFormed(ClusterFormTimeout)
	return c
}

// options returns node i's options: random client and route ports behind
// its relays, the relay's address advertised to clients, routes to the
// other nodes through relays, and JetStream stored in its own directory.
func (c *Cluster) options(i int) *server.Options {
	n := c.nodes[i]
	opts := Options(n.storeDir)
	opts.ServerName = n.name
	opts.ClientAdvertise = n.clients.addr()
	opts.Cluster.Name = c.Name
	opts.Cluster.Host = "127.0.0.1"
	opts.Cluster.Port = -1
	// Nodes learn of each other's route address from the others; an
	// address where nothing listens keeps them on the relays (a route
	// learnt that way is tried once).
	opts.Cluster.Advertise = unreachable
	// One route connection per pair of nodes (as the server's own
	// package tests do), uncompressed: cheaper under the race detector.
	opts.Cluster.PoolSize = -1
	opts.Cluster.Compression.Mode = server.CompressionOff
	var routes []string
	for j := range c.nodes {
		if j != i {
			routes = append(routes, "nats://"+c.routes[i][j].addr())
		}
	}
	opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
	return opts
}

// unreachable is a loopback address nothing listens on.
const unreachable = "127.0.0.1:1"

// listener returns the route or client listener of node i, or "" while
// it is stopped.
func (c *Cluster) listener(i int, route bool) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if route {
		return c.nodes[i].routeAddr
	}
	return c.nodes[i].clientAddr
}

// start starts node i and waits until it accepts client connections.
func (c *Cluster) start(i int) error {
	c.setLinks(i, true)
	opts := c.options(i)
	s, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("node %s: %w", c.nodes[i].name, err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("node %s: not accepting connections after 30s", c.nodes[i].name)
	}
	route := s.ClusterAddr()
	if route == nil {
		s.Shutdown()
		return fmt.Errorf("node %s: no route listener", c.nodes[i].name)
	}
	c.mu.Lock()
	c.nodes[i].clientAddr = s.Addr().String()
	c.nodes[i].routeAddr = route.String()
	c.nodes[i].srv = s
	c.mu.Unlock()
	return nil
}

// setLinks connects (up) or cuts every relay of node i: its clients', and
// its routes to and from the other nodes.
func (c *Cluster) setLinks(i int, up bool) {
	c.nodes[i].clients.set(up)
	for j := range c.nodes {
		if j != i {
			c.routes[i][j].set(up)
			c.routes[j][i].set(up)
		}
	}
}

// Shutdown stops node i, as a server stopped by a signal does, and waits
// until it has stopped: it first steps down from the Raft groups it leads
// (streams, consumers, the JetStream meta group), handing them to another
// node, which takes over at once.
func (c *Cluster) Shutdown(i int) {
	c.t.Helper()
	c.stop(i, false)
}

// Kill stops node i as a crash of its process would: all its connections,
// to clients and to the other nodes, drop at once, before it stops, so the
// hand-over Shutdown does reaches nobody and the others elect new leaders
// for what it led only once its heartbeats are missed (seconds: a Raft
// election timeout). Its clients reconnect to other nodes.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.stop(i, true)
}

func (c *Cluster) stop(i int, cut bool) {
	c.t.Helper()
	c.mu.Lock()
	s := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.nodes[i].clientAddr, c.nodes[i].routeAddr = "", ""
	c.mu.Unlock()
	if s == nil {
		c.t.Fatalf("node %s is already stopped", c.nodes[i].name)
	}
	if cut {
		c.setLinks(i, false)
	}
	s.Shutdown()
	s.WaitForShutdown()
	c.setLinks(i, false)
}

// Restart starts the nodes again, after Shutdown or Kill, with the same
// stores and client URLs, and waits until the cluster has formed again
// with them. Nodes that were down together come back together: a meta
// leader elected while some were down may go on counting one that is
// still down as a peer for a while, and the cluster would not look formed
// until it is back.
func (c *Cluster) Restart(nodes ...int) {
	c.t.Helper()
	for _, i := range nodes {
		c.mu.Lock()
		running := c.nodes[i].srv != nil
		c.mu.Unlock()
		if running {
			c.t.Fatalf("node %s is running", c.nodes[i].name)
		}
		if err := c.start(i); err != nil {
			c.t.Fatalf("restart: %v", err)
		}
	}
	c.WaitFormed(ClusterFormTimeout)
}

// WaitFormed waits until every running node is routed to every other
// running node, JetStream has a meta leader that sees every running node
// as a peer, and every running node is current with it; it fails the test
// after total.
func (c *Cluster) WaitFormed(total time.Duration) {
	c.t.Helper()
	CheckFor(c.t, total, 20*time.Millisecond, c.formed)
}

func (c *Cluster) formed() error {
	running := c.running()
	var leader *server.Server
	for _, s := range running {
		if got := s.NumRoutes(); got != len(running)-1 {
			return fmt.Errorf("%s has %d routes, want %d", s.Name(), got, len(running)-1)
		}
		if s.JetStreamIsLeader() {
			leader = s
		}
	}
	if leader == nil {
		return errors.New("no JetStream meta leader among the running nodes")
	}
	if peers := leader.JetStreamClusterPeers(); len(peers) != len(running) {
		return fmt.Errorf("meta leader %s sees peers %v, want %d", leader.Name(), peers, len(running))
	}
	for _, s := range running {
		if !s.JetStreamIsCurrent() {
			return fmt.Errorf("%s is not current with the meta leader", s.Name())
		}
	}
	return nil
}

// running returns the servers that are up.
func (c *Cluster) running() []*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*server.Server
	for _, n := range c.nodes {
		if n.srv != nil {
			out = append(out, n.srv)
		}
	}
	return out
}

// shutdownAll stops every running node and waits for them.
func (c *Cluster) shutdownAll() {
	c.mu.Lock()
	var servers []*server.Server
	for _, n := range c.nodes {
		if n.srv != nil {
			servers = append(servers, n.srv)
			n.srv = nil
		}
	}
	c.mu.Unlock()
	for _, s := range servers {
		s.Shutdown()
	}
	for _, s := range servers {
		s.WaitForShutdown()
	}
}

// URLs returns the client URL of every node, in node order, whether the
// node is running or not: the list a client is configured with. A node
// keeps its URL across restarts.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = "nats://" + n.clients.addr()
	}
	return urls
}

// URL returns URLs joined with commas, as --nats-url takes them.
func (c *Cluster) URL() string { return strings.Join(c.URLs(), ",") }

// Server returns node i's server, or nil while it is shut down.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// NodeName returns node i's server name ("n1", "n2", "n3"), as JetStream
// reports it in cluster information.
func (c *Cluster) NodeName(i int) string { return c.nodes[i].name }

// Index returns the index of the node with the given server name, or -1.
func (c *Cluster) Index(name string) int {
	for i, n := range c.nodes {
		if n.name == name {
			return i
		}
	}
	return -1
}

// MetaLeader returns the index of the running node that is the JetStream
// meta leader, or -1 when there is none.
func (c *Cluster) MetaLeader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.nodes {
		if n.srv != nil && n.srv.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// StreamLeader returns the index of the running node that leads the
// stream (in the global account, the one clients without credentials
// use), or -1 when none does. Key-value buckets are streams named
// "KV_<bucket>".
func (c *Cluster) StreamLeader(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.nodes {
		if n.srv != nil && n.srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// ConsumerLeader returns the index of the running node that leads the
// stream's consumer (in the global account), or -1 when none does.
func (c *Cluster) ConsumerLeader(stream, consumer string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.nodes {
		if n.srv != nil && n.srv.JetStreamIsConsumerLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream, consumer) {
			return i
		}
	}
	return -1
}

// ClientNodes returns the indexes of the running nodes that hold a client
// connection named name (nats.Name), in node order.
func (c *Cluster) ClientNodes(name string) []int {
	var out []int
	for i := range c.nodes {
		s := c.Server(i)
		if s == nil {
			continue
		}
		cz, err := s.Connz(&server.ConnzOptions{})
		if err != nil {
			continue
		}
		for _, ci := range cz.Conns {
			if ci.Name == name {
				out = append(out, i)
				break
			}
		}
	}
	return out
}

// Connect connects to the cluster through every node's URL, reconnecting
// forever; the connection closes when t ends.
func (c *Cluster) Connect(t testing.TB, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(c.URL(), append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("connect to nats cluster: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// link relays the route connections one node opens to another, so that
// they can be cut.
type link struct {
	ln     net.Listener
	target func() string // the destination node's route listener, "" when down

	mu    sync.Mutex
	up    bool
	conns map[net.Conn]struct{}
}

func newLink(target func() string) (*link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &link{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go l.serve()
	return l, nil
}

func (l *link) addr() string { return l.ln.Addr().String() }

func (l *link) serve() {
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return // closed
		}
		go l.relay(in)
	}
}

// relay connects in to the destination while the link is up, and copies
// both ways until either side closes or the link is cut. A destination
// that is starting is waited for a moment, so that nodes started together
// are routed without waiting for a reconnect.
func (l *link) relay(in net.Conn) {
	target := l.target()
	for wait := time.Now().Add(2 * time.Second); target == "" && l.isUp() && time.Now().Before(wait); target = l.target() {
		time.Sleep(10 * time.Millisecond)
	}
	if target == "" || !l.isUp() {
		in.Close()
		return
	}
	out, err := net.DialTimeout("tcp", target, 2*time.Second)
	if err != nil {
		in.Close()
		return
	}
	if !l.track(in, out) {
		in.Close()
		out.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	in.Close()
	out.Close()
	<-done
	l.untrack(in, out)
}

func (l *link) isUp() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.up
}

// track registers a relayed pair, unless the link was cut meanwhile.
func (l *link) track(conns ...net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.up {
		return false
	}
	for _, c := range conns {
		l.conns[c] = struct{}{}
	}
	return true
}

func (l *link) untrack(conns ...net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range conns {
		delete(l.conns, c)
	}
}

// set brings the link up, or cuts it: every relayed connection is closed
// at once and new ones are refused.
func (l *link) set(up bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.up = up
	if !up {
		for c := range l.conns {
			c.Close()
		}
	}
}

func (l *link) close() {
	l.set(false)
	l.ln.Close()
}

// Relay is a loopback TCP relay to a fixed address that a test can cut
// and restore, as a network partition would: between a leaf node and its
// hub, say.
type Relay struct{ l *link }

// NewRelay starts a relay to target (host:port), up; it is closed when the
// test ends.
func NewRelay(t testing.TB, target string) *Relay {
	t.Helper()
	l, err := newLink(func() string { return target })
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	l.set(true)
	t.Cleanup(l.close)
	return &Relay{l: l}
}

// Addr is the relay's listening address (host:port).
func (r *Relay) Addr() string { return r.l.addr() }

// Cut closes every relayed connection at once and refuses new ones until
// Restore.
func (r *Relay) Cut() { r.l.set(false) }

// Restore lets connections through again.
func (r *Relay) Restore() { r.l.set(true) }
