package archiver

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go/jetstream"
)

func TestClusterSchema(t *testing.T) {
	// Every table of the single-server schema becomes a replicated local
	// table and a Distributed table of its name with a sharding key;
	// every statement runs ON CLUSTER; views read the local tables.
	stmts := ClusterSchema("cf", "main")
	single := Schema("cf")
	joined := strings.Join(stmts, ";\n")
	for _, s := range stmts {
		if !strings.Contains(s, " ON CLUSTER main") {
			t.Errorf("not ON CLUSTER: %.80s", s)
		}
		if strings.Contains(s, "ENGINE = ") && strings.Contains(s, "MergeTree") && !strings.Contains(s, "ENGINE = Replicated") {
			t.Errorf("a MergeTree that is not replicated: %.120s", s)
		}
	}
	for _, s := range single {
		td, ok := parseCreateTable(s)
		if !ok {
			continue
		}
		local := fmt.Sprintf("CREATE TABLE IF NOT EXISTS cf.%s_local ON CLUSTER main", td.table)
		dist := fmt.Sprintf("CREATE TABLE IF NOT EXISTS cf.%s ON CLUSTER main AS cf.%s_local ENGINE = Distributed(main, cf, %s_local, %s)",
			td.table, td.table, td.table, shardingKeys[td.table])
		if shardingKeys[td.table] == "" {
			t.Errorf("%s has no sharding key", td.table)
		}
		for _, want := range []string{local, dist, fmt.Sprintf("'/clickhouse/tables/{shard}/cf/%s_local', '{replica}'", td.table)} {
			if !strings.Contains(joined, want) {
				t.Errorf("cluster schema lacks %q", want)
			}
		}
	}
	if strings.Contains(joined, "FROM cf.call_events\n") || !strings.Contains(joined, "FROM cf.call_events_local") {
		t.Error("a view reads the Distributed table instead of the local one")
	}
	if !strings.Contains(joined, "TO cf.interaction_calls_local") || !strings.Contains(joined, "ENGINE = Distributed(main, cf, calls_per_minute_local, cityHash64(sub_account_id))") {
		t.Error("the views do not write the local tables behind Distributed ones")
	}
}

// clusterEnv is env on the test cluster: the records stream in NATS and a
// fresh database on every server.
func clusterEnv(t *testing.T) (*env, chtest.Cluster) {
	t.Helper()
	c := chtest.ClusterFor(t)
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Name: "CALLS", MaxAge: time.Hour, Duplicates: time.Minute, Replicas: 1}, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	// Reads go to the second server: the first is the one the test stops.
	return &env{js: js, ch: chtest.Conn(t, c.Addrs[1]), addr: c.Addrs[1], db: c.Database(t)}, c
}

func (e *env) clusterConfig(t *testing.T, c chtest.Cluster) Config {
	cfg := e.config(t)
	cfg.ClickHouse.Addrs = c.Addrs
	cfg.ClickHouse.Cluster = c.Name
	cfg.Batch.MaxRows = 200
	cfg.RetryMax = 200 * time.Millisecond
	return cfg
}

// TestClusterArchive: two archivers write a stream of records, 8x8's
// repeats among them, into the cluster while one replica (the first
// server the archivers dial) is killed and later started again. The
// Distributed table with FINAL holds every event once, and the replicas
// of each shard agree.
func TestClusterArchive(t *testing.T) {
	e, c := clusterEnv(t)
	cfg := e.clusterConfig(t, c)
	e.run(t, cfg)
	e.run(t, cfg)

	const total, repeats = 3000, 300
	publish := func(from, to int) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for i := from; i < to; i++ {
			subject, id, data := record(i, wire.EventCallAction)
			if _, err := e.js.Publish(ctx, subject, data, jetstream.WithMsgID(id)); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			if i%(total/repeats) == 0 { // 8x8 sending the webhook again
				if _, err := e.js.Publish(ctx, subject, data, jetstream.WithMsgID("again-"+id)); err != nil {
					t.Errorf("publish %d again: %v", i, err)
					return
				}
			}
		}
	}
	publish(0, total/3)
	e.waitRows(t, "SELECT toUInt64(count() > 0) FROM DB.call_events", 1)
	c.Stop(t, 0)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); publish(total/3, total) }()
	// Part of the rest is archived with the replica down.
	e.waitRows(t, fmt.Sprintf("SELECT toUInt64(uniq(event_id) > %d) FROM DB.call_events", total/2), 1)
	c.Start(t, 0)
	wg.Wait()

	e.waitRows(t, "SELECT count() FROM DB.call_events FINAL", total)
	e.waitRows(t, "SELECT uniq(event_id) FROM DB.call_events", total)
	if n := e.count(t, "SELECT count() FROM DB.interaction_calls FINAL"); n > total {
		t.Errorf("interaction_calls FINAL: %d rows for %d events", n, total)
	}
	waitReplicasAgree(t, e, c)
}

// waitReplicasAgree waits until the two replicas of each shard hold the
// same call_events rows: a read through the Distributed table asks one
// replica per shard, which may not have fetched its partner's latest part.
func waitReplicasAgree(t *testing.T, e *env, c chtest.Cluster) {
	t.Helper()
	for shard := 0; shard < 2; shard++ {
		a, b := chtest.Conn(t, c.Addrs[2*shard]), chtest.Conn(t, c.Addrs[2*shard+1])
		natstest.CheckFor(t, 90*time.Second, 200*time.Millisecond, func() error {
			q := "SELECT count(), uniq(event_id) FROM " + e.db + ".call_events_local"
			var na, nb, ua, ub uint64
			if err := a.QueryRow(context.Background(), q).Scan(&na, &ua); err != nil {
				return err
			}
			if err := b.QueryRow(context.Background(), q).Scan(&nb, &ub); err != nil {
				return err
			}
			if na != nb || ua != ub || na == 0 {
				return fmt.Errorf("shard %d: replicas hold %d (%d events) and %d (%d events) rows", shard+1, na, ua, nb, ub)
			}
			return nil
		})
	}
}

// resultRows runs q and returns its rows as sorted strings (ties of an
// ORDER BY may come in any order on a cluster).
func resultRows(t *testing.T, conn driver.Conn, q string) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var vals []any
		for _, ct := range rows.ColumnTypes() {
			vals = append(vals, reflect.New(ct.ScanType()).Interface())
		}
		if err := rows.Scan(vals...); err != nil {
			return nil, err
		}
		var cells []string
		for _, v := range vals {
			cells = append(cells, fmt.Sprint(reflect.ValueOf(v).Elem().Interface()))
		}
		out = append(out, strings.Join(cells, "|"))
	}
	sort.Strings(out)
	return out, rows.Err()
}

// TestClusterQueries: every analyst query of deploy/clickhouse/queries.sql,
// and the interactions API's, answers the same on the cluster as on one
// server, over the same records archived twice (a replay).
func TestClusterQueries(t *testing.T) {
	single := newEnv(t, chtest.Addr(t))
	cl, c := clusterEnv(t)
	now := time.Now().UTC().Truncate(time.Hour)
	pubs := append(maskingFixture(now.Add(-4*time.Hour)), flowFixture(now.Add(-2*time.Hour))...)
	for i := range 60 {
		subject, id, data := record(i, wire.EventCallAction)
		pubs = append(pubs, pub{subject, id, data})
	}
	single.archiveTwice(t, pubs)
	cl.publishAll(t, pubs)
	a, err := Open(cl.js, cl.clusterConfig(t, c))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if n, err := a.Replay(ctx, ReplayConfig{StartSeq: 1}); err != nil || n != uint64(len(pubs)) {
		t.Fatalf("replay on the cluster: %d of %d, %v", n, len(pubs), err)
	}
	cl.run(t, cl.clusterConfig(t, c))
	// Everything archived a second time: a replicated table may drop a
	// block identical to one it has (insert deduplication), so wait on
	// the consumer, not on a row count.
	cl.waitConsumer(t, func(info *jetstream.ConsumerInfo) error {
		if info.NumPending != 0 || info.NumAckPending != 0 || info.AckFloor.Stream != uint64(len(pubs)) {
			return fmt.Errorf("consumer: %d pending, %d unacknowledged, acked to %d of %d", info.NumPending, info.NumAckPending, info.AckFloor.Stream, len(pubs))
		}
		return nil
	})

	b, err := os.ReadFile("../deploy/clickhouse/queries.sql")
	if err != nil {
		t.Fatal(err)
	}
	queries := append(SplitSQL(string(b)), strings.ReplaceAll(InteractionsSQL("callflow"), "@masking_session", "'"+exampleMaskingSession+"'"))
	for i, q := range queries {
		want, err := resultRows(t, single.ch, strings.ReplaceAll(q, "callflow.", single.db+"."))
		if err != nil {
			t.Errorf("query %d on one server: %v", i+1, err)
			continue
		}
		got, err := resultRows(t, cl.ch, strings.ReplaceAll(q, "callflow.", cl.db+"."))
		if err != nil {
			t.Errorf("query %d on the cluster: %v", i+1, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("query %d: the cluster answers\n%s\none server answers\n%s\n%s", i+1, strings.Join(got, "\n"), strings.Join(want, "\n"), q)
		}
	}
}

// TestClusterErase: a number's history goes from every shard.
func TestClusterErase(t *testing.T) {
	e, c := clusterEnv(t)
	const caller = "+6590004444"
	pubs := monthsFixture(caller)
	e.publishAll(t, pubs)
	e.run(t, e.clusterConfig(t, c))
	e.waitRows(t, "SELECT count() FROM DB.call_events", uint64(len(pubs)))
	// Erase counts what it erases through the Distributed table (one
	// replica per shard): CI once counted 3 of 4 from a replica still
	// fetching a part (the mutation, ON CLUSTER, took all 4).
	waitReplicasAgree(t, e, c)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	erased, err := Erase(ctx, e.ch, e.db, c.Name, caller, nil)
	if err != nil {
		t.Fatal(err)
	}
	if erased["call_events"] != 4 {
		t.Errorf("erased %v, want 4 rows of call_events", erased)
	}
	if n := e.count(t, "SELECT count() FROM DB.call_events"); n != 1 {
		t.Errorf("%d rows left, want the other caller's", n)
	}
}

// TestClusterRetention: an archiver with a retention on the cluster drops
// what aged out on every shard, and its replicas.
func TestClusterRetention(t *testing.T) {
	e, c := clusterEnv(t)
	var pubs []pub
	for i := range 20 { // spread over both shards
		at := time.Now().AddDate(0, -4, 0)
		if i%2 == 0 {
			at = time.Now()
		}
		id := fmt.Sprintf("ret-%d", i)
		pubs = append(pubs, callAction(id, "s-"+id, "c-"+id, at, "+6590005555", "+6568330001", connectDecision("m-"+id, "+6568330001", "+6591110000")))
	}
	e.publishAll(t, pubs)
	_, stop := e.run(t, e.clusterConfig(t, c))
	e.waitRows(t, "SELECT count() FROM DB.call_events", 20)
	stop()
	cfg := e.clusterConfig(t, c)
	cfg.RetentionMonths = 2
	e.run(t, cfg)
	e.waitRows(t, "SELECT count() FROM DB.call_events", 10)
	e.waitRows(t, "SELECT count() FROM DB.interaction_calls", 10)
	for i, addr := range c.Addrs {
		conn := chtest.Conn(t, addr)
		natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
			var old uint64
			if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+e.db+".call_events_local WHERE event_time < now() - INTERVAL 2 MONTH").Scan(&old); err != nil {
				return err
			}
			if old != 0 {
				return fmt.Errorf("server %d still holds %d old rows", i+1, old)
			}
			return nil
		})
	}
}
