package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResolveGC covers where the collector's settings come from: the
// flags, the Go runtime's own variables, the container's limit (cgroup v2
// and v1), and the mistakes refused.
func TestResolveGC(t *testing.T) {
	cgroup := func(files map[string]string) string {
		dir := t.TempDir()
		for name, v := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	none := cgroup(nil)
	v2 := cgroup(map[string]string{"memory.max": "268435456"})
	v2max := cgroup(map[string]string{"memory.max": "max"})
	v1 := cgroup(map[string]string{"memory/memory.limit_in_bytes": "536870912"})
	v1none := cgroup(map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712"})
	for _, tc := range []struct {
		name, limit, pct, root string
		env                    map[string]string
		want                   gcSettings
		err                    string
	}{
		{name: "no container", limit: "auto", pct: "auto", root: none, want: gcSettings{percent: 100}},
		{name: "cgroup v2 limit", limit: "auto", pct: "auto", root: v2, want: gcSettings{limit: 241591910, percent: 400}},
		{name: "cgroup v2 max", limit: "auto", pct: "auto", root: v2max, want: gcSettings{percent: 100}},
		{name: "cgroup v1 limit", limit: "auto", pct: "auto", root: v1, want: gcSettings{limit: 483183820, percent: 400}},
		{name: "cgroup v1 no limit", limit: "auto", pct: "auto", root: v1none, want: gcSettings{percent: 100}},
		{name: "GOMEMLIMIT wins over the container", limit: "auto", pct: "auto", root: v2, env: map[string]string{"GOMEMLIMIT": "100MiB"}, want: gcSettings{limit: 100 << 20, percent: 400}},
		{name: "GOGC kept", limit: "auto", pct: "auto", root: v2, env: map[string]string{"GOGC": "150"}, want: gcSettings{limit: 241591910, percent: 150}},
		{name: "GOGC off with a limit", limit: "auto", pct: "auto", root: v2, env: map[string]string{"GOGC": "off"}, want: gcSettings{limit: 241591910, percent: -1}},
		{name: "flags win", limit: "1GiB", pct: "200", root: v2, env: map[string]string{"GOMEMLIMIT": "100MiB", "GOGC": "50"}, want: gcSettings{limit: 1 << 30, percent: 200}},
		{name: "no limit asked", limit: "none", pct: "auto", root: v2, want: gcSettings{percent: 100}},
		{name: "off with a limit", limit: "300MB", pct: "off", root: none, want: gcSettings{limit: 300e6, percent: -1}},
		{name: "plain bytes", limit: "1048576", pct: "auto", root: none, want: gcSettings{limit: 1 << 20, percent: 400}},
		{name: "off without a limit", limit: "auto", pct: "off", root: none, err: "--gc-percent off needs a memory limit"},
		{name: "bad size", limit: "lots", pct: "auto", root: none, err: `--memory-limit "lots"`},
		{name: "negative size", limit: "-5MiB", pct: "auto", root: none, err: `--memory-limit "-5MiB"`},
		{name: "bad percent", limit: "auto", pct: "0", root: none, err: `--gc-percent "0"`},
		{name: "bad GOGC", limit: "auto", pct: "auto", root: none, env: map[string]string{"GOGC": "x"}, err: `GOGC "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveGC(tc.limit, tc.pct, func(k string) string { return tc.env[k] }, tc.root)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.limit != tc.want.limit || got.percent != tc.want.percent {
				t.Errorf("got limit %d percent %d (%s), want limit %d percent %d", got.limit, got.percent, got, tc.want.limit, tc.want.percent)
			}
			if got.String() == "" {
				t.Error("no description")
			}
		})
	}
}
