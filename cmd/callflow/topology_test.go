package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/bench"
	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/testlog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsServerBinary builds nats-server from the module version callflow is
// tested with, once, beside the callflow binary.
var natsServerBinary = sync.OnceValues(func() (string, error) {
	path := filepath.Join(filepath.Dir(binary), "nats-server")
	build := exec.Command("go", "build", "-o", path, "github.com/nats-io/nats-server/v2")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build nats-server: %w\n%s", err, out)
	}
	return path, nil
})

// natsNode is one nats-server process of the test topology.
type natsNode struct {
	conf, client, monitor string
	leaf                  string // leaf node listener of a hub node
	cmd                   *exec.Cmd
	done                  chan error
}

// freeAddrs returns n distinct loopback addresses nothing listens on
// when asked (nats-server needs its cluster's ports in its configuration
// before it starts; a ClickHouse never reached): all are held until all
// are picked, so none is picked twice.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out
}

// startNATSProcesses starts the three-node cluster of deploy/nats as
// three nats-server processes, its configuration files as shipped with
// the ports and stores moved to free ones in the test's directory, and
// waits until every node serves JetStream.
func startNATSProcesses(t testing.TB) []*natsNode {
	t.Helper()
	bin, err := natsServerBinary()
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	addrs := freeAddrs(t, 4*n)
	clients, routes, monitors, leaves := addrs[:n], addrs[n:2*n], addrs[2*n:3*n], addrs[3*n:]
	dir := t.TempDir()
	nodes := make([]*natsNode, n)
	for i := range n {
		var pairs []string
		for j := range n {
			if j == i {
				pairs = append(pairs,
					fmt.Sprintf("listen: 127.0.0.1:%d", 4222+j), "listen: "+clients[j],
					fmt.Sprintf("http: 127.0.0.1:%d", 8222+j), "http: "+monitors[j],
					// Leaf nodes are kept to the addresses they are
					// given (the region test's relays, which cut a
					// region off), not told the hub's own.
					fmt.Sprintf("listen: 127.0.0.1:%d", 7422+j), "listen: "+leaves[j]+"\n  no_advertise: true")
			}
			pairs = append(pairs, fmt.Sprintf("127.0.0.1:%d", 6222+j), routes[j])
		}
		pairs = append(pairs, fmt.Sprintf(`"./data/nats-%d"`, i+1), fmt.Sprintf("%q", filepath.Join(dir, fmt.Sprintf("store-%d", i+1))))
		path := rewriteConf(t, dir, fmt.Sprintf("nats-%d.conf", i+1), pairs...)
		nodes[i] = &natsNode{conf: path, client: "nats://" + clients[i], monitor: monitors[i], leaf: leaves[i]}
		nodes[i].start(t, bin)
	}
	for _, nd := range nodes {
		nd.waitJetStream(t)
	}
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.kill(t)
		}
	})
	return nodes
}

// rewriteConf writes deploy/nats/<name> into dir with each old string of
// pairs (old, new, old, new, ...) replaced by its new one, in order, and
// returns the copy's path. An old string the file lacks fails the test:
// the shipped file changed and the test's rewriting no longer matches it.
func rewriteConf(t testing.TB, dir, name string, pairs ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "nats", name))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(conf, pairs[i]) {
			t.Fatalf("deploy/nats/%s has no %q: the test's rewriting no longer matches it", name, pairs[i])
		}
		conf = strings.ReplaceAll(conf, pairs[i], pairs[i+1])
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (nd *natsNode) start(t testing.TB, bin string) {
	t.Helper()
	nd.cmd = exec.Command(bin, "-c", nd.conf)
	log, err := os.OpenFile(nd.conf+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	nd.cmd.Stdout, nd.cmd.Stderr = log, log
	if err := nd.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	nd.done = make(chan error, 1)
	go func() { nd.done <- nd.cmd.Wait(); log.Close() }()
}

// waitJetStream waits until the node's /healthz answers 200: JetStream up
// with a meta leader and the node's streams current.
func (nd *natsNode) waitJetStream(t testing.TB) {
	t.Helper()
	natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		select {
		case err := <-nd.done:
			nd.done <- err
			log, _ := os.ReadFile(nd.conf + ".log")
			t.Fatalf("nats-server %s exited: %v\n%s", nd.conf, err, log)
		default:
		}
		resp, err := http.Get("http://" + nd.monitor + "/healthz") // JetStream with a meta leader, its assets current
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: healthz %d", nd.conf, resp.StatusCode)
		}
		return nil
	})
}

// kill stops the node as a crash would (SIGKILL) and waits for it.
func (nd *natsNode) kill(t testing.TB) {
	t.Helper()
	if nd.cmd == nil || nd.cmd.Process == nil {
		return
	}
	_ = nd.cmd.Process.Kill()
	select {
	case <-nd.done:
	case <-time.After(10 * time.Second):
		t.Errorf("nats-server %s still running 10s after SIGKILL", nd.conf)
	}
	nd.cmd = nil
}

// TestTopologySeparateProcesses runs the deployment of the README's
// "Scaling" on one machine: three nats-server processes started from
// deploy/nats's configuration files, two ingest, three decider and two
// archiver processes, and the archive on the test ClickHouse cluster (two
// shards of two replicas). Under load, one NATS node, one decider, one
// archiver and the ingest taking the calls are killed (SIGKILL) and
// started again, one at a time. Every call is answered but those sent
// while the ingest was down, and every answered call is in the stream and,
// through the Distributed table with FINAL, in ClickHouse exactly once.
func TestTopologySeparateProcesses(t *testing.T) {
	c := chtest.ClusterFor(t)
	db := c.Database(t)
	nodes := startNATSProcesses(t)
	var urls []string
	for _, nd := range nodes {
		urls = append(urls, nd.client)
	}
	common := []string{"--nats-url", strings.Join(urls, ","), "--log-format", "json", "--shutdown-timeout", "15s"}
	ingestArgs := func(name, dataDir, httpAddr, adminAddr string) []string {
		return append([]string{"ingest", "--http-addr", httpAddr, "--admin-addr", adminAddr,
			"--data-dir", dataDir, "--stream-replicas", "3", "--sessions-replicas", "3", "--instance", name}, common...)
	}
	// ingest-1 takes the calls; ingest-2 the session API, so that sessions
	// reach the deciders from another process.
	ingest1Dir := t.TempDir()
	ingest1 := start(t, nil, ingestArgs("ingest-1", ingest1Dir, anyPort, anyPort)...)
	ia := waitReady(t, ingest1)
	ingest2 := start(t, nil, ingestArgs("ingest-2", t.TempDir(), anyPort, anyPort)...)
	ia2 := waitReady(t, ingest2)
	deciderArgs := append([]string{"decider", "--deciders", "1", "--admin-addr", anyPort, "--sessions-replicas", "3"}, common...)
	archiverArgs := append([]string{"archiver", "--admin-addr", anyPort, "--stream-replicas", "3",
		"--clickhouse-addr", strings.Join(c.Addrs, ","), "--clickhouse-cluster", c.Name, "--clickhouse-database", db,
		"--batch-max-age", "100ms", "--archiver-ack-wait", "5s"}, common...)
	var deciders, archivers []*proc
	for range 3 {
		deciders = append(deciders, start(t, nil, deciderArgs...))
	}
	for range 2 {
		archivers = append(archivers, start(t, nil, archiverArgs...))
	}
	for _, p := range append(append([]*proc{}, deciders...), archivers...) {
		waitReady(t, p)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	var benchOut, benchErr testlog.Buffer
	type result struct {
		rep *bench.Report
		err error
	}
	done := make(chan result, 1)
	const load = 60 * time.Second
	go func() {
		rep, err := bench.Run(ctx, bench.Config{
			URL: "http://" + ia.Webhook + "/vca", Rate: 100, Duration: load, Connections: 256,
			Timeout: 10 * time.Second, Drain: 15 * time.Second,
			Sessions: 20, SessionTTL: time.Hour, AdminURL: "http://" + ia2.Admin, Mix: bench.DefaultMix,
			Audit: true, NATSURL: strings.Join(urls, ","),
			ClickHouseAddr: c.Addrs[1], ClickHouseDatabase: db, AuditWait: 90 * time.Second,
		}, &benchOut, &benchErr)
		done <- result{rep, err}
	}()
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(benchErr.String(), "callflow bench: load on") {
			return fmt.Errorf("load not started: %s", benchErr.String())
		}
		return nil
	})
	// Records in the stream: what the steps wait to see grow (the
	// ingest's own counters restart with it).
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	recorded := func() (float64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, "CALLS")
		if err != nil {
			return 0, err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return 0, err
		}
		return float64(info.State.LastSeq), nil
	}
	step := func(what string, fault func()) {
		t.Helper()
		before, err := recorded()
		if err != nil {
			t.Fatal(err)
		}
		fault()
		waitAtLeast(t, 30*time.Second, "records acknowledged after "+what, before+100, recorded)
		t.Logf("%s: records flow again", what)
	}
	bin, _ := natsServerBinary()
	step("a NATS node killed and restarted", func() {
		nodes[0].kill(t)
		time.Sleep(3 * time.Second) // down for a while, under load
		nodes[0].start(t, bin)
		nodes[0].waitJetStream(t)
	})
	step("a decider killed and restarted", func() {
		_ = deciders[0].cmd.Process.Kill()
		deciders[0] = start(t, nil, deciderArgs...)
		waitReady(t, deciders[0])
	})
	step("an archiver killed and restarted", func() {
		_ = archivers[0].cmd.Process.Kill()
		archivers[0] = start(t, nil, archiverArgs...)
		waitReady(t, archivers[0])
	})
	// The ingest taking the calls, killed: calls sent meanwhile fail to
	// connect (a load balancer would move them to ingest-2); those it
	// answered have their records in JetStream or in its spool, which it
	// sends when it is back on the same data directory and addresses.
	step("the calls' ingest killed and restarted", func() {
		_ = ingest1.cmd.Process.Kill()
		select {
		case <-ingest1.exited:
		case <-time.After(10 * time.Second):
			t.Fatal("ingest-1 still running 10s after SIGKILL")
		}
		ingest1 = startOn(t, nil, []string{ia.Webhook, ia.Admin}, ingestArgs("ingest-1", ingest1Dir, ia.Webhook, ia.Admin)...)
		waitReady(t, ingest1)
	})

	var res result
	select {
	case res = <-done:
	case <-time.After(140 * time.Second):
		t.Fatalf("bench did not end:\n%s", benchErr.String())
	}
	t.Logf("bench report:\n%s", benchOut.String())
	if res.rep == nil {
		t.Fatalf("bench could not run: %v\n%s", res.err, benchErr.String())
	}
	if res.err != nil {
		t.Errorf("bench: %v", res.err)
	}
	sys := res.rep.System
	// The only failures: calls sent while the ingest was down, refused.
	for kind := range sys.Errors {
		if kind != "connection" {
			t.Errorf("errors %v, e.g. %v: only connection failures while the ingest restarted are expected", sys.Errors, sys.ErrorSamples)
			break
		}
	}
	if sys.Answered+sys.ErrorCount() != sys.Requests || sys.Requests != sys.Scheduled || sys.Answered == 0 {
		t.Errorf("%d scheduled, %d sent, %d answered 200, %d failed", sys.Scheduled, sys.Requests, sys.Answered, sys.ErrorCount())
	}
	if sys.Wrong["in_session_not_connected"] != 0 || sys.Wrong["out_of_session_connected"] != 0 {
		t.Errorf("wrong answers: %v", sys.Wrong)
	}
	if sys.Answers["connect"] == 0 {
		t.Errorf("no call connected: %v", sys.Answers)
	}
	checkStoredOnce(t, "", res.rep)
	t.Logf("answers %v; %d fallbacks; %d calls refused while the ingest restarted", sys.Answers, sys.Answers["fallback"], sys.ErrorCount())
}
