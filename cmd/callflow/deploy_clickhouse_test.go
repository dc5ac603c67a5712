package main

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestDeployK8sClickHouseCluster checks deploy/k8s/clickhouse against the
// archiver and the rest of the manifests: a cluster of two shards of two
// replicas whose Keeper is the installation's own, the archivers given
// that cluster's name and Service with flags the archiver has, the
// password from the key of callflow-secrets they read, and a
// kustomization that adds all of it to deploy/k8s.
func TestDeployK8sClickHouseCluster(t *testing.T) {
	dir := filepath.Join(deployDir, "k8s", "clickhouse")
	read := func(name string, v any) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	type layout struct {
		ShardsCount   int `yaml:"shardsCount"`
		ReplicasCount int `yaml:"replicasCount"`
	}
	type cluster struct {
		Name   string `yaml:"name"`
		Layout layout `yaml:"layout"`
	}
	var keeper struct {
		Kind     string `yaml:"kind"`
		Metadata struct{ Name, Namespace string }
		Spec     struct {
			Configuration struct {
				Clusters []cluster `yaml:"clusters"`
			} `yaml:"configuration"`
		} `yaml:"spec"`
	}
	read("keeper.yaml", &keeper)
	var chi struct {
		Kind     string `yaml:"kind"`
		Metadata struct{ Name, Namespace string }
		Spec     struct {
			Configuration struct {
				Zookeeper struct {
					Nodes []struct {
						Host string `yaml:"host"`
						Port int    `yaml:"port"`
					} `yaml:"nodes"`
				} `yaml:"zookeeper"`
				Users    map[string]any `yaml:"users"`
				Clusters []cluster      `yaml:"clusters"`
			} `yaml:"configuration"`
		} `yaml:"spec"`
	}
	read("clickhouse.yaml", &chi)
	var patch struct {
		Kind     string `yaml:"kind"`
		Metadata struct{ Name string }
		Spec     struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name string `yaml:"name"`
						Env  []struct {
							Name  string `yaml:"name"`
							Value string `yaml:"value"`
						} `yaml:"env"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	read("archiver-cluster.patch.yaml", &patch)
	var kust struct {
		Resources []string `yaml:"resources"`
		Patches   []struct {
			Path string `yaml:"path"`
		} `yaml:"patches"`
	}
	read("kustomization.yaml", &kust)

	if keeper.Kind != "ClickHouseKeeperInstallation" || len(keeper.Spec.Configuration.Clusters) != 1 {
		t.Fatalf("keeper.yaml: kind %q with %d clusters, want one ClickHouseKeeperInstallation cluster", keeper.Kind, len(keeper.Spec.Configuration.Clusters))
	}
	if n := keeper.Spec.Configuration.Clusters[0].Layout.ReplicasCount; n < 3 || n%2 == 0 {
		t.Errorf("keeper.yaml: %d Keeper nodes, want an odd number of at least 3 (a quorum through one loss)", n)
	}
	if chi.Kind != "ClickHouseInstallation" || len(chi.Spec.Configuration.Clusters) != 1 {
		t.Fatalf("clickhouse.yaml: kind %q with %d clusters, want one ClickHouseInstallation cluster", chi.Kind, len(chi.Spec.Configuration.Clusters))
	}
	cl := chi.Spec.Configuration.Clusters[0]
	if cl.Layout.ShardsCount != 2 || cl.Layout.ReplicasCount != 2 {
		t.Errorf("clickhouse.yaml: %d shards of %d replicas, want 2 of 2", cl.Layout.ShardsCount, cl.Layout.ReplicasCount)
	}
	zk := chi.Spec.Configuration.Zookeeper.Nodes
	if len(zk) == 0 || zk[0].Host != "keeper-"+keeper.Metadata.Name || zk[0].Port != 2181 {
		t.Errorf("clickhouse.yaml: zookeeper %+v, want the Keeper's Service keeper-%s:2181", zk, keeper.Metadata.Name)
	}
	if keeper.Metadata.Namespace != "callflow" || chi.Metadata.Namespace != "callflow" {
		t.Errorf("namespaces %q and %q, want callflow (the Secret's)", keeper.Metadata.Namespace, chi.Metadata.Namespace)
	}

	// The archivers: this cluster, its Service, flags the archiver has.
	if patch.Kind != "Deployment" || patch.Metadata.Name != "archiver" || len(patch.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("archiver-cluster.patch.yaml does not patch the archiver Deployment's container")
	}
	accepted := helpEnv(t, "archiver")
	env := map[string]string{}
	for _, e := range patch.Spec.Template.Spec.Containers[0].Env {
		if !accepted[e.Name] {
			t.Errorf("archiver-cluster.patch.yaml: %s is not a variable of callflow archiver", e.Name)
		}
		env[e.Name] = e.Value
	}
	if env["CALLFLOW_CLICKHOUSE_CLUSTER"] != cl.Name {
		t.Errorf("archivers on cluster %q, clickhouse.yaml defines %q", env["CALLFLOW_CLICKHOUSE_CLUSTER"], cl.Name)
	}
	host, port, err := net.SplitHostPort(env["CALLFLOW_CLICKHOUSE_ADDR"])
	if err != nil || host != "clickhouse-"+chi.Metadata.Name || port != "9000" {
		t.Errorf("archivers' CALLFLOW_CLICKHOUSE_ADDR %q, want the installation's Service clickhouse-%s:9000", env["CALLFLOW_CLICKHOUSE_ADDR"], chi.Metadata.Name)
	}
	// The archivers' user and password are the installation's user.
	user := ""
	for _, w := range k8sWorkloads(t, k8sObjects(t)) {
		if c := w.callflowContainer(); c != nil && w.obj.Metadata.Name == "archiver" {
			for _, e := range c.Env {
				if e.Name == "CALLFLOW_CLICKHOUSE_USER" {
					user = e.Value.Value
				}
			}
		}
	}
	if user == "" {
		t.Fatal("archiver.yaml sets no CALLFLOW_CLICKHOUSE_USER")
	}
	if got, _ := chi.Spec.Configuration.Users[user+"/k8s_secret_password"].(string); got != "callflow-secrets/clickhouse-password" {
		t.Errorf("clickhouse.yaml: user %s's password %q, want the archivers' callflow-secrets/clickhouse-password", user, got)
	}

	for _, want := range []string{"..", "keeper.yaml", "clickhouse.yaml"} {
		if !slices.Contains(kust.Resources, want) {
			t.Errorf("kustomization.yaml: resources %v lack %s", kust.Resources, want)
		}
	}
	if len(kust.Patches) != 1 || kust.Patches[0].Path != "archiver-cluster.patch.yaml" {
		t.Errorf("kustomization.yaml: patches %+v, want archiver-cluster.patch.yaml", kust.Patches)
	}
	if !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(cl.Name) {
		t.Errorf("cluster name %q: the archiver takes identifiers only", cl.Name)
	}
}
