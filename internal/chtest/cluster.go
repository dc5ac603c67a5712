package chtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Environment variables set by scripts/test.sh for the test cluster
// (scripts/clickhouse-cluster.sh): two shards of two replicas and one
// ZooKeeper, on loopback ports.
const (
	// EnvClusterAddrs lists the servers' native addresses, shard by
	// shard: shard 1 replica 1, shard 1 replica 2, shard 2 replica 1,
	// shard 2 replica 2.
	EnvClusterAddrs = "CALLFLOW_TEST_CLICKHOUSE_CLUSTER"
	// EnvClusterName is the cluster's name in remote_servers.
	EnvClusterName = "CALLFLOW_TEST_CLICKHOUSE_CLUSTER_NAME"
	// EnvClusterConfigs lists the servers' config files, in the order of
	// EnvClusterAddrs, so that a test can stop and start one.
	EnvClusterConfigs = "CALLFLOW_TEST_CLICKHOUSE_CLUSTER_CONFIGS"
)

// Cluster is the test ClickHouse cluster.
type Cluster struct {
	// Name is the cluster's name (ON CLUSTER, Distributed).
	Name string
	// Addrs are the servers, shard by shard (see EnvClusterAddrs).
	Addrs []string
	// Configs are the servers' config files, in the order of Addrs.
	Configs []string
}

// ClusterFor returns the test cluster, failing the test when it is set
// but a server does not answer, and skipping it when it is unset.
func ClusterFor(t testing.TB) Cluster {
	t.Helper()
	addrs := os.Getenv(EnvClusterAddrs)
	if addrs == "" {
		t.Skipf("%s is not set: run ./scripts/test.sh, which starts a throwaway ClickHouse cluster", EnvClusterAddrs)
	}
	c := Cluster{Name: os.Getenv(EnvClusterName), Addrs: strings.Split(addrs, ","), Configs: strings.Split(os.Getenv(EnvClusterConfigs), ",")}
	if c.Name == "" || len(c.Configs) != len(c.Addrs) {
		t.Fatalf("%s=%q and %s=%q do not describe the cluster %s", EnvClusterName, c.Name, EnvClusterConfigs, os.Getenv(EnvClusterConfigs), addrs)
	}
	for _, a := range c.Addrs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := Conn(t, a).Ping(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%s: server %s does not answer: %v", EnvClusterAddrs, a, err)
		}
	}
	return c
}

// Database returns a fresh database name for one test, dropped on every
// server of the cluster when the test ends.
func (c Cluster) Database(t testing.TB) string {
	t.Helper()
	name := Database(t, c.Addrs[0]) // dropped on the first server
	conn := Conn(t, c.Addrs[0])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" ON CLUSTER "+c.Name)
	})
	return name
}

// Stop stops server i (SIGKILL: a crash) and waits until it is gone.
func (c Cluster) Stop(t testing.TB, i int) {
	t.Helper()
	_ = exec.Command("pkill", "-9", "-f", "--", "--config-file="+c.Configs[i]).Run()
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command("pgrep", "-f", "--", "--config-file="+c.Configs[i]).Run() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("clickhouse server %s still runs 30s after SIGKILL", c.Addrs[i])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Start starts server i again, with its config, and waits until it
// answers. The test's end stops nothing: the server belongs to the script.
func (c Cluster) Start(t testing.TB, i int) {
	t.Helper()
	bin := os.Getenv(EnvServer)
	if bin == "" {
		bin = "clickhouse-server"
	}
	cmd := exec.Command(bin, "--config-file="+c.Configs[i])
	if err := cmd.Start(); err != nil {
		t.Fatalf("start clickhouse server %s: %v", c.Addrs[i], err)
	}
	go func() { _ = cmd.Wait() }() // reaped when it exits (at the script's end)
	if err := awaitPing(t, c.Addrs[i], 60*time.Second); err != nil {
		t.Fatalf("clickhouse server %s did not answer within 60s of its start: %v", c.Addrs[i], err)
	}
}

// String describes the cluster for messages.
func (c Cluster) String() string {
	return fmt.Sprintf("%s (%s)", c.Name, strings.Join(c.Addrs, ","))
}
