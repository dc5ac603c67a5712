package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigTableInReadme keeps the README's table of settings equal to the
// binary's flags.
func TestConfigTableInReadme(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	begin, end := strings.Index(readme, "<!-- config:begin -->\n"), strings.Index(readme, "<!-- config:end -->")
	if begin < 0 || end < begin {
		t.Fatal("README.md has no config:begin / config:end markers")
	}
	if got := readme[begin+len("<!-- config:begin -->\n") : end]; got != configDocs() {
		t.Errorf("README's configuration table is stale; regenerate it with `go run ./cmd/callflow config docs`.\nwant:\n%s", configDocs())
	}
}

func configPrint(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"config", "print"}, args...), &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "callflow.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigPrecedence: flag > environment > file > default.
func TestConfigPrecedence(t *testing.T) {
	file := writeConfig(t, "deciders: 4\ndecide-timeout: 300ms\nhttp-addr: \":7000\"\nfallback-text: from the file\n")
	out, stderr, code := configPrint(t,
		map[string]string{"CALLFLOW_DECIDERS": "3", "CALLFLOW_HTTP_ADDR": ":7001"},
		"serve", "--config", file, "--http-addr", ":7002")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		`http-addr: :7002`,                      // flag beats environment and file
		`deciders: "3"`,                         // environment beats file
		`decide-timeout: 300ms`,                 // file beats default
		`fallback-text: from the file`,          // file beats default
		`record-timeout: 1s`,                    // default
		`nats-listen: 127.0.0.1:4222`,           // default
		`clickhouse-database: callflow`,         // default
		"# effective configuration of callflow", // header
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config print lacks %q:\n%s", want, out)
		}
	}
}

// config print shows that a secret is set without showing it, in a form a
// config file made from the output cannot load as a secret.
func TestConfigPrintRedactsSecrets(t *testing.T) {
	file := writeConfig(t, "clickhouse-password: hunter2\n")
	out, _, code := configPrint(t, map[string]string{"CALLFLOW_ADMIN_TOKEN": "tok-123"}, "serve", "--config", file)
	if code != 0 || strings.Contains(out, "hunter2") || strings.Contains(out, "tok-123") {
		t.Fatalf("exit %d, secrets not redacted:\n%s", code, out)
	}
	for _, name := range []string{"admin-token", "clickhouse-password"} {
		if !strings.Contains(out, "\n# "+name+": (set, not shown;") {
			t.Errorf("%s not shown as set:\n%s", name, out)
		}
	}
	// The output, used as a config file, sets no secret.
	t.Setenv("CALLFLOW_ADMIN_TOKEN", "")
	var o options
	r, _ := findRole("serve")
	if err := parseFlags(r.flagSet(&o, io.Discard), []string{"--config", writeConfig(t, out)}, false); err != nil {
		t.Fatalf("config print's output does not load as a config file: %v", err)
	}
	if o.adminToken != "" || o.clickhousePassword != "" {
		t.Errorf("config print's output set admin-token %q, clickhouse-password %q", o.adminToken, o.clickhousePassword)
	}
}

// A redaction placeholder is never taken as a secret, from any source.
func TestSecretPlaceholderRefused(t *testing.T) {
	for _, tc := range []struct {
		name, flag, value string
	}{
		{"admin token", "admin-token", "REDACTED"},
		{"webhook auth, one of several", "webhook-auth", "Bearer real-secret-1,redacted"},
		{"nats password in brackets", "nats-password", "<REDACTED>"},
		{"clickhouse password stars", "clickhouse-password", "********"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o options
			r, _ := findRole("serve")
			if err := parseFlags(r.flagSet(&o, io.Discard), []string{"--" + tc.flag, tc.value}, false); err != nil {
				t.Fatal(err)
			}
			err := o.readSecrets()
			if err == nil || !strings.Contains(err.Error(), "--"+tc.flag) || !strings.Contains(err.Error(), "placeholder") {
				t.Errorf("readSecrets() = %v, want an error naming --%s as a placeholder", err, tc.flag)
			}
		})
	}
	// From a file too.
	var o options
	r, _ := findRole("serve")
	path := writeConfig(t, "real-token-1\nREDACTED\n")
	if err := parseFlags(r.flagSet(&o, io.Discard), []string{"--admin-token-file", path}, false); err != nil {
		t.Fatal(err)
	}
	if err := o.readSecrets(); err == nil || !strings.Contains(err.Error(), "--admin-token") {
		t.Errorf("a placeholder in --admin-token-file: %v, want refused", err)
	}
	// Real secrets pass.
	o = options{}
	if err := parseFlags(r.flagSet(&o, io.Discard), []string{"--admin-token", "tok-REDACTED-1", "--webhook-auth", "Bearer ***x"}, false); err != nil {
		t.Fatal(err)
	}
	if err := o.readSecrets(); err != nil {
		t.Errorf("real secrets refused: %v", err)
	}
}

// Durations in JSON logs are written as durations, not nanoseconds.
func TestLogDurationsAsText(t *testing.T) {
	o := options{logLevel: "info", logFormat: "json"}
	var buf bytes.Buffer
	log, err := o.logger(&buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("stream", "max_age", 7*24*time.Hour, "timeout", 1500*time.Millisecond)
	if got := buf.String(); !strings.Contains(got, `"max_age":"168h0m0s"`) || !strings.Contains(got, `"timeout":"1.5s"`) {
		t.Errorf("log line %s, want durations as text", got)
	}
}

// TestInvalidConfigNamesTheSetting: a bad value anywhere stops the start
// with a message naming the setting.
func TestInvalidConfigNamesTheSetting(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		args []string
		want string
	}{
		{name: "unknown key in file", file: "htp-addr: x\n", want: "htp-addr"},
		{name: "bad duration in file", file: "decide-timeout: soon\n", want: "decide-timeout"},
		{name: "nested value in file", file: "deciders:\n  a: 1\n", want: "deciders"},
		{name: "bad number in env", env: map[string]string{"CALLFLOW_MAX_BODY": "big"}, want: "CALLFLOW_MAX_BODY"},
		{name: "bad flag value", args: []string{"--stream-max-age", "forever"}, want: "stream-max-age"},
		{name: "negative deciders", args: []string{"--deciders", "-2"}, want: "--deciders"},
		{name: "missing file", args: []string{"--config", "/nonexistent/callflow.yaml"}, want: "callflow.yaml"},
		{name: "malformed yaml", file: "deciders: [1\n", want: "config file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve"}, tt.args...)
			if tt.file != "" {
				args = append(args, "--config", writeConfig(t, tt.file))
			}
			_, stderr, code := configPrint(t, tt.env, args...)
			if code == 0 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q, want a failure naming %q", code, stderr, tt.want)
			}
		})
	}
}

// TestConfigFileServesEveryRole: one file for every role. A key of
// another role is skipped and noted for the log, a key no role knows is
// an error naming it and the nearest known key, a value of the wrong type
// an error naming the key and what it wants.
func TestConfigFileServesEveryRole(t *testing.T) {
	type check struct {
		name    string
		file    string
		wantErr string // empty: loads
		ignored []string
		value   map[string]string // flags the file sets
	}
	common := []check{
		{name: "typo", file: "clickhouse-adr: 127.0.0.1:9000\n", wantErr: `unknown key "clickhouse-adr" (did you mean "clickhouse-addr"?)`},
		{name: "typo of a shared key", file: "log-levle: debug\n", wantErr: `unknown key "log-levle" (did you mean "log-level"?)`},
		{name: "nothing like a key", file: "xyzzy-plugh-frobnicate: 1\n", wantErr: `unknown key "xyzzy-plugh-frobnicate" (the keys are the flag names`},
		{name: "duration", file: "shutdown-timeout: soon\n", wantErr: `key "shutdown-timeout": want a duration such as 500ms, 30s or 2h, got "soon"`},
		{name: "mapping", file: "log-level:\n  a: 1\n", wantErr: `key "log-level": want a string, got a mapping`},
		{name: "shared key loads", file: "log-level: debug\nnats-url: nats://10.0.0.1:4222\n"},
	}
	perRole := map[string][]check{
		"serve": {
			{name: "integer", file: "batch-max-rows: lots\n", wantErr: `key "batch-max-rows": want an integer, got "lots"`},
			{name: "bool", file: "clickhouse-tls: maybe\n", wantErr: `key "clickhouse-tls": want true or false, got "maybe"`},
			{name: "unsigned", file: "breaker-failures: -1\n", wantErr: `key "breaker-failures": want a non-negative integer, got "-1"`},
			{name: "number", file: "admin-rate-limit: fast\n", wantErr: `key "admin-rate-limit": want a number, got "fast"`},
		},
		"ingest": {
			{name: "integer", file: "max-body: big\n", wantErr: `key "max-body": want an integer, got "big"`},
			{name: "other roles' keys", file: "deciders: 4\nbatch-max-rows: 1000\nnats-listen: :4222\nhttp-addr: :8080\n", ignored: []string{"batch-max-rows", "deciders", "nats-listen"}},
			{name: "other role's key of a wrong type", file: "batch-max-rows: lots\n", ignored: []string{"batch-max-rows"}},
			{name: "list of a comma-separated setting", file: "webhook-allow-cidrs: [10.0.0.0/8, 192.168.1.1]\n", value: map[string]string{"webhook-allow-cidrs": "10.0.0.0/8,192.168.1.1"}},
		},
		"decider": {
			{name: "integer", file: "deciders: many\n", wantErr: `key "deciders": want an integer, got "many"`},
			{name: "other roles' keys", file: "http-addr: :8080\nbatch-max-age: 1s\nsessions-bucket: s\n", ignored: []string{"batch-max-age", "http-addr"}},
		},
		"archiver": {
			{name: "integer", file: "batch-max-rows: lots\n", wantErr: `key "batch-max-rows": want an integer, got "lots"`},
			{name: "list for a number", file: "batch-max-rows: [1, 2]\n", wantErr: `key "batch-max-rows": want an integer, got a list`},
			{name: "list of lists", file: "nats-url: [[a]]\n", wantErr: `key "nats-url": want a list of values, got a list of lists`},
			{name: "other roles' keys", file: "webhook-auth: Bearer x\ndeciders: 2\nbatch-max-rows: 10\n", ignored: []string{"deciders", "webhook-auth"}},
		},
	}
	for _, r := range roles {
		for _, c := range append(append([]check{}, common...), perRole[r.name]...) {
			t.Run(r.name+"/"+c.name, func(t *testing.T) {
				var o options
				var stderr bytes.Buffer
				path := writeConfig(t, c.file)
				fs := r.flagSet(&o, &stderr)
				err := parseFlags(fs, []string{"--config", path}, false)
				if c.wantErr != "" {
					if err == nil || !strings.Contains(stderr.String(), "config file "+path+": "+c.wantErr) {
						t.Fatalf("parse: %v, stderr %q, want %q", err, stderr.String(), c.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("parse: %v, stderr %q", err, stderr.String())
				}
				for name, want := range c.value {
					if got := fs.Lookup(name).Value.String(); got != want {
						t.Errorf("%s = %q, want %q", name, got, want)
					}
				}
				if strings.Join(o.config.ignored, ",") != strings.Join(c.ignored, ",") {
					t.Errorf("ignored %q, want %q", o.config.ignored, c.ignored)
				}
				var log bytes.Buffer
				o.logIgnoredKeys(slog.New(slog.NewJSONHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})))
				if lines := strings.Count(log.String(), "config file keys of other roles ignored"); lines != min(len(c.ignored), 1) {
					t.Errorf("%d debug lines about ignored keys, want %d: %s", lines, min(len(c.ignored), 1), log.String())
				}
			})
		}
	}
}

// serve stores one archive batch at a time (its ClickHouse usually shares
// its machine); the archiver role two (BENCHMARKS.md, round 2).
func TestArchiveInsertsDefaultByRole(t *testing.T) {
	for name, want := range map[string]string{"serve": "1", "archiver": "2"} {
		r, ok := findRole(name)
		if !ok {
			t.Fatalf("no role %s", name)
		}
		var o options
		f := r.flagSet(&o, io.Discard).Lookup("archive-inserts")
		if f == nil || f.DefValue != want {
			t.Errorf("%s --archive-inserts default = %v, want %s", name, f, want)
		}
	}
}
