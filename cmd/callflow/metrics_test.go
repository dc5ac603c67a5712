package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// readmeMetrics returns the metric names of README.md's metrics table
// (each row's backticked names, labels dropped).
func readmeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const header = "| metric | what it tells |\n| --- | --- |\n"
	_, table, ok := strings.Cut(string(b), header)
	if !ok {
		t.Fatal("README.md has no metrics table (| metric | what it tells |)")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	names := map[string]bool{}
	name := regexp.MustCompile("`([a-z_:][a-z0-9_:]*)(\\{[^}`]*\\})?`")
	for _, row := range strings.Split(table, "\n") {
		first, _, _ := strings.Cut(strings.TrimPrefix(row, "| "), " | ")
		for _, m := range name.FindAllStringSubmatch(first, -1) {
			names[m[1]] = true
		}
	}
	if len(names) == 0 {
		t.Fatal("README.md's metrics table names no metric")
	}
	return names
}

// exportedMetrics returns the metric families /metrics at addr serves, by
// name, with their type.
func exportedMetrics(t *testing.T, addr string) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	return out
}

// TestMetricsTableMatchesServe: the README's metrics table names exactly
// the callflow_* metrics serve exports, and every metric an alert rule
// uses is exported from the start, before ClickHouse was ever reached
// (an alert on a series that does not exist yet never fires).
func TestMetricsTableMatchesServe(t *testing.T) {
	p := start(t, nil, "serve", "--data-dir", t.TempDir(), "--http-addr", anyPort, "--admin-addr", anyPort,
		"--nats-listen", anyPort, "--clickhouse-addr", freeAddrs(t, 1)[0]) // nothing listens there
	a := waitReady(t, p)
	exported := exportedMetrics(t, a.Admin)
	documented := readmeMetrics(t)

	var missing, undocumented []string
	for name := range documented {
		if _, ok := exported[name]; !ok {
			missing = append(missing, name)
		}
	}
	for name := range exported {
		if strings.HasPrefix(name, "callflow_") && !documented[name] {
			undocumented = append(undocumented, name)
		}
	}
	slices.Sort(missing)
	slices.Sort(undocumented)
	if len(missing) > 0 {
		t.Errorf("README's metrics table names metrics serve does not export: %v", missing)
	}
	if len(undocumented) > 0 {
		t.Errorf("serve exports metrics README's metrics table does not name: %v", undocumented)
	}

	b, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, series := range promSeriesNames(r.Expr) {
				if !strings.HasPrefix(series, "callflow_") {
					continue
				}
				family := series
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(series, suffix); ok && exported[base] == "histogram" {
						family = base
					}
				}
				if _, ok := exported[family]; !ok {
					t.Errorf("alert %s uses %s, which serve does not export before ClickHouse is reached", r.Alert, series)
				}
			}
		}
	}
	if err := p.stop(t); err != nil {
		t.Fatalf("serve exit: %v", err)
	}
}
