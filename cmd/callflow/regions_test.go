package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/bench"
	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/testlog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// region is one region's nats-server process, started from
// deploy/nats/region-<name>.conf, and the relays that stand between it
// and the hub's leaf node listeners, so that the test can cut it off.
type region struct {
	name   string
	node   *natsNode
	relays []*natstest.Relay
}

// cut cuts the region off from the centre; restore joins it again.
func (r *region) cut() {
	for _, rl := range r.relays {
		rl.Cut()
	}
}

func (r *region) restore() {
	for _, rl := range r.relays {
		rl.Restore()
	}
}

// startRegion starts the region's leaf node from its configuration file
// as shipped, with its ports and store moved to free ones in the test's
// directory and each of its remotes (the hub's nodes) behind a relay.
func startRegion(t *testing.T, name string, hub []*natsNode) *region {
	t.Helper()
	bin, err := natsServerBinary()
	if err != nil {
		t.Fatal(err)
	}
	port := map[string]int{"a": 32, "b": 42}[name]
	addrs := freeAddrs(t, 2)
	dir := t.TempDir()
	pairs := []string{
		fmt.Sprintf("listen: 127.0.0.1:42%d", port), "listen: " + addrs[0],
		fmt.Sprintf("http: 127.0.0.1:82%d", port), "http: " + addrs[1],
		fmt.Sprintf(`"./data/region-%s"`, name), fmt.Sprintf("%q", filepath.Join(dir, "store")),
	}
	r := &region{name: name}
	for j, nd := range hub {
		rl := natstest.NewRelay(t, nd.leaf)
		r.relays = append(r.relays, rl)
		pairs = append(pairs, fmt.Sprintf("nats-leaf://127.0.0.1:%d", 7422+j), "nats-leaf://"+rl.Addr())
	}
	path := rewriteConf(t, dir, "region-"+name+".conf", pairs...)
	r.node = &natsNode{conf: path, client: "nats://" + addrs[0], monitor: addrs[1]}
	r.node.start(t, bin)
	t.Cleanup(func() { r.node.kill(t) })
	r.node.waitJetStream(t)
	r.waitLeaf(t, 1)
	return r
}

// waitLeaf waits until the region's server has n leaf node connections
// (1: joined to the centre; 0: cut off).
func (r *region) waitLeaf(t *testing.T, n int) {
	t.Helper()
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Get("http://" + r.node.monitor + "/leafz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var leafz struct {
			Leafs int `json:"leafnodes"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&leafz); err != nil {
			return err
		}
		if leafz.Leafs != n {
			return fmt.Errorf("region %s: %d leaf node connections, want %d", r.name, leafz.Leafs, n)
		}
		return nil
	})
}

// TestRegions runs the multi-region deployment of deploy/nats on one
// machine: the centre (three nats-server processes of domain hub, an
// ingest holding the sessions bucket and an archiver whose stream sources
// the regions) and two regions (a leaf node each, with its own JetStream
// domain, and an ingest and a decider whose sessions bucket mirrors the
// centre's). Each region takes calls under load, its sessions created
// through its own admin API; region b is cut off from the centre for a
// while and keeps answering, then catches up. Every call is answered by
// its region's deciders (no fallback, no wrong answer) and every answered
// call is in the centre's stream and in ClickHouse exactly once.
func TestRegions(t *testing.T) {
	chAddr := chtest.Addr(t)
	db := chtest.Database(t, chAddr)
	hub := startNATSProcesses(t)
	var hubURLs []string
	for _, nd := range hub {
		hubURLs = append(hubURLs, nd.client)
	}
	hubURL := strings.Join(hubURLs, ",")
	regions := []*region{startRegion(t, "a", hub), startRegion(t, "b", hub)}
	process := []string{"--log-format", "json", "--shutdown-timeout", "15s"}

	// The centre: an ingest (the sessions bucket and the centre's own
	// region's stream, R3) and an archiver that sources the regions.
	centre := start(t, nil, append([]string{"ingest", "--http-addr", anyPort, "--admin-addr", anyPort, "--data-dir", t.TempDir(),
		"--instance", "ingest-hub", "--nats-url", hubURL, "--stream-replicas", "3", "--sessions-replicas", "3"}, process...)...)
	waitReady(t, centre)
	archiver := start(t, nil, append([]string{"archiver", "--admin-addr", anyPort, "--nats-url", hubURL, "--stream-replicas", "3",
		"--stream-source-domains", "region-a,region-b", "--clickhouse-addr", chAddr, "--clickhouse-database", db,
		"--batch-max-age", "100ms"}, process...)...)
	waitReady(t, archiver)

	type regional struct {
		ingest listeners
		runID  string
	}
	var rs []regional
	for _, r := range regions {
		url := r.node.client
		in := start(t, nil, append([]string{"ingest", "--http-addr", anyPort, "--admin-addr", anyPort, "--data-dir", t.TempDir(),
			"--instance", "ingest-" + r.name, "--nats-url", url, "--sessions-mirror-domain", "hub"}, process...)...)
		dec := start(t, nil, append([]string{"decider", "--deciders", "2", "--admin-addr", anyPort, "--nats-url", url,
			"--sessions-mirror-domain", "hub"}, process...)...)
		a := waitReady(t, in)
		waitReady(t, dec)
		rs = append(rs, regional{ingest: a, runID: fmt.Sprintf("region%s.%d", r.name, time.Now().UnixMilli())})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	type result struct {
		rep *bench.Report
		err error
	}
	results := make([]chan result, len(rs))
	outs := make([]*testlog.Buffer, len(rs))
	errs := make([]*testlog.Buffer, len(rs))
	for i, r := range rs {
		results[i] = make(chan result, 1)
		outs[i], errs[i] = &testlog.Buffer{}, &testlog.Buffer{}
		go func() {
			rep, err := bench.Run(ctx, bench.Config{
				URL: "http://" + r.ingest.Webhook + "/vca", Rate: 50, Duration: 40 * time.Second, Connections: 64,
				Timeout: 10 * time.Second, Drain: 15 * time.Second, RunID: r.runID,
				Sessions: 10, SessionTTL: time.Hour, AdminURL: "http://" + r.ingest.Admin, Mix: bench.DefaultMix,
				Audit: true, NATSURL: hubURL, ClickHouseAddr: chAddr, ClickHouseDatabase: db, AuditWait: 90 * time.Second,
			}, outs[i], errs[i])
			results[i] <- result{rep, err}
		}()
	}
	for i := range rs {
		natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
			select {
			case res := <-results[i]:
				t.Fatalf("region %s: bench ended before its load: %v\n%s", regions[i].name, res.err, errs[i].String())
			default:
			}
			if !strings.Contains(errs[i].String(), "callflow bench: load on") {
				return fmt.Errorf("load not started in region %s: %s", regions[i].name, errs[i].String())
			}
			return nil
		})
	}

	// Region b cut off from the centre under load: its calls go on being
	// answered and recorded in its own stream.
	b := regions[1]
	nc, err := nats.Connect(b.node.client)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	bjs, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	recorded := func() (float64, error) {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		s, err := bjs.Stream(ctx, "CALLS")
		if err != nil {
			return 0, err
		}
		return float64(s.CachedInfo().State.LastSeq), nil
	}
	time.Sleep(5 * time.Second)
	b.cut()
	b.waitLeaf(t, 0)
	before, err := recorded()
	if err != nil {
		t.Fatal(err)
	}
	after := waitAtLeast(t, 30*time.Second, "region b's records while cut off", before+400, recorded)
	t.Logf("region b cut off: %v records recorded in the region meanwhile", after-before)
	b.restore()
	b.waitLeaf(t, 1)

	for i, r := range regions {
		var res result
		select {
		case res = <-results[i]:
		case <-time.After(140 * time.Second):
			t.Fatalf("bench of region %s did not end:\n%s", r.name, errs[i].String())
		}
		t.Logf("region %s: bench report:\n%s", r.name, outs[i].String())
		if res.rep == nil {
			t.Fatalf("region %s: bench could not run: %v\n%s", r.name, res.err, errs[i].String())
		}
		if res.err != nil {
			t.Errorf("region %s: bench: %v", r.name, res.err)
		}
		sys := res.rep.System
		if sys.ErrorCount() != 0 || sys.Answered != sys.Requests || sys.Requests != sys.Scheduled {
			t.Errorf("region %s: %d scheduled, %d sent, %d answered, errors %v", r.name, sys.Scheduled, sys.Requests, sys.Answered, sys.Errors)
		}
		if sys.Answers["fallback"] != 0 || sys.Answers["connect"] == 0 {
			t.Errorf("region %s: answers %v: want calls connected by the region's deciders, no fallback", r.name, sys.Answers)
		}
		if sys.Wrong["in_session_not_connected"] != 0 || sys.Wrong["out_of_session_connected"] != 0 {
			t.Errorf("region %s: wrong answers %v", r.name, sys.Wrong)
		}
		checkStoredOnce(t, "region "+r.name+": ", res.rep)
	}
}
