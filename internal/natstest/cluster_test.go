package natstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClusterStopAndRestart: a stream with three replicas on the cluster
// keeps a leader and stays writable when its leader node is shut down or
// killed, and the node comes back on the same client URL with its store,
// catching up with what was written while it was away.
func TestClusterStopAndRestart(t *testing.T) {
	began := time.Now()
	c := RunCluster(t)
	t.Logf("cluster formed in %s", time.Since(began).Round(time.Millisecond))
	if urls := c.URLs(); len(urls) != ClusterSize {
		t.Fatalf("URLs() = %v", urls)
	}
	_, js := c.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	published := 0
	publish := func() {
		t.Helper()
		published++
		id := fmt.Sprint(published)
		CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			// Unanswered while no node leads the stream: bounded.
			actx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			_, err := js.Publish(actx, "t.x", []byte(id), jetstream.WithMsgID(id))
			return err
		})
	}
	publish()

	for _, kill := range []bool{false, true} {
		leader := c.StreamLeader("T")
		if leader < 0 {
			t.Fatal("no node leads T")
		}
		url := c.URLs()[leader]
		began = time.Now()
		if kill {
			c.Kill(leader)
		} else {
			c.Shutdown(leader)
		}
		if c.Server(leader) != nil {
			t.Fatalf("node %d still running", leader)
		}
		CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
			if l := c.StreamLeader("T"); l < 0 || l == leader {
				return fmt.Errorf("no new leader for T")
			}
			return nil
		})
		t.Logf("kill %v: %s stopped, T led by %s after %s", kill, c.NodeName(leader), c.NodeName(c.StreamLeader("T")), time.Since(began).Round(time.Millisecond))
		publish()
		t.Logf("written to after %s", time.Since(began).Round(time.Millisecond))

		began = time.Now()
		c.Restart(leader)
		t.Logf("restarted, cluster formed in %s", time.Since(began).Round(time.Millisecond))
		// Its URL leads to it again.
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatalf("connect to %s after the restart: %v", url, err)
		}
		if got := nc.ConnectedServerName(); got != c.NodeName(leader) {
			t.Errorf("%s leads to %s, want %s", url, got, c.NodeName(leader))
		}
		nc.Close()
		CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			actx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			s, err := js.Stream(actx, "T")
			if err != nil {
				return err
			}
			ci := s.CachedInfo().Cluster
			if len(ci.Replicas) != 2 {
				return fmt.Errorf("replicas %+v", ci.Replicas)
			}
			for _, r := range ci.Replicas {
				if !r.Current {
					return fmt.Errorf("replica %s not current", r.Name)
				}
			}
			if n := s.CachedInfo().State.Msgs; n != uint64(published) {
				return fmt.Errorf("%d messages, want %d", n, published)
			}
			return nil
		})
		t.Logf("T current on every replica %s after the restart", time.Since(began).Round(time.Millisecond))
	}
}
