package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/bench"
	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/internal/testlog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The load of TestClusterNodeLossDuringLoad: long enough for the kill, a
// new leader (elected 4 to 9 s after the kill: a Raft election timeout),
// records through it, and the restart. clusterRecords is how many records
// JetStream must acknowledge before the kill, and again through the new
// leader before the restart.
const (
	clusterRate    = 150
	clusterLoad    = 18 * time.Second
	clusterRecords = 50
)

// clusterStreamReplicas reports nil when the stream has a leader and
// want-1 other replicas, every one current and online. It waits at most a
// few seconds: without a leader, the request gets no answer.
func clusterStreamReplicas(ctx context.Context, js jetstream.JetStream, stream string, want int) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.Config.Replicas != want {
		return info, fmt.Errorf("stream %s is configured with %d replicas, want %d", stream, info.Config.Replicas, want)
	}
	ci := info.Cluster
	if ci == nil || ci.Leader == "" {
		return info, fmt.Errorf("stream %s has no leader", stream)
	}
	if len(ci.Replicas) != want-1 {
		return info, fmt.Errorf("stream %s: leader %s and %d other replicas, want %d", stream, ci.Leader, len(ci.Replicas), want-1)
	}
	for _, r := range ci.Replicas {
		if !r.Current || r.Offline {
			return info, fmt.Errorf("stream %s: replica %s current %v, offline %v, %d operations behind", stream, r.Name, r.Current, r.Offline, r.Lag)
		}
	}
	return info, nil
}

// clusterClients lists, per running node, the names of the client
// connections it holds: which role was on the node that went away.
func clusterClients(c *natstest.Cluster) string {
	var b strings.Builder
	for i := range natstest.ClusterSize {
		s := c.Server(i)
		if s == nil {
			fmt.Fprintf(&b, "%s: down; ", c.NodeName(i))
			continue
		}
		cz, err := s.Connz(&server.ConnzOptions{})
		if err != nil {
			fmt.Fprintf(&b, "%s: %v; ", c.NodeName(i), err)
			continue
		}
		var names []string
		for _, ci := range cz.Conns {
			names = append(names, ci.Name)
		}
		fmt.Fprintf(&b, "%s: %v; ", c.NodeName(i), names)
	}
	return b.String()
}

// clusterMetrics returns the lines of a role's /metrics that say how calls
// and records fared: decisions and fallbacks, record publish failures and
// the spool, decider requests, archiver rows, retries and redeliveries.
func clusterMetrics(adminAddr string) string {
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	want := regexp.MustCompile(`^callflow_(fallbacks|record|spool|decisions|decider_breaker|decider_requests|archiver_(rows|retries|redeliveries|rejected|consumer))`)
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if want.MatchString(sc.Text()) && !strings.Contains(sc.Text(), "_bucket{") {
			out = append(out, sc.Text())
		}
	}
	return strings.Join(out, "\n")
}

// clusterLogLines returns the log lines of p that mention one of words.
func clusterLogLines(p *proc, words ...string) string {
	var out []string
	for _, line := range strings.Split(p.log(), "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestClusterNodeLossDuringLoad: the roles (an ingestor, two decider
// processes and an archiver) run against a three-node JetStream cluster,
// the stream and the session bucket with three replicas. During an
// open-loop load of in-session, out-of-session, status and summary
// webhooks, the node leading the records stream is killed (cut off from
// the others, then stopped, as in a crash) and, a few seconds later,
// started again on the same client port and store. Every call is
// answered (no HTTP or connection error), in-session calls are connected
// or, while the cluster fails over, get the fallback (never the
// out-of-session answer), every webhook answered 200 is in the stream and
// in ClickHouse exactly once through FINAL (count and set of event ids),
// and the stream has three current replicas again after the restart.
func TestClusterNodeLossDuringLoad(t *testing.T) {
	chAddr := chtest.Addr(t)
	db := chtest.Database(t, chAddr)
	began := time.Now()
	cluster := natstest.RunCluster(t)
	urls := cluster.URL()
	t.Logf("cluster formed in %s: %s", time.Since(began).Round(time.Millisecond), urls)

	common := []string{"--nats-url", urls, "--log-format", "json", "--shutdown-timeout", "15s"}
	ingestProc := start(t, nil, append([]string{"ingest", "--http-addr", anyPort, "--admin-addr", anyPort,
		"--data-dir", t.TempDir(), "--stream-replicas", "3", "--sessions-replicas", "3", "--instance", "cluster-ingest"}, common...)...)
	ia := waitReady(t, ingestProc)
	httpAddr, ingestAdmin := ia.Webhook, ia.Admin
	type role struct {
		name  string
		p     *proc
		admin string
	}
	roles := []role{{"ingest", ingestProc, ingestAdmin}}
	for i := range 2 {
		p := start(t, nil, append([]string{"decider", "--deciders", "1", "--admin-addr", anyPort, "--data-dir", t.TempDir(),
			"--sessions-replicas", "3"}, common...)...)
		roles = append(roles, role{name: fmt.Sprintf("decider-%d", i+1), p: p})
	}
	arch := start(t, nil, append([]string{"archiver", "--admin-addr", anyPort, "--data-dir", t.TempDir(),
		"--stream-replicas", "3", "--clickhouse-addr", chAddr, "--clickhouse-database", db,
		"--batch-max-age", "100ms",
		// What an archiver's pull held when its consumer's leader went
		// away is redelivered after this, within the audit's wait.
		"--archiver-ack-wait", "5s"}, common...)...)
	roles = append(roles, role{name: "archiver", p: arch})
	for i := range roles[1:] {
		roles[1+i].admin = waitReady(t, roles[1+i].p).Admin
	}
	t.Logf("roles ready %s after the start", time.Since(began).Round(time.Millisecond))

	// The roles created the stream and the bucket with three replicas, on
	// the three nodes.
	nc, js := cluster.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	bucketStream := "KV_" + session.DefaultBucket
	for _, name := range []string{"CALLS", bucketStream} {
		natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			_, err := clusterStreamReplicas(ctx, js, name, 3)
			return err
		})
	}

	// The worst node to lose holds the ingestor's connection (its
	// in-flight publishes and decide requests are cut), leads the records
	// stream (acknowledgements stop until another node is elected) and
	// leads the archiver's consumer: both leaders are moved there before
	// the load.
	nodes := cluster.ClientNodes("callflow-ingest")
	if len(nodes) != 1 {
		t.Fatalf("ingest connected to nodes %v, want one", nodes)
	}
	victim := nodes[0]
	name := cluster.NodeName(victim)
	clusterMoveLeader(t, nc, "$JS.API.STREAM.LEADER.STEPDOWN.CALLS", name, func() bool { return cluster.StreamLeader("CALLS") == victim })
	clusterMoveLeader(t, nc, "$JS.API.CONSUMER.LEADER.STEPDOWN.CALLS.archiver", name, func() bool { return cluster.ConsumerLeader("CALLS", "archiver") == victim })

	// The load, in the background; sessions first, through the ingest's
	// admin API, so that most calls are in session.
	var benchOut, benchErr testlog.Buffer
	type result struct {
		rep *bench.Report
		err error
	}
	done := make(chan result, 1)
	finished := make(chan struct{})
	defer func() {
		// On an early failure: stop the load before the roles go.
		cancel()
		select {
		case <-finished:
		case <-time.After(30 * time.Second):
			t.Errorf("bench still running 30s after its context was cancelled")
		}
	}()
	go func() {
		defer close(finished)
		rep, err := bench.Run(ctx, bench.Config{
			URL:         "http://" + httpAddr + "/vca",
			Rate:        clusterRate,
			Duration:    clusterLoad,
			Connections: 256,
			Timeout:     10 * time.Second,
			Drain:       15 * time.Second,
			Sessions:    20,
			SessionTTL:  time.Hour,
			AdminURL:    "http://" + ingestAdmin,
			Mix:         bench.DefaultMix,
			Audit:       true,
			NATSURL:     urls,
			// The default stream name.
			ClickHouseAddr:     chAddr,
			ClickHouseDatabase: db,
			AuditWait:          60 * time.Second,
		}, &benchOut, &benchErr)
		done <- result{rep, err}
	}()

	// Wait for the load to start, then kill that node. Killed (cut off,
	// no leader hand-over), its stream and consumer get no leader until
	// the others elect new ones, seconds later.
	var loadStart time.Time
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		select {
		case r := <-done:
			t.Fatalf("bench ended before the load started: %v\n%s\n%s", r.err, benchErr.String(), benchOut.String())
		default:
		}
		if !strings.Contains(benchErr.String(), "callflow bench: load on") {
			return fmt.Errorf("load not started: %s", benchErr.String())
		}
		loadStart = time.Now()
		return nil
	})
	// The load flows end to end before the kill: calls of the load (not
	// the probes before it) connected by the deciders, their records
	// acknowledged.
	recorded := func() (float64, error) {
		v, _, err := metricSum(ingestAdmin, "callflow_record_publish_duration_seconds_count")
		return v, err
	}
	connected := func() (float64, error) {
		v, _, err := metricSum(ingestAdmin, "callflow_decisions_total", `outcome="connect"`)
		return v, err
	}
	connectedAtStart, err := connected()
	if err != nil {
		t.Fatal(err)
	}
	recordedAtStart, err := recorded()
	if err != nil {
		t.Fatal(err)
	}
	waitAtLeast(t, 30*time.Second, "calls of the load connected by the deciders", connectedAtStart+10, connected)
	waitAtLeast(t, 30*time.Second, "records of the load JetStream acknowledged", recordedAtStart+clusterRecords, recorded)
	var info *jetstream.StreamInfo
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		var err error
		info, err = clusterStreamReplicas(ctx, js, "CALLS", 3)
		return err
	})
	t.Logf("load running; killing %s: the ingestor's node, leader of CALLS (%s) and of its archiver consumer (%s); meta leader %s, bucket leader %s; %d records; clients: %s",
		name, info.Cluster.Leader, clusterNodeName(cluster, cluster.ConsumerLeader("CALLS", "archiver")), clusterNodeName(cluster, cluster.MetaLeader()),
		clusterNodeName(cluster, cluster.StreamLeader(bucketStream)), info.State.Msgs, clusterClients(cluster))
	killed := time.Now()
	cluster.Kill(victim)
	t.Logf("%s killed in %s, %s into the load", cluster.NodeName(victim), time.Since(killed).Round(time.Millisecond), killed.Sub(loadStart).Round(time.Millisecond))
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if l := cluster.StreamLeader("CALLS"); l < 0 || l == victim {
			return fmt.Errorf("no new stream leader yet")
		}
		return nil
	})
	t.Logf("CALLS has a new leader %s after the kill", time.Since(killed).Round(time.Millisecond))

	// The two nodes left take records, then the node comes back while the
	// load goes on.
	var elected float64
	elected, err = recorded()
	if err != nil {
		t.Fatal(err)
	}
	waitAtLeast(t, 30*time.Second, "records JetStream acknowledged after the failover", elected+clusterRecords, recorded)
	if time.Since(loadStart) >= clusterLoad {
		t.Fatalf("the load (%s) ended before the node was restarted; lengthen it", clusterLoad)
	}
	restarted := time.Now()
	cluster.Restart(victim)
	t.Logf("%s restarted; cluster formed again in %s, %s into the load", cluster.NodeName(victim),
		time.Since(restarted).Round(time.Millisecond), restarted.Sub(loadStart).Round(time.Millisecond))

	var res result
	select {
	case res = <-done:
	case <-time.After(100 * time.Second):
		t.Fatalf("bench did not end within 100s:\n%s", benchErr.String())
	}
	t.Logf("bench report:\n%s", benchOut.String())
	for _, r := range roles {
		t.Logf("%s metrics:\n%s", r.name, clusterMetrics(r.admin))
	}
	t.Logf("ingest log lines about the failover:\n%s", clusterLogLines(ingestProc, "nats", "breaker", "spool", "JetStream", "acknowledge"))
	if res.rep == nil {
		t.Fatalf("bench could not run: %v\n%s", res.err, benchErr.String())
	}
	if res.err != nil {
		t.Errorf("bench: %v", res.err)
	}
	rep := res.rep

	// Every call got an answer.
	sys := rep.System
	if sys.ErrorCount() != 0 || sys.Answered != sys.Requests || sys.Requests != sys.Scheduled {
		t.Errorf("%d scheduled, %d sent, %d answered 200; errors %v, e.g. %v", sys.Scheduled, sys.Requests, sys.Answered, sys.Errors, sys.ErrorSamples)
	}
	if rep.Sessions == nil || rep.Sessions.Created != 20 || !rep.Sessions.Visible {
		t.Errorf("sessions: %+v", rep.Sessions)
	}

	// Each answer is what the request called for, or the fallback while
	// the cluster failed over: counted here.
	inSession, outOfSession := sys.SentByKind["in_session"], sys.SentByKind["out_of_session"]
	fallbacks := sys.Answers["fallback"]
	t.Logf("answers %v for sent %v: %d fallbacks (%.1f%% of calls), %d of %d in-session calls connected",
		sys.Answers, sys.SentByKind, fallbacks, 100*float64(fallbacks)/float64(max(inSession+outOfSession, 1)), sys.Answers["connect"], inSession)
	if sys.Answers["bad"] != 0 || sys.Answers["other"] != 0 {
		t.Errorf("unusable answers: %v", sys.Answers)
	}
	if sys.Answers["connect"]+sys.Answers["out_of_session"]+fallbacks != inSession+outOfSession ||
		sys.Answers["ack"] != sys.SentByKind["status"]+sys.SentByKind["summary"] {
		t.Errorf("answers %v do not match the requests %v", sys.Answers, sys.SentByKind)
	}
	if sys.Wrong["in_session_not_connected"] != 0 || sys.Wrong["out_of_session_connected"] != 0 {
		t.Errorf("wrong answers (a decider lost or invented sessions): %v", sys.Wrong)
	}
	// How many fall back depends on how long the election takes on a
	// crowded machine (the breaker may open meanwhile); that deciders
	// connect calls through the failover is what is checked.
	if inSession == 0 || sys.Answers["connect"] == 0 {
		t.Errorf("%d of %d in-session calls connected, want some", sys.Answers["connect"], inSession)
	}

	// Every 200 is in the stream and in ClickHouse exactly once.
	checkStoredOnce(t, "", rep)

	// The killed node is back in the stream: three current replicas.
	natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		var err error
		info, err = clusterStreamReplicas(ctx, js, "CALLS", 3)
		return err
	})
	t.Logf("after the restart: CALLS led by %s, replicas %s; %d records", info.Cluster.Leader, clusterReplicaNames(info.Cluster), info.State.Msgs)

	for _, r := range roles {
		if err := r.p.stop(t); err != nil {
			t.Errorf("%s exit after SIGTERM: %v", r.name, err)
		}
	}
	t.Logf("test took %s", time.Since(began).Round(time.Millisecond))
}

// clusterMoveLeader asks, through the JetStream API subject, for the Raft
// group's leader to step down in favour of the node named preferred, until
// isLeader says it leads.
func clusterMoveLeader(t *testing.T, nc *nats.Conn, subject, preferred string, isLeader func() bool) {
	t.Helper()
	req := []byte(`{"placement":{"preferred":"` + preferred + `"}}`)
	natstest.CheckFor(t, 30*time.Second, time.Second, func() error {
		if isLeader() {
			return nil
		}
		resp, err := nc.Request(subject, req, 3*time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		return fmt.Errorf("%s: %s leads not yet (answer %s)", subject, preferred, resp.Data)
	})
}

func clusterNodeName(c *natstest.Cluster, i int) string {
	if i < 0 {
		return "none"
	}
	return c.NodeName(i)
}

func clusterReplicaNames(ci *jetstream.ClusterInfo) string {
	var parts []string
	for _, r := range ci.Replicas {
		parts = append(parts, fmt.Sprintf("%s(current %v)", r.Name, r.Current))
	}
	return strings.Join(parts, ", ")
}
