package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/internal/testlog"
	"github.com/nats-io/nats.go/jetstream"
)

// clusterReplicasCurrent reports nil when the stream has a leader and
// want-1 other replicas, all current. It waits a few seconds at most: a
// stream without a leader does not answer.
func clusterReplicasCurrent(ctx context.Context, js jetstream.JetStream, stream string, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	if info.Config.Replicas != want {
		return fmt.Errorf("stream %s has %d replicas configured, want %d", stream, info.Config.Replicas, want)
	}
	ci := info.Cluster
	if ci == nil || ci.Leader == "" {
		return fmt.Errorf("stream %s has no leader: %+v", stream, ci)
	}
	if len(ci.Replicas) != want-1 {
		return fmt.Errorf("stream %s: leader %s and %d replicas, want %d", stream, ci.Leader, len(ci.Replicas), want-1)
	}
	for _, r := range ci.Replicas {
		if !r.Current || r.Offline {
			return fmt.Errorf("stream %s: replica %s current %v offline %v", stream, r.Name, r.Current, r.Offline)
		}
	}
	return nil
}

// TestClusterReplicas: on a three-node cluster, the records stream and the
// sessions bucket are created with the configured three replicas, placed
// on the three nodes; with the stream's leader down both stay writable,
// and once it is back every replica is current again.
func TestClusterReplicas(t *testing.T) {
	c := natstest.RunCluster(t)
	_, js := c.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)

	cfg := broker.StreamConfig{Name: broker.DefaultStream, MaxAge: broker.DefaultMaxAge, Duplicates: broker.DefaultDuplicates, Replicas: 1}
	cfg.Replicas = 3
	if _, err := broker.EnsureStream(ctx, js, cfg, log); err != nil {
		t.Fatalf("EnsureStream with 3 replicas: %v", err)
	}
	st, err := session.Open(ctx, js, session.Config{Replicas: 3, Logger: log})
	if err != nil {
		t.Fatalf("session.Open with 3 replicas: %v", err)
	}
	defer st.Close()
	bucketStream := "KV_" + session.DefaultBucket
	for _, name := range []string{broker.DefaultStream, bucketStream} {
		natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			return clusterReplicasCurrent(ctx, js, name, 3)
		})
	}
	kv, err := js.KeyValue(ctx, session.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kvs, ok := status.(*jetstream.KeyValueBucketStatus); !ok || kvs.StreamInfo().Config.Replicas != 3 {
		t.Errorf("bucket status %+v, want 3 replicas", status)
	}

	// The records stream's leader goes away: records and sessions are
	// still written, on the two nodes left.
	leader := c.StreamLeader(broker.DefaultStream)
	if leader < 0 {
		t.Fatal("no node leads the stream")
	}
	t.Logf("shutting down %s, the leader of %s", c.NodeName(leader), broker.DefaultStream)
	c.Shutdown(leader)
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		// The same id on every attempt: an attempt that timed out but
		// was stored is not stored twice. A message sent while no node
		// leads the stream gets no answer: each attempt is bounded.
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := js.Publish(actx, "calls.CALL_ACTION.test", []byte("{}"), jetstream.WithMsgID("during-failover"))
		return err
	})
	attempt := 0
	var created session.Session
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		// Other numbers on every attempt: one that timed out but was
		// stored is no conflict.
		attempt++
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		created, err = st.Create(actx, session.Request{VirtualNumber: fmt.Sprintf("+65999%05d", attempt),
			Participants: []string{"+6598880001", "+6598880002"}})
		return err
	})

	// Back on the same ports and store: three current replicas again,
	// with what was written while it was away.
	c.Restart(leader)
	for _, name := range []string{broker.DefaultStream, bucketStream} {
		natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
			return clusterReplicasCurrent(ctx, js, name, 3)
		})
	}
	s, err := js.Stream(ctx, broker.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d records, want 1", info.State.Msgs)
	}
	if _, err := st.Get(ctx, created.ID); err != nil {
		t.Errorf("session created during the failover: %v", err)
	}
}

// TestSetupWaitsForQuorum: a role started while its NATS cluster has no
// JetStream quorum (two of three nodes still down, as when a deployment
// starts every process at once) waits for it, and creates the records
// stream and the sessions bucket, with three replicas, once the nodes are
// up, instead of failing on the first request that went unanswered.
func TestSetupWaitsForQuorum(t *testing.T) {
	c := natstest.RunCluster(t)
	_, js := c.Connect(t)
	c.Shutdown(1)
	c.Shutdown(2)
	var logs testlog.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		cfg := broker.StreamConfig{Name: broker.DefaultStream, MaxAge: broker.DefaultMaxAge, Duplicates: broker.DefaultDuplicates, Replicas: 3}
		if _, err := broker.EnsureStream(ctx, js, cfg, log); err != nil {
			done <- fmt.Errorf("EnsureStream: %w", err)
			return
		}
		st, err := session.Open(ctx, js, session.Config{Replicas: 3, Logger: log})
		if err != nil {
			done <- fmt.Errorf("session.Open: %w", err)
			return
		}
		st.Close()
		done <- nil
	}()
	select {
	case <-logs.Written("JetStream not ready"):
	case err := <-done:
		t.Fatalf("setup ended without a quorum: %v\n%s", err, logs.String())
	case <-ctx.Done():
		t.Fatalf("setup logged no retry:\n%s", logs.String())
	}
	c.Restart(1, 2)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%v\n%s", err, logs.String())
		}
	case <-ctx.Done():
		t.Fatalf("setup still waiting once the cluster formed:\n%s", logs.String())
	}
	for _, name := range []string{broker.DefaultStream, "KV_" + session.DefaultBucket} {
		natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			return clusterReplicasCurrent(ctx, js, name, 3)
		})
	}
}
