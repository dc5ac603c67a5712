package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"
)

// deployDir is deploy/ seen from this package's directory.
const deployDir = "../../deploy"

// documentedMetrics is every metric the deploy artifacts (the alert rules
// and the Grafana dashboard) may query, with its type: the metrics the
// roles export plus the few standard Go and process collector series the
// dashboard shows. A histogram is queried through its _bucket, _sum and
// _count series.
var documentedMetrics = map[string]string{
	// ingest: webhooks
	"callflow_webhook_requests_total":   "counter",   // {event_type, code}
	"callflow_webhook_duration_seconds": "histogram", // {event_type}
	// ingest: decisions
	"callflow_decisions_total":                  "counter",   // {source, outcome}
	"callflow_fallbacks_total":                  "counter",   // {reason}
	"callflow_decider_breaker_state":            "gauge",     // 0 closed, 1 half-open, 2 open
	"callflow_decider_request_duration_seconds": "histogram", // ingest asking the deciders
	// ingest: records
	"callflow_record_publish_duration_seconds": "histogram",
	"callflow_record_publish_failures_total":   "counter", // {reason}
	"callflow_spool_records":                   "gauge",
	"callflow_spool_bytes":                     "gauge",
	"callflow_spool_limit_bytes":               "gauge",
	"callflow_spool_appended_total":            "counter", // {reason}
	"callflow_spool_replayed_total":            "counter",
	"callflow_spool_damaged_bytes_total":       "counter",
	"callflow_records_lost_total":              "counter", // {reason}
	// ingest and admin: refusals
	"callflow_webhook_refused_total":              "counter", // {reason}
	"callflow_webhook_rejected_connections_total": "counter",
	"callflow_webhook_open_connections":           "gauge",
	"callflow_webhook_max_connections":            "gauge",
	// ingest and archiver: the records stream
	"callflow_stream_bytes":               "gauge", // {stream}
	"callflow_stream_messages":            "gauge",
	"callflow_stream_max_bytes":           "gauge",
	"callflow_stream_max_age_seconds":     "gauge",
	"callflow_stream_oldest_age_seconds":  "gauge",
	"callflow_admin_refused_total":        "counter", // {reason}
	"callflow_admin_audit_failures_total": "counter",
	"callflow_pool_allocations_total":     "counter", // {result}
	// ingest: the pool feed (8x8's number updates into the pool)
	"callflow_pool_numbers":              "gauge",   // {sub_account, status}
	"callflow_pool_updates_total":        "counter", // {result}
	"callflow_pool_number_changes_total": "counter", // {status}
	"callflow_pool_audit_failures_total": "counter",
	// decider (and the session index of ingest)
	"callflow_decider_requests_total": "counter", // {outcome}
	"callflow_session_updates_total":  "counter", // {result}
	"callflow_flow_restarts_total":    "counter", // {reason, result}
	"callflow_flow_steps_total":       "counter", // {flow, step}
	"callflow_sessions":               "gauge",
	// archiver
	"callflow_archiver_rows_total":              "counter",
	"callflow_archiver_rejected_total":          "counter",
	"callflow_archiver_retries_total":           "counter",
	"callflow_archiver_batch_rows":              "histogram",
	"callflow_archiver_insert_duration_seconds": "histogram",
	"callflow_archiver_consumer_pending":        "gauge",
	"callflow_archiver_consumer_ack_pending":    "gauge",
	"callflow_archiver_redeliveries_total":      "counter",
	"callflow_archiver_visibility_seconds":      "histogram",
	// every role
	"callflow_build_info": "gauge", // {version, goversion}
	// standard collectors
	"go_goroutines":                 "gauge",
	"process_cpu_seconds_total":     "counter",
	"process_resident_memory_bytes": "gauge",
}

// prometheusSeries are series Prometheus itself records for every target.
var prometheusSeries = map[string]bool{"up": true}

// isDocumentedSeries reports whether a series name used in a PromQL
// expression is a documented metric (or a histogram's _bucket, _sum or
// _count series; a histogram's bare name is no series at all).
func isDocumentedSeries(name string) bool {
	if typ, ok := documentedMetrics[name]; ok {
		return typ != "histogram"
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && documentedMetrics[base] == "histogram" {
			return true
		}
	}
	return prometheusSeries[name]
}

// TestDeployFilesParse parses every YAML and JSON file under deploy/ and
// docker-compose.yml, so none ships broken.
func TestDeployFilesParse(t *testing.T) {
	files := []string{"../../docker-compose.yml"}
	err := filepath.WalkDir(deployDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml", ".json":
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d YAML and JSON files under deploy/: %v", len(files), files)
	}
	for _, path := range files {
		t.Run(strings.TrimPrefix(path, "../../"), func(t *testing.T) {
			if filepath.Ext(path) == ".json" {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				var v any
				if err := json.Unmarshal(b, &v); err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				return
			}
			docs, err := yamlDocuments(path)
			if err != nil {
				t.Fatal(err)
			}
			for i, doc := range docs {
				var v any // decoding catches what the parser lets through, such as duplicate keys
				if err := doc.Decode(&v); err != nil {
					t.Errorf("%s: document %d: %v", path, i+1, err)
				}
			}
			if len(docs) == 0 {
				t.Errorf("%s: no YAML document", path)
			}
		})
	}
}

// yamlDocuments reads every non-empty document of a (multi-document) YAML
// file.
func yamlDocuments(path string) ([]*yaml.Node, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, &os.PathError{Op: "parse", Path: path, Err: err}
		}
		if len(doc.Content) > 0 && doc.Content[0].Kind != 0 && doc.Content[0].Tag != "!!null" {
			docs = append(docs, &doc)
		}
	}
}

// k8sObject is the part of a Kubernetes object these tests read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Spec       yaml.Node         `yaml:"spec"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`

	file string
}

type k8sWorkloadSpec struct {
	Replicas    int    `yaml:"replicas"`
	ServiceName string `yaml:"serviceName"` // StatefulSet
	Selector    struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec k8sPodSpec `yaml:"spec"`
	} `yaml:"template"`
}

type k8sPodSpec struct {
	TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
	Containers []k8sContainer `yaml:"containers"`
	Volumes    []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
			Items      []struct {
				Key  string `yaml:"key"`
				Path string `yaml:"path"`
			} `yaml:"items"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

type k8sContainer struct {
	Name    string    `yaml:"name"`
	Image   string    `yaml:"image"`
	Command []string  `yaml:"command"`
	Args    []string  `yaml:"args"`
	Ports   []k8sPort `yaml:"ports"`
	Env     []struct {
		Name      string    `yaml:"name"`
		Value     yaml.Node `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		RunAsNonRoot           *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem *bool `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	VolumeMounts []k8sVolumeMount `yaml:"volumeMounts"`
}

type k8sPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
}

type k8sVolumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string    `yaml:"path"`
		Port yaml.Node `yaml:"port"`
	} `yaml:"httpGet"`
}

// port resolves a container port given as a number or by name; 0 when it
// names no port of the container.
func (c *k8sContainer) port(n yaml.Node) int {
	if p, err := strconv.Atoi(n.Value); err == nil && n.Tag == "!!int" {
		return p
	}
	for _, p := range c.Ports {
		if p.Name == n.Value {
			return p.ContainerPort
		}
	}
	return 0
}

// k8sWorkload is a Deployment or StatefulSet with its decoded spec.
type k8sWorkload struct {
	obj  k8sObject
	spec k8sWorkloadSpec
}

// secretFile checks that path is a file of a Secret mounted into c: under
// the mount of a secret volume that projects that file from a key the
// Secret (in deploy/k8s) has.
func (w *k8sWorkload) secretFile(path string, c *k8sContainer, secrets map[string]map[string]bool) error {
	for _, m := range c.VolumeMounts {
		name, ok := strings.CutPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		for _, v := range w.spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			keys, ok := secrets[v.Secret.SecretName]
			if !ok {
				return fmt.Errorf("Secret %q is not in deploy/k8s", v.Secret.SecretName)
			}
			key := name
			if len(v.Secret.Items) > 0 {
				key = ""
				for _, it := range v.Secret.Items {
					if it.Path == name {
						key = it.Key
					}
				}
			}
			if !keys[key] {
				return fmt.Errorf("%s: Secret %q projects no key as %q", path, v.Secret.SecretName, name)
			}
			return nil
		}
		return fmt.Errorf("%s is under mount %q, which is not a Secret volume", path, m.MountPath)
	}
	return fmt.Errorf("%s is not under any volume mount of the container", path)
}

// k8sObjects reads every object of every manifest in deploy/k8s.
func k8sObjects(t *testing.T) []k8sObject {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(deployDir, "k8s", "*.y*ml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests in deploy/k8s (%v)", err)
	}
	var objs []k8sObject
	for _, path := range paths {
		docs, err := yamlDocuments(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range docs {
			var obj k8sObject
			if err := doc.Decode(&obj); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			obj.file = filepath.Base(path)
			objs = append(objs, obj)
		}
	}
	return objs
}

// k8sWorkloads decodes the Deployments and StatefulSets among objs.
func k8sWorkloads(t *testing.T, objs []k8sObject) []k8sWorkload {
	t.Helper()
	var ws []k8sWorkload
	for _, obj := range objs {
		if obj.Kind != "Deployment" && obj.Kind != "StatefulSet" {
			continue
		}
		w := k8sWorkload{obj: obj}
		if err := obj.Spec.Decode(&w.spec); err != nil {
			t.Fatalf("%s: %s %s: %v", obj.file, obj.Kind, obj.Metadata.Name, err)
		}
		ws = append(ws, w)
	}
	return ws
}

// k8sSelects reports whether a label selector matches a pod's labels.
func k8sSelects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// callflowContainer returns the workload's callflow container, or nil.
func (w *k8sWorkload) callflowContainer() *k8sContainer {
	for i, c := range w.spec.Template.Spec.Containers {
		if strings.HasPrefix(c.Image, "callflow") {
			return &w.spec.Template.Spec.Containers[i]
		}
	}
	return nil
}

// envValues returns a container's literal environment values by name.
func (c *k8sContainer) envValues() map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value.Value
	}
	return env
}

// deployPort returns the port of a host:port listen address.
func deployPort(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return port
}

// TestDeployK8sMatchesBinary checks every Kubernetes Deployment that runs
// the callflow image against the binary: a real subcommand, CALLFLOW_*
// variables that subcommand reads, probes on its admin port, and the
// settings the operators rely on (secrets from a Secret, replicas of three
// on the NATS cluster, a grace period above the shutdown timeout, a
// non-root read-only container with resources).
func TestDeployK8sMatchesBinary(t *testing.T) {
	objs := k8sObjects(t)
	workloads := k8sWorkloads(t, objs)
	secrets := map[string]map[string]bool{}
	for _, obj := range objs {
		if obj.Kind == "Secret" {
			keys := map[string]bool{}
			for k := range obj.Data {
				keys[k] = true
			}
			for k := range obj.StringData {
				keys[k] = true
			}
			secrets[obj.Metadata.Name] = keys
		}
	}

	roles := map[string]bool{}
	for _, w := range workloads {
		c := w.callflowContainer()
		if c == nil {
			continue
		}
		t.Run(w.obj.Kind+"/"+w.obj.Metadata.Name, func(t *testing.T) {
			if len(c.Command) != 0 {
				t.Errorf("command %v replaces the image's entrypoint; give the subcommand in args", c.Command)
			}
			if len(c.Args) == 0 {
				t.Fatal("no args: the first must be the subcommand")
			}
			role := c.Args[0]
			if _, ok := commands[role]; !ok {
				t.Fatalf("args[0] %q is not a callflow subcommand", role)
			}
			roles[role] = true
			accepted := helpEnv(t, role)
			for _, arg := range c.Args[1:] {
				if flag, ok := strings.CutPrefix(arg, "--"); ok {
					flag, _, _ = strings.Cut(flag, "=")
					if !accepted[envName(flag)] {
						t.Errorf("flag --%s is not a flag of callflow %s", flag, role)
					}
				}
			}

			env := c.envValues()
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, "CALLFLOW_") && !accepted[e.Name] {
					t.Errorf("%s is not read by callflow %s", e.Name, role)
				}
				if e.ValueFrom == nil && e.Value.Tag != "!!str" {
					t.Errorf("%s: value %q is a YAML %s; Kubernetes wants a string (quote it)", e.Name, e.Value.Value, e.Value.Tag)
				}
				secret := strings.Contains(e.Name, "TOKEN") || strings.Contains(e.Name, "PASSWORD") || strings.Contains(e.Name, "WEBHOOK_AUTH")
				switch {
				case secret && strings.HasSuffix(e.Name, "_FILE"):
					if err := w.secretFile(e.Value.Value, c, secrets); err != nil {
						t.Errorf("%s: %v", e.Name, err)
					}
				case secret && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil):
					t.Errorf("%s must come from a Secret (valueFrom.secretKeyRef or a file of a mounted Secret), not a literal", e.Name)
				}
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					ref := e.ValueFrom.SecretKeyRef
					if keys, ok := secrets[ref.Name]; !ok {
						t.Errorf("%s: Secret %q is not in deploy/k8s", e.Name, ref.Name)
					} else if !keys[ref.Key] {
						t.Errorf("%s: Secret %q has no key %q", e.Name, ref.Name, ref.Key)
					}
				}
			}

			// Probes on the admin port, which must not be loopback: the
			// kubelet probes the pod's address.
			adminAddr := env["CALLFLOW_ADMIN_ADDR"]
			adminPort, _ := strconv.Atoi(deployPort(adminAddr))
			if adminPort == 0 {
				t.Fatalf("CALLFLOW_ADMIN_ADDR %q: want :PORT (the default is loopback, out of the kubelet's reach)", adminAddr)
			}
			if host, _, _ := net.SplitHostPort(adminAddr); host != "" && host != "0.0.0.0" && host != "::" {
				t.Errorf("CALLFLOW_ADMIN_ADDR %q listens on %s only; probes and Prometheus reach the pod's address", adminAddr, host)
			}
			if accepted["CALLFLOW_ADMIN_TOKEN"] {
				_, inline := env["CALLFLOW_ADMIN_TOKEN"]
				_, file := env["CALLFLOW_ADMIN_TOKEN_FILE"]
				if !inline && !file {
					t.Errorf("no CALLFLOW_ADMIN_TOKEN(_FILE): callflow %s refuses an admin address off loopback without one", role)
				}
			}
			hasPort := func(port int) bool {
				return slices.ContainsFunc(c.Ports, func(p k8sPort) bool { return p.ContainerPort == port })
			}
			if !hasPort(adminPort) {
				t.Errorf("the admin port %d is not among the container's ports", adminPort)
			}
			if httpAddr, ok := env["CALLFLOW_HTTP_ADDR"]; ok {
				if p, _ := strconv.Atoi(deployPort(httpAddr)); p == 0 || !hasPort(p) {
					t.Errorf("the webhook port of CALLFLOW_HTTP_ADDR %q is not among the container's ports", httpAddr)
				}
			}
			for _, probe := range []struct {
				name  string
				probe *k8sProbe
				paths []string
			}{
				{"livenessProbe", c.LivenessProbe, []string{"/healthz"}},
				{"readinessProbe", c.ReadinessProbe, []string{"/readyz"}},
				{"startupProbe", c.StartupProbe, []string{"/healthz", "/readyz"}},
			} {
				if probe.probe == nil {
					if probe.name != "startupProbe" {
						t.Errorf("no %s", probe.name)
					}
					continue
				}
				get := probe.probe.HTTPGet
				if get == nil {
					t.Errorf("%s is not an httpGet probe", probe.name)
					continue
				}
				if !slices.Contains(probe.paths, get.Path) {
					t.Errorf("%s GETs %q, want %s", probe.name, get.Path, strings.Join(probe.paths, " or "))
				}
				if p := c.port(get.Port); p != adminPort {
					t.Errorf("%s port %q is %d, want the admin port %d of CALLFLOW_ADMIN_ADDR", probe.name, get.Port.Value, p, adminPort)
				}
			}

			// The three-node NATS cluster.
			if urls := strings.Split(env["CALLFLOW_NATS_URL"], ","); len(urls) < 3 {
				t.Errorf("CALLFLOW_NATS_URL %q: want the three NATS nodes", env["CALLFLOW_NATS_URL"])
			}
			for _, name := range []string{"CALLFLOW_STREAM_REPLICAS", "CALLFLOW_SESSIONS_REPLICAS"} {
				if accepted[name] && env[name] != "3" {
					t.Errorf("%s is %q, want \"3\" on the three-node cluster", name, env[name])
				}
			}

			// Graceful stop within the grace period.
			shutdown := 30 * time.Second
			if v, ok := env["CALLFLOW_SHUTDOWN_TIMEOUT"]; ok {
				d, err := time.ParseDuration(v)
				if err != nil {
					t.Fatalf("CALLFLOW_SHUTDOWN_TIMEOUT %q: %v", v, err)
				}
				shutdown = d
			}
			if g := w.spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= shutdown {
				t.Errorf("terminationGracePeriodSeconds must exceed the shutdown timeout %v", shutdown)
			}

			// Hardening and sizing.
			nonRoot := c.SecurityContext.RunAsNonRoot
			if nonRoot == nil {
				nonRoot = w.spec.Template.Spec.SecurityContext.RunAsNonRoot
			}
			if nonRoot == nil || !*nonRoot {
				t.Error("runAsNonRoot is not true")
			}
			if ro := c.SecurityContext.ReadOnlyRootFilesystem; ro == nil || !*ro {
				t.Error("readOnlyRootFilesystem is not true")
			}
			if dir, ok := env["CALLFLOW_DATA_DIR"]; ok && !slices.ContainsFunc(c.VolumeMounts, func(m k8sVolumeMount) bool { return m.MountPath == dir }) {
				t.Errorf("CALLFLOW_DATA_DIR %s is not a mounted volume (the root file system is read-only)", dir)
			}
			for _, r := range []string{"cpu", "memory"} {
				if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
					t.Errorf("resources: no %s request or limit", r)
				}
			}
		})
	}
	for _, role := range []string{"ingest", "decider", "archiver"} {
		if !roles[role] {
			t.Errorf("no Deployment runs callflow %s", role)
		}
	}
}

// TestDeployK8sWiring checks that the Services, the PodDisruptionBudgets and
// the HorizontalPodAutoscaler point at what the manifests run, and that
// Prometheus is told to scrape every role's admin port.
func TestDeployK8sWiring(t *testing.T) {
	objs := k8sObjects(t)
	workloads := k8sWorkloads(t, objs)
	selected := func(selector map[string]string) []k8sWorkload {
		var ws []k8sWorkload
		for _, w := range workloads {
			if k8sSelects(selector, w.spec.Template.Metadata.Labels) {
				ws = append(ws, w)
			}
		}
		return ws
	}
	for _, w := range workloads {
		if !k8sSelects(w.spec.Selector.MatchLabels, w.spec.Template.Metadata.Labels) {
			t.Errorf("%s %s: selector %v does not match its pod labels", w.obj.Kind, w.obj.Metadata.Name, w.spec.Selector.MatchLabels)
		}
	}

	scraped := map[string]bool{}
	hpaFor := map[string]bool{}
	pdbFor := map[string]bool{}
	for _, obj := range objs {
		if obj.Kind != "Namespace" && obj.Kind != "Kustomization" && obj.Metadata.Namespace != "callflow" {
			t.Errorf("%s: %s %s: namespace %q, want callflow", obj.file, obj.Kind, obj.Metadata.Name, obj.Metadata.Namespace)
		}
		switch obj.Kind {
		case "Service":
			var spec struct {
				Selector map[string]string `yaml:"selector"`
				Ports    []struct {
					Port       int       `yaml:"port"`
					TargetPort yaml.Node `yaml:"targetPort"`
				} `yaml:"ports"`
			}
			if err := obj.Spec.Decode(&spec); err != nil {
				t.Fatalf("%s: Service %s: %v", obj.file, obj.Metadata.Name, err)
			}
			ws := selected(spec.Selector)
			if len(ws) == 0 {
				t.Errorf("%s: Service %s selects no pods", obj.file, obj.Metadata.Name)
				continue
			}
			c := ws[0].callflowContainer()
			if c == nil {
				c = &ws[0].spec.Template.Spec.Containers[0]
			}
			for _, p := range spec.Ports {
				target := p.TargetPort
				if target.Kind == 0 {
					target = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(p.Port)}
				}
				if c.port(target) == 0 {
					t.Errorf("%s: Service %s: targetPort %q is no port of %s", obj.file, obj.Metadata.Name, target.Value, ws[0].obj.Metadata.Name)
				}
			}
			ann := obj.Metadata.Annotations
			if ann["prometheus.io/scrape"] != "true" {
				continue
			}
			if ann["prometheus.io/path"] != "/metrics" {
				t.Errorf("%s: Service %s: prometheus.io/path %q, want /metrics", obj.file, obj.Metadata.Name, ann["prometheus.io/path"])
			}
			if cf := ws[0].callflowContainer(); cf != nil {
				if want := deployPort(cf.envValues()["CALLFLOW_ADMIN_ADDR"]); ann["prometheus.io/port"] != want {
					t.Errorf("%s: Service %s: prometheus.io/port %q, want the admin port %q", obj.file, obj.Metadata.Name, ann["prometheus.io/port"], want)
				}
				scraped[cf.Args[0]] = true
			}
		case "PodDisruptionBudget":
			var spec struct {
				Selector struct {
					MatchLabels map[string]string `yaml:"matchLabels"`
				} `yaml:"selector"`
			}
			if err := obj.Spec.Decode(&spec); err != nil {
				t.Fatal(err)
			}
			ws := selected(spec.Selector.MatchLabels)
			if len(ws) == 0 {
				t.Errorf("%s: PodDisruptionBudget %s selects no pods", obj.file, obj.Metadata.Name)
			}
			for _, w := range ws {
				if c := w.callflowContainer(); c != nil {
					pdbFor[c.Args[0]] = true
				}
			}
		case "HorizontalPodAutoscaler":
			if obj.APIVersion != "autoscaling/v2" {
				t.Errorf("%s: HorizontalPodAutoscaler %s: apiVersion %s, want autoscaling/v2", obj.file, obj.Metadata.Name, obj.APIVersion)
			}
			var spec struct {
				ScaleTargetRef struct {
					Kind string `yaml:"kind"`
					Name string `yaml:"name"`
				} `yaml:"scaleTargetRef"`
				MinReplicas int `yaml:"minReplicas"`
				MaxReplicas int `yaml:"maxReplicas"`
				Metrics     []struct {
					Resource struct {
						Name string `yaml:"name"`
					} `yaml:"resource"`
				} `yaml:"metrics"`
			}
			if err := obj.Spec.Decode(&spec); err != nil {
				t.Fatal(err)
			}
			if spec.MinReplicas < 1 || spec.MaxReplicas < spec.MinReplicas {
				t.Errorf("%s: HorizontalPodAutoscaler %s: replicas %d to %d", obj.file, obj.Metadata.Name, spec.MinReplicas, spec.MaxReplicas)
			}
			if len(spec.Metrics) == 0 || spec.Metrics[0].Resource.Name != "cpu" {
				t.Errorf("%s: HorizontalPodAutoscaler %s does not scale on CPU", obj.file, obj.Metadata.Name)
			}
			for _, w := range workloads {
				if w.obj.Kind == spec.ScaleTargetRef.Kind && w.obj.Metadata.Name == spec.ScaleTargetRef.Name {
					if c := w.callflowContainer(); c != nil {
						hpaFor[c.Args[0]] = true
					}
				}
			}
		}
	}
	for _, role := range []string{"ingest", "decider", "archiver"} {
		if !scraped[role] {
			t.Errorf("no Service with prometheus.io annotations selects callflow %s", role)
		}
	}
	if !hpaFor["decider"] {
		t.Error("no HorizontalPodAutoscaler scales the decider Deployment")
	}
	for _, role := range []string{"ingest", "decider"} {
		if !pdbFor[role] {
			t.Errorf("no PodDisruptionBudget covers callflow %s", role)
		}
	}
}

// Pieces of PromQL that name no series: strings (label values), label
// matchers, ranges, grouping label lists and Grafana variables.
var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promVariables = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent     = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promKeywords  = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true, "inf": true, "nan": true,
	}
)

// promSeriesNames returns the series names a PromQL expression selects:
// every identifier that is not a function or aggregation (followed by
// "("), a keyword, a label name or value, or part of a number or duration.
func promSeriesNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promVariables.ReplaceAllString(s, " ")
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var names []string
	for _, m := range promIdent.FindAllStringIndex(s, -1) {
		start, end := m[0], m[1]
		if start > 0 {
			if prev := s[start-1]; prev == '.' || prev >= '0' && prev <= '9' {
				continue // 1e3, 5m, 0.5
			}
		}
		if rest := strings.TrimLeft(s[end:], " \t\r\n"); strings.HasPrefix(rest, "(") {
			continue // a function or an aggregation
		}
		name := s[start:end]
		if promKeywords[strings.ToLower(name)] {
			continue
		}
		names = append(names, name)
	}
	return names
}

func TestDeployPromSeriesNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (event_type, code) (rate(callflow_webhook_requests_total{code=~"5.."}[5m])) / sum(rate(callflow_webhook_requests_total[5m])) > 0.01`,
			[]string{"callflow_webhook_requests_total", "callflow_webhook_requests_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{event_type="CALL_ACTION"}[$__rate_interval]))) > 1e3`,
			[]string{"a_seconds_bucket"}},
		{`process_resident_memory_bytes and on (job, instance) group_left callflow_build_info`,
			[]string{"process_resident_memory_bytes", "callflow_build_info"}},
		{`count(b == 2) or vector(0)`, []string{"b"}},
		{`sum(increase(c_total[15m] offset 1h)) without (instance) > bool 0`, []string{"c_total"}},
		{"max(d{x=\"}\"}) unless absent(e)", []string{"d", "e"}},
	} {
		if got := promSeriesNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("promSeriesNames(%s) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

// TestDeployMetricsDocumented checks that the alert rules and the Grafana
// dashboard query only documented metrics, that the alerts the operators
// asked for are there with a severity and a text, and that the dashboard
// shows every callflow metric through the provisioned data source.
func TestDeployMetricsDocumented(t *testing.T) {
	checkExpr := func(t *testing.T, where, expr string) []string {
		t.Helper()
		names := promSeriesNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: %q selects no series", where, expr)
		}
		for _, name := range names {
			if !isDocumentedSeries(name) {
				t.Errorf("%s: %s is not a documented metric (documentedMetrics in deploy_test.go)", where, name)
			}
		}
		return names
	}

	t.Run("alerts", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "alerts.yml"))
		if err != nil {
			t.Fatal(err)
		}
		var rules struct {
			Groups []struct {
				Name  string `yaml:"name"`
				Rules []struct {
					Alert       string            `yaml:"alert"`
					Record      string            `yaml:"record"`
					Expr        string            `yaml:"expr"`
					For         string            `yaml:"for"`
					Labels      map[string]string `yaml:"labels"`
					Annotations map[string]string `yaml:"annotations"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &rules); err != nil {
			t.Fatal(err)
		}
		used := map[string]bool{}
		alerts := 0
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				name := r.Alert + r.Record
				for _, n := range checkExpr(t, name, r.Expr) {
					used[n] = true
				}
				if r.For != "" {
					if _, err := time.ParseDuration(r.For); err != nil {
						t.Errorf("%s: for %q: %v", name, r.For, err)
					}
				}
				if r.Alert == "" {
					continue
				}
				alerts++
				if s := r.Labels["severity"]; s != "critical" && s != "warning" {
					t.Errorf("%s: severity %q, want critical or warning", name, s)
				}
				for _, a := range []string{"summary", "description"} {
					if strings.TrimSpace(r.Annotations[a]) == "" {
						t.Errorf("%s: no %s annotation", name, a)
					}
				}
			}
		}
		// The alerts the operators asked for: breaker open, fallback
		// ratio, no deciders, webhook errors, archiver lag, spool, poison.
		for _, m := range []string{
			"callflow_decider_breaker_state", "callflow_decisions_total", "callflow_fallbacks_total",
			"callflow_webhook_requests_total", "callflow_archiver_consumer_pending",
			"callflow_spool_records", "callflow_archiver_rejected_total",
		} {
			if !used[m] {
				t.Errorf("no alert rule watches %s", m)
			}
		}
		if alerts == 0 {
			t.Error("no alerting rules")
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(deployDir, "grafana", "dashboards", "callflow.json"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "${DS_") {
			t.Error("the dashboard refers to a ${DS_...} input; use the provisioned data source uid \"prometheus\"")
		}
		var dash struct {
			UID           string           `json:"uid"`
			SchemaVersion int              `json:"schemaVersion"`
			Panels        []map[string]any `json:"panels"`
		}
		if err := json.Unmarshal(b, &dash); err != nil {
			t.Fatal(err)
		}
		if dash.UID != "callflow" {
			t.Errorf("uid %q, want callflow", dash.UID)
		}
		if dash.SchemaVersion < 36 {
			t.Errorf("schemaVersion %d, want 36 or later (data sources by uid)", dash.SchemaVersion)
		}
		var generic any
		if err := json.Unmarshal(b, &generic); err != nil {
			t.Fatal(err)
		}
		used := map[string]bool{}
		ids := map[float64]bool{}
		var walk func(path string, v any)
		walk = func(path string, v any) {
			switch v := v.(type) {
			case map[string]any:
				if ds, ok := v["datasource"]; ok {
					switch ds := ds.(type) {
					case map[string]any:
						if ds["type"] != "grafana" && (ds["type"] != "prometheus" || ds["uid"] != "prometheus") {
							t.Errorf("%s: datasource %v, want {type: prometheus, uid: prometheus}", path, ds)
						}
					default:
						t.Errorf("%s: datasource %v, want {type: prometheus, uid: prometheus}", path, ds)
					}
				}
				if expr, ok := v["expr"].(string); ok {
					for _, n := range checkExpr(t, path, expr) {
						used[n] = true
					}
				}
				if _, isPanel := v["gridPos"]; isPanel {
					id, _ := v["id"].(float64)
					if id == 0 || ids[id] {
						t.Errorf("%s: panel id %v is missing or not unique", path, v["id"])
					}
					ids[id] = true
				}
				keys := make([]string, 0, len(v))
				for k := range v {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					walk(path+"."+k, v[k])
				}
			case []any:
				for i, e := range v {
					walk(path+"["+strconv.Itoa(i)+"]", e)
				}
			}
		}
		walk("dashboard", generic)
		for name, typ := range documentedMetrics {
			if !strings.HasPrefix(name, "callflow_") {
				continue
			}
			shown := used[name]
			if typ == "histogram" {
				shown = used[name+"_bucket"] || used[name+"_sum"] || used[name+"_count"]
			}
			if !shown {
				t.Errorf("no dashboard panel shows %s", name)
			}
		}
	})
}

// deployCompose is the part of docker-compose.yml the monitoring checks read.
type deployCompose struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Profiles    []string          `yaml:"profiles"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
	} `yaml:"services"`
}

// TestDeployMonitoringWiring checks that Prometheus scrapes every callflow
// service of docker-compose.yml on its admin port and loads the alert
// rules, that Grafana's provisioning matches the dashboard and the compose
// mounts, and that both stay behind the monitoring profile.
func TestDeployMonitoringWiring(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose deployCompose
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	mounts := map[string]string{} // host path (relative to the repository) -> container path
	for _, name := range []string{"prometheus", "grafana"} {
		svc, ok := compose.Services[name]
		if !ok {
			t.Errorf("docker-compose.yml has no %s service", name)
			continue
		}
		if !slices.Equal(svc.Profiles, []string{"monitoring"}) {
			t.Errorf("%s: profiles %v, want [monitoring]", name, svc.Profiles)
		}
		for _, v := range svc.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) >= 2 && strings.HasPrefix(parts[0], "./") {
				if _, err := os.Stat(filepath.Join("../..", parts[0])); err != nil {
					t.Errorf("%s mounts %s: %v", name, parts[0], err)
				}
				mounts[strings.TrimSuffix(strings.TrimPrefix(parts[0], "./"), "/")] = parts[1]
			}
		}
	}
	if g := compose.Services["grafana"].Environment; g["GF_AUTH_ANONYMOUS_ENABLED"] != "true" || g["GF_AUTH_ANONYMOUS_ORG_ROLE"] != "Viewer" {
		t.Errorf("grafana: anonymous viewer access is not enabled: %v", g)
	}

	// Prometheus: every callflow service's admin port is a target.
	promDir, ok := mounts["deploy/prometheus"]
	if !ok {
		t.Error("the prometheus service does not mount ./deploy/prometheus")
	}
	b, err = os.ReadFile(filepath.Join(deployDir, "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &prom); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(prom.RuleFiles, "alerts.yml") && !slices.Contains(prom.RuleFiles, promDir+"/alerts.yml") {
		t.Errorf("prometheus.yml rule_files %v do not load alerts.yml", prom.RuleFiles)
	}
	targets := map[string]bool{}
	for _, sc := range prom.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			continue
		}
		for _, s := range sc.StaticConfigs {
			for _, target := range s.Targets {
				targets[target] = true
			}
		}
		for _, d := range sc.DNSSDConfigs {
			for _, n := range d.Names {
				targets[net.JoinHostPort(n, strconv.Itoa(d.Port))] = true
			}
		}
	}
	callflowServices := 0
	for name, svc := range compose.Services {
		if !strings.HasPrefix(svc.Image, "callflow") {
			continue
		}
		callflowServices++
		target := net.JoinHostPort(name, deployPort(svc.Environment["CALLFLOW_ADMIN_ADDR"]))
		if !targets[target] {
			t.Errorf("prometheus.yml does not scrape %s (service %s's admin port)", target, name)
		}
	}
	if callflowServices == 0 {
		t.Error("docker-compose.yml runs no callflow service")
	}

	// Grafana: the provisioned data source is the one the dashboard names,
	// and the dashboard provider reads where compose mounts the dashboards.
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	b, err = os.ReadFile(filepath.Join(deployDir, "grafana", "provisioning", "datasources", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].UID != "prometheus" || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("provisioned data sources %+v, want one prometheus with uid prometheus at http://prometheus:9090", ds.Datasources)
	}
	var providers struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	b, err = os.ReadFile(filepath.Join(deployDir, "grafana", "provisioning", "dashboards", "callflow.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &providers); err != nil {
		t.Fatal(err)
	}
	if dir, ok := mounts["deploy/grafana/dashboards"]; !ok {
		t.Error("the grafana service does not mount ./deploy/grafana/dashboards")
	} else if len(providers.Providers) == 0 || providers.Providers[0].Options.Path != dir {
		t.Errorf("dashboard provider %+v does not read %s, where compose mounts the dashboards", providers.Providers, dir)
	}
	if mounts["deploy/grafana/provisioning"] != "/etc/grafana/provisioning" {
		t.Error("the grafana service does not mount ./deploy/grafana/provisioning at /etc/grafana/provisioning")
	}
}

// natsConf is what the NATS cluster checks read from a nats-server
// configuration file.
type natsConf struct {
	serverName, listen, http, storeDir string
	clusterName, clusterListen         string
	routes                             []string // host:port
	jetstream                          bool
}

var (
	natsConfComment = regexp.MustCompile(`(?m)^\s*(#|//).*$|\s#.*$`)
	natsConfBlock   = regexp.MustCompile(`(?m)^\s*(cluster|jetstream)\s*[:=]?\s*\{`)
	natsConfRoutes  = regexp.MustCompile(`routes\s*[:=]?\s*\[([^\]]*)\]`)
	natsConfURL     = regexp.MustCompile(`nats(?:-route)?://(?:[^@\s,\]"]*@)?([^\s,\]"/]+)`)
)

// natsConfValue returns the value of a key at the top level of text.
func natsConfValue(text, key string) string {
	m := regexp.MustCompile(`(?m)^\s*` + key + `\s*[:=]\s*"?([^"\s]+)"?`).FindStringSubmatch(text)
	if m == nil {
		return ""
	}
	return m[1]
}

// parseNATSConf reads a nats-server configuration: top-level keys, and the
// cluster and jetstream blocks.
func parseNATSConf(text string) natsConf {
	text = natsConfComment.ReplaceAllString(text, "")
	var c natsConf
	blocks := map[string]string{}
	for {
		m := natsConfBlock.FindStringSubmatchIndex(text)
		if m == nil {
			break
		}
		depth, end := 0, len(text)
		for i := m[1] - 1; i < len(text); i++ {
			if text[i] == '{' {
				depth++
			} else if text[i] == '}' {
				if depth--; depth == 0 {
					end = i + 1
					break
				}
			}
		}
		blocks[text[m[2]:m[3]]] = text[m[1] : end-1]
		text = text[:m[0]] + "\n" + text[end:]
	}
	c.serverName = natsConfValue(text, "server_name")
	c.listen = natsConfValue(text, "listen")
	c.http = natsConfValue(text, "http")
	if js, ok := blocks["jetstream"]; ok {
		c.jetstream = true
		c.storeDir = natsConfValue(js, "store_dir")
	}
	if cl, ok := blocks["cluster"]; ok {
		c.clusterName = natsConfValue(cl, "name")
		c.clusterListen = natsConfValue(cl, "listen")
		if m := natsConfRoutes.FindStringSubmatch(cl); m != nil {
			for _, u := range natsConfURL.FindAllStringSubmatch(m[1], -1) {
				c.routes = append(c.routes, u[1])
			}
		}
	}
	return c
}

// TestDeployNATSCluster checks the three-node NATS cluster of deploy/nats:
// each node routes to the other two, on one machine without clashing, and
// the README's --nats-url names every node; and that the Kubernetes
// cluster's routes and callflow's CALLFLOW_NATS_URL name every pod.
func TestDeployNATSCluster(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(deployDir, "nats", "nats-*.conf"))
	if err != nil || len(paths) != 3 {
		t.Fatalf("deploy/nats has %d nats-*.conf files, want 3 (%v)", len(paths), err)
	}
	confs := map[string]natsConf{}
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		c := parseNATSConf(string(b))
		name := filepath.Base(path)
		if c.serverName == "" || c.listen == "" || c.http == "" || c.clusterName == "" || c.clusterListen == "" {
			t.Errorf("%s: want server_name, listen, http and a cluster block with name and listen: %+v", name, c)
		}
		if !c.jetstream || c.storeDir == "" {
			t.Errorf("%s: no jetstream block with a store_dir", name)
		}
		confs[name] = c
	}
	unique := map[string]string{}
	for name, c := range confs {
		for _, v := range []string{"server_name " + c.serverName, "listen " + c.listen, "http " + c.http, "cluster listen " + c.clusterListen, "store_dir " + c.storeDir} {
			if other, ok := unique[v]; ok {
				t.Errorf("%s and %s share %s", name, other, v)
			}
			unique[v] = name
		}
		var others []string
		for otherName, o := range confs {
			if otherName != name {
				others = append(others, o.clusterListen)
				if o.clusterName != c.clusterName {
					t.Errorf("%s is in cluster %q, %s in %q", name, c.clusterName, otherName, o.clusterName)
				}
			}
		}
		routes := slices.Clone(c.routes)
		sort.Strings(routes)
		sort.Strings(others)
		if !slices.Equal(routes, others) {
			t.Errorf("%s routes to %v, want the other two nodes' cluster addresses %v", name, c.routes, others)
		}
	}

	var clients []string
	for _, c := range confs {
		clients = append(clients, c.listen)
	}
	sort.Strings(clients)
	readme, err := os.ReadFile(filepath.Join(deployDir, "nats", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	urlFlags := regexp.MustCompile(`--nats-url[ =](\S+)`).FindAllStringSubmatch(string(readme), -1)
	if len(urlFlags) == 0 {
		t.Error("deploy/nats/README.md shows no --nats-url")
	}
	regions := map[string]bool{}
	if paths, _ := filepath.Glob(filepath.Join(deployDir, "nats", "region-*.conf")); len(paths) > 0 {
		for _, path := range paths {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			regions[parseNATSConf(string(b)).listen] = true
		}
	}
	for _, m := range urlFlags {
		var hosts []string
		for _, u := range natsConfURL.FindAllStringSubmatch(m[1], -1) {
			hosts = append(hosts, u[1])
		}
		sort.Strings(hosts)
		if len(hosts) == 1 && regions[hosts[0]] {
			continue // a region's roles use their region's server (TestDeployNATSRegions)
		}
		if !slices.Equal(hosts, clients) {
			t.Errorf("README: --nats-url %s, want the client addresses %v", m[1], clients)
		}
	}

	t.Run("k8s", func(t *testing.T) {
		objs := k8sObjects(t)
		configMaps := map[string]map[string]string{}
		for _, obj := range objs {
			if obj.Kind == "ConfigMap" {
				configMaps[obj.Metadata.Name] = obj.Data
			}
		}
		var pods, clientAddrs, routeAddrs []string
		for _, w := range k8sWorkloads(t, objs) {
			if w.obj.Kind != "StatefulSet" || len(w.spec.Template.Spec.Containers) == 0 || !strings.HasPrefix(w.spec.Template.Spec.Containers[0].Image, "nats") {
				continue
			}
			for i := range w.spec.Replicas {
				pods = append(pods, w.obj.Metadata.Name+"-"+strconv.Itoa(i)+"."+w.spec.ServiceName)
			}
			for _, v := range w.spec.Template.Spec.Volumes {
				if v.ConfigMap == nil {
					continue
				}
				for _, text := range configMaps[v.ConfigMap.Name] {
					c := parseNATSConf(text)
					if c.clusterListen == "" {
						continue
					}
					for _, p := range pods {
						clientAddrs = append(clientAddrs, net.JoinHostPort(p, deployPort(c.listen)))
						routeAddrs = append(routeAddrs, net.JoinHostPort(p, deployPort(c.clusterListen)))
					}
					routes := slices.Clone(c.routes)
					sort.Strings(routes)
					if !slices.Equal(routes, routeAddrs) {
						t.Errorf("NATS routes %v, want every pod of the StatefulSet %v", c.routes, routeAddrs)
					}
				}
			}
		}
		if len(pods) != 3 || len(clientAddrs) == 0 {
			t.Fatalf("deploy/k8s: want a three-node NATS StatefulSet with its configuration in a ConfigMap, found pods %v", pods)
		}
		for _, w := range k8sWorkloads(t, objs) {
			c := w.callflowContainer()
			if c == nil {
				continue
			}
			var hosts []string
			for _, u := range natsConfURL.FindAllStringSubmatch(c.envValues()["CALLFLOW_NATS_URL"], -1) {
				hosts = append(hosts, u[1])
			}
			sort.Strings(hosts)
			if !slices.Equal(hosts, clientAddrs) {
				t.Errorf("%s: CALLFLOW_NATS_URL names %v, want every NATS pod %v", w.obj.Metadata.Name, hosts, clientAddrs)
			}
		}
	})
}

// TestDeployNATSRegions checks the multi-region files of deploy/nats with
// nats-server's own configuration parser: the centre's nodes share the
// JetStream domain hub and listen for leaf nodes; each region has a
// domain of its own, ports of its own, one remote listing every one of the
// centre's leaf node listeners, and denies the records' subjects both ways
// (TestStreamSourceDomains shows why); the README starts the roles with
// the mirror and source flags naming those domains.
func TestDeployNATSRegions(t *testing.T) {
	hubs, _ := filepath.Glob(filepath.Join(deployDir, "nats", "nats-*.conf"))
	regions, _ := filepath.Glob(filepath.Join(deployDir, "nats", "region-*.conf"))
	if len(hubs) != 3 || len(regions) < 2 {
		t.Fatalf("deploy/nats: %d nats-*.conf and %d region-*.conf files, want 3 and at least 2", len(hubs), len(regions))
	}
	ports := map[int]string{}
	claim := func(file string, port int) {
		t.Helper()
		if other, ok := ports[port]; ok && port != 0 {
			t.Errorf("%s and %s both use port %d", file, other, port)
		}
		ports[port] = file
	}
	var leafAddrs []string
	hubDomain := ""
	for _, path := range hubs {
		opts, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		name := filepath.Base(path)
		if hubDomain == "" {
			hubDomain = opts.JetStreamDomain
		}
		if opts.JetStreamDomain == "" || opts.JetStreamDomain != hubDomain {
			t.Errorf("%s: JetStream domain %q, want the centre's one domain (%q)", name, opts.JetStreamDomain, hubDomain)
		}
		if opts.LeafNode.Port == 0 {
			t.Errorf("%s: no leafnodes listener for the regions", name)
		}
		claim(name, opts.Port)
		claim(name, opts.HTTPPort)
		claim(name, opts.Cluster.Port)
		claim(name, opts.LeafNode.Port)
		leafAddrs = append(leafAddrs, net.JoinHostPort(opts.LeafNode.Host, strconv.Itoa(opts.LeafNode.Port)))
	}
	sort.Strings(leafAddrs)
	records := wire.SubjectPrefix + ".>"
	var domains []string
	for _, path := range regions {
		opts, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		name := filepath.Base(path)
		d := opts.JetStreamDomain
		if d == "" || d == hubDomain || slices.Contains(domains, d) {
			t.Errorf("%s: JetStream domain %q, want one of its own", name, d)
		}
		domains = append(domains, d)
		claim(name, opts.Port)
		claim(name, opts.HTTPPort)
		if len(opts.LeafNode.Remotes) != 1 {
			t.Fatalf("%s: %d leaf node remotes, want one (the centre)", name, len(opts.LeafNode.Remotes))
		}
		r := opts.LeafNode.Remotes[0]
		var urls []string
		for _, u := range r.URLs {
			urls = append(urls, u.Host)
		}
		sort.Strings(urls)
		if !slices.Equal(urls, leafAddrs) {
			t.Errorf("%s: remote URLs %v, want the centre's leaf node listeners %v", name, urls, leafAddrs)
		}
		if !slices.Contains(r.DenyImports, records) || !slices.Contains(r.DenyExports, records) {
			t.Errorf("%s: deny_imports %v, deny_exports %v: both must hold %s", name, r.DenyImports, r.DenyExports, records)
		}
	}
	// The Kubernetes cluster is the same centre: its configuration, read
	// by nats-server's parser, has the hub's domain and a leaf node
	// listener, which a Service exposes.
	t.Run("k8s", func(t *testing.T) {
		objs := k8sObjects(t)
		var conf string
		for _, obj := range objs {
			if obj.Kind == "ConfigMap" && obj.Data["nats.conf"] != "" {
				conf = obj.Data["nats.conf"]
			}
		}
		if conf == "" {
			t.Fatal("deploy/k8s: no ConfigMap with nats.conf")
		}
		path := filepath.Join(t.TempDir(), "nats.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("SERVER_NAME", "nats-0")
		opts, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Fatalf("deploy/k8s nats.conf: %v", err)
		}
		if opts.JetStreamDomain != hubDomain || opts.LeafNode.Port == 0 {
			t.Fatalf("deploy/k8s nats.conf: JetStream domain %q, leaf node port %d; want %q and a listener", opts.JetStreamDomain, opts.LeafNode.Port, hubDomain)
		}
		exposed := false
		for _, obj := range objs {
			if obj.Kind != "Service" {
				continue
			}
			var spec struct {
				Ports []struct {
					Port int `yaml:"port"`
				} `yaml:"ports"`
			}
			if err := obj.Spec.Decode(&spec); err != nil {
				t.Fatal(err)
			}
			for _, p := range spec.Ports {
				exposed = exposed || p.Port == opts.LeafNode.Port
			}
		}
		if !exposed {
			t.Errorf("deploy/k8s: no Service exposes the leaf node port %d", opts.LeafNode.Port)
		}
	})

	readme, err := os.ReadFile(filepath.Join(deployDir, "nats", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	if !strings.Contains(text, "--sessions-mirror-domain "+hubDomain) {
		t.Errorf("deploy/nats/README.md: no --sessions-mirror-domain %s", hubDomain)
	}
	m := regexp.MustCompile(`--stream-source-domains (\S+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("deploy/nats/README.md: no --stream-source-domains")
	}
	got := strings.Split(m[1], ",")
	sort.Strings(got)
	sort.Strings(domains)
	if !slices.Equal(got, domains) {
		t.Errorf("deploy/nats/README.md: --stream-source-domains %s, want the regions' domains %v", m[1], domains)
	}
}
