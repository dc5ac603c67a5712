package main

import (
	"bytes"
	"context"
	"flag"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// helpCases are every command, every action of the commands made of
// actions, and the subcommands of archiver and config, as a user types
// them before --help.
func helpCases() [][]string {
	var cases [][]string
	for name := range commands {
		cases = append(cases, []string{name})
	}
	for _, vc := range []*verbCommand{&sessionsCommand, &numbersCommand, &flowsCommand} {
		for _, v := range vc.verbs {
			cases = append(cases, []string{vc.name, v.name})
		}
	}
	cases = append(cases, []string{"archiver", "replay"}, []string{"archiver", "schema"}, []string{"bench", "chain"},
		[]string{"config", "print"}, []string{"config", "docs"}, []string{"config", "print", "serve"})
	slices.SortFunc(cases, func(a, b []string) int { return strings.Compare(strings.Join(a, " "), strings.Join(b, " ")) })
	return cases
}

// TestHelpEveryCommand runs every command and every action with --help,
// -h and (for actions) help before them: each prints its usage, with the
// exit codes, and exits 0.
func TestHelpEveryCommand(t *testing.T) {
	for _, c := range helpCases() {
		forms := [][]string{append(slices.Clone(c), "--help"), append(slices.Clone(c), "-h")}
		if len(c) == 2 && c[0] != "archiver" && c[0] != "config" && c[0] != "bench" {
			forms = append(forms, []string{c[0], "help", c[1]}, []string{c[0], c[1], "--admin-url", "http://127.0.0.1:1", "x", "-h"})
		}
		for _, args := range forms {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				code := run(context.Background(), args, &stdout, &stderr)
				if code != 0 {
					t.Fatalf("exit %d, want 0:\n%s", code, stderr.String())
				}
				usage := "Usage: callflow " + c[0]
				switch {
				case len(c) == 3: // config print ROLE: the role's flags
					usage = "Usage: callflow " + c[2]
				case c[0] == "config":
					usage = "Usage: callflow config print"
				}
				if !strings.Contains(stderr.String(), usage) || !strings.Contains(stderr.String(), "Exit codes: 0 success; 1 ") {
					t.Errorf("no usage with exit codes:\n%s", stderr.String())
				}
				if len(c) == 2 && c[0] != "config" && !strings.Contains(stderr.String(), "Usage: callflow "+c[0]+" "+c[1]) {
					t.Errorf("not the usage of %q:\n%s", strings.Join(c, " "), stderr.String())
				}
			})
		}
	}
	// The top level: with no command it is a usage error.
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, nil} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		want := 0
		if args == nil {
			want = 2
		}
		if code != want || !strings.Contains(stderr.String(), "Exit codes: 0 success") || !strings.Contains(stderr.String(), "sessions") {
			t.Errorf("callflow %v: exit %d (want %d):\n%s", args, code, want, stderr.String())
		}
	}
}

// TestVerbUsageListsItsFlags: an action's --help lists its own flags, the
// client's and --output where it prints objects, and no other action's.
func TestVerbUsageListsItsFlags(t *testing.T) {
	tests := []struct {
		args      []string
		want, not []string
	}{
		{[]string{"sessions", "create", "--help"}, []string{"--participants", "--ttl  ", "--admin-url", "-o, --output"}, []string{"--no-greeting", "--participant  ", "--all"}},
		{[]string{"sessions", "delete", "--help"}, []string{"--admin-token"}, []string{"--output", "--ttl"}},
		{[]string{"numbers", "remove", "--help"}, []string{"--force"}, []string{"--output", "--flow"}},
		{[]string{"flows", "list", "--help"}, []string{"--sub-account", "--all", "-o, --output"}, []string{"--nats-url", "--force"}},
		{[]string{"flows", "apply", "--help"}, []string{"-f  ", "--file"}, []string{"--output"}},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tt.args, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d", tt.args, code)
		}
		for _, w := range tt.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%v lacks %q:\n%s", tt.args, w, stderr.String())
			}
		}
		for _, n := range tt.not {
			if strings.Contains(stderr.String(), n) {
				t.Errorf("%v lists %q, another action's:\n%s", tt.args, n, stderr.String())
			}
		}
	}
}

// TestFlagsFirst covers the reordering that lets flags follow the
// argument: values kept with their flags, booleans without one, -o
// spelled long, -- ending the flags.
func TestFlagsFirst(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("ttl", "", "")
	fs.Bool("all", false, "")
	registerOutput(fs)
	tests := []struct {
		args, want []string
		given      []string
	}{
		{[]string{"ID", "--ttl", "1h"}, []string{"--ttl", "1h", "--", "ID"}, []string{"ttl"}},
		{[]string{"--ttl", "1h", "ID"}, []string{"--ttl", "1h", "--", "ID"}, []string{"ttl"}},
		{[]string{"ID", "--all", "-o", "ids"}, []string{"--all", "--output", "ids", "--", "ID"}, []string{"all", "output"}},
		{[]string{"-o=table", "ID", "--ttl=5s"}, []string{"--output=table", "--ttl=5s", "--", "ID"}, []string{"output", "ttl"}},
		{[]string{"ID", "--", "--ttl"}, []string{"--", "ID", "--ttl"}, nil},
		{[]string{"ID", "--unknown", "x"}, []string{"--unknown", "--", "ID", "x"}, []string{"unknown"}},
		{[]string{"ID", "--ttl"}, []string{"--ttl", "--", "ID"}, []string{"ttl"}},
	}
	for _, tt := range tests {
		got, given := flagsFirst(fs, tt.args)
		if !slices.Equal(got, tt.want) {
			t.Errorf("flagsFirst(%q) = %q, want %q", tt.args, got, tt.want)
		}
		names := slices.Sorted(func(yield func(string) bool) {
			for k := range given {
				if !yield(k) {
					return
				}
			}
		})
		if !slices.Equal(names, tt.given) {
			t.Errorf("flagsFirst(%q) given %q, want %q", tt.args, names, tt.given)
		}
	}
}

// TestFlagsAfterArgumentEveryVerb runs every action with its flags after
// its argument (and after the action), against an admin API that is not
// there: each gets as far as the request (exit 1, the connection refused),
// none stops at a usage error.
func TestFlagsAfterArgumentEveryVerb(t *testing.T) {
	client := []string{"--admin-url", "http://127.0.0.1:1", "--timeout", "2s"}
	args := map[string][]string{
		"sessions create": {"--participants", "+6581000001,+6582000001", "--virtual-number", "+6560000001", "-o", "table"},
		"sessions list":   {"--status", "all", "-o", "ids"},
		"sessions update": {"ID", "--ttl", "1h"},
		"numbers add":     {"+6560000001", "--sub-account", "acme", "-o", "ids"},
		"numbers list":    {"--status", "Active", "--all"},
		"numbers remove":  {"+6560000001", "--force"},
		"flows apply":     {"-f", filepath.Join(exampleFlows, "main-menu.json")},
		"flows list":      {"--sub-account", "acme", "-o", "table"},
		"flows delete":    {"ID", "--force"},
		"flows simulate":  {"--number", "+6560000001", "--from", "+6581000001", "--nats-url", "nats://127.0.0.1:1"},
	}
	for _, vc := range []*verbCommand{&sessionsCommand, &numbersCommand, &flowsCommand} {
		for _, v := range vc.verbs {
			name := vc.name + " " + v.name
			t.Run(name, func(t *testing.T) {
				rest, ok := args[name]
				if !ok {
					rest = []string{"ID"}
					if v.output {
						rest = append(rest, "-o", "table")
					}
				}
				cmdline := append(append([]string{vc.name, v.name}, rest...), client...)
				var stdout, stderr bytes.Buffer
				code := run(context.Background(), cmdline, &stdout, &stderr)
				if code != 1 || !strings.Contains(stderr.String(), "refused") && !strings.Contains(stderr.String(), "no servers available") {
					t.Errorf("callflow %s: exit %d, want 1 with the connection refused:\n%s", strings.Join(cmdline, " "), code, stderr.String())
				}
			})
		}
	}
}

// TestExitCodes: usage errors exit 2 and say what is wrong; errors of the
// work exit 1.
func TestExitCodes(t *testing.T) {
	down := []string{"--admin-url", "http://127.0.0.1:1"}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown command", []string{"fly"}, 2, `unknown command "fly"`},
		{"unknown action", []string{"sessions", "extend", "x"}, 2, `unknown action "extend"`},
		{"no action", []string{"numbers"}, 2, "Usage: callflow numbers <add|get|list|remove>"},
		{"another action's flag", []string{"sessions", "get", "x", "--ttl", "1h"}, 2, "sessions get does not take --ttl"},
		{"output where nothing is printed", []string{"sessions", "delete", "x", "-o", "ids"}, 2, "does not take --output"},
		{"bad output", []string{"sessions", "list", "-o", "yaml"}, 2, `"yaml": want json, table or ids`},
		{"bad flag value", []string{"sessions", "list", "--limit", "many"}, 2, `callflow sessions: invalid value "many" for flag --limit: parse error`},
		{"unknown flag", []string{"serve", "--no-such-flag"}, 2, "callflow serve: flag provided but not defined: --no-such-flag"},
		{"missing argument", []string{"numbers", "get"}, 2, "exactly one argument (NUMBER), got 0"},
		{"extra argument", []string{"flows", "list", "x"}, 2, `unexpected argument "x"`},
		{"fractional ttl", append([]string{"sessions", "create", "--participants", "+6581000001,+6582000001", "--ttl", "1.5s"}, down...), 2, "--ttl 1.5s: give whole seconds"},
		{"fractional ttl on update", append([]string{"sessions", "update", "x", "--ttl", "90500ms"}, down...), 2, "--ttl 1m30.5s: give whole seconds"},
		{"the API not there", append([]string{"sessions", "get", "x"}, down...), 1, "refused"},
		{"bad version flag", []string{"version", "--short"}, 2, "short"},
		{"flags before the action", append(append([]string{"sessions"}, down...), "get", "x"), 1, "refused"},
		{"help before the action", []string{"numbers", "--admin-url", "http://127.0.0.1:1", "-h", "get"}, 0, "Usage: callflow numbers get NUMBER"},
		{"only flags", append([]string{"flows"}, down...), 2, "Usage: callflow flows <apply|"},
		{"replay without a range", []string{"archiver", "replay"}, 2, "give --since TIME or --start-seq N"},
		{"replay with a bad --since", []string{"archiver", "replay", "--since", "yesterday"}, 2, `--since "yesterday"`},
		{"replay with both", []string{"archiver", "replay", "--since", "1h", "--start-seq", "5"}, 2, "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, want %d with %q:\n%s", code, tt.code, tt.want, stderr.String())
			}
		})
	}
}

// TestAPIErrorNamesFlag: the field of an error answer, from "field" or
// the message's start, is printed as the flag that sets it; the API's
// message is kept.
func TestAPIErrorNamesFlag(t *testing.T) {
	tests := []struct {
		body  string
		flags map[string]string
		want  string
	}{
		{`{"error": "ttlSeconds: must be from 0 (no expiry) to 31536000"}`, sessionFlags, "400 Bad Request: --ttl: must be from 0 (no expiry) to 31536000"},
		{`{"error": "ttlSeconds: must be from 0", "code": "invalid", "field": "ttlSeconds"}`, sessionFlags, "400 Bad Request: --ttl: must be from 0"},
		{`{"error": "must be from 0", "code": "invalid", "field": "ttlSeconds"}`, sessionFlags, "400 Bad Request: --ttl: must be from 0"},
		{`{"error": "participants[1]: \"12ab\" is not a phone number"}`, sessionFlags, `400 Bad Request: --participants (item 2): "12ab" is not a phone number`},
		{`{"error": "greeting.voiceProfile: too long"}`, sessionFlags, "400 Bad Request: --greeting-voice: too long"},
		{`{"error": "outOfSession.say.text: required"}`, numberFlags, "400 Bad Request: --out-of-session-text: required"},
		{`{"error": "number: \"1\" is not a phone number"}`, numberFlags, `400 Bad Request: NUMBER: "1" is not a phone number`},
		{`{"error": "session not found"}`, sessionFlags, "400 Bad Request: session not found"},
		{`{"error": "body: unknown field"}`, sessionFlags, "400 Bad Request: body: unknown field"},
		{`{"error": "steps.a.menu.options.1: step \"x\" does not exist"}`, nil, `400 Bad Request: steps.a.menu.options.1: step "x" does not exist`},
		{`not json`, sessionFlags, "400 Bad Request"},
	}
	for _, tt := range tests {
		if got := newAPIError("400 Bad Request", []byte(tt.body), tt.flags).Error(); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.body, got, tt.want)
		}
	}
}

// TestPrintObjects: a list answer and a single object as a table (a
// header, aligned columns, "-" for what is absent) and as ids.
func TestPrintObjects(t *testing.T) {
	list := []byte(`{"sessions": [
		{"id": "s1", "status": "open", "virtualNumber": "+6560000001", "participants": ["+6581000001", "+6582000001"], "subAccountId": "acme", "ttlMode": "idle", "ttlSeconds": 1800, "expiresAt": null, "callCount": 2, "maxCalls": 3, "ref": "order-1"},
		{"id": "s22", "status": "closed", "virtualNumber": "+6560000002", "participants": ["+6581000002", "+6582000002"], "ttlMode": "absolute", "expiresAt": "2026-12-31T23:59:59Z", "callCount": 0}
	], "nextCursor": null}`)
	var b bytes.Buffer
	if err := printObjects(&b, list, sessionResource, outputIDs); err != nil || b.String() != "s1\ns22\n" {
		t.Errorf("ids: %q %v", b.String(), err)
	}
	b.Reset()
	if err := printObjects(&b, list, sessionResource, outputTable); err != nil {
		t.Fatal(err)
	}
	want := `ID   STATUS  VIRTUAL NUMBER  PARTICIPANTS             SUB-ACCOUNT  TTL         EXPIRES               CALLS  REF
s1   open    +6560000001     +6581000001,+6582000001  acme         idle 30m0s  -                     2/3    order-1
s22  closed  +6560000002     +6581000002,+6582000002  -            absolute    2026-12-31T23:59:59Z  0      -
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	one := []byte(`{"number": "+6560000001", "subAccountId": "acme", "status": "Active", "openSessions": 1, "outOfSession": {"action": "forward", "destination": "+6560009999"}}`)
	if err := printObjects(&b, one, numberResource, outputTable); err != nil {
		t.Fatal(err)
	}
	want = "NUMBER       SUB-ACCOUNT  COUNTRY  STATUS  OPEN SESSIONS  FLOW  OUT OF SESSION\n" +
		"+6560000001  acme         -        Active  1              -     forward +6560009999\n"
	if b.String() != want {
		t.Errorf("one number:\n%s\nwant\n%s", b.String(), want)
	}
}

// TestVersionFromBuild builds the binary with go build in the repository
// (VCS stamping on, whatever GOFLAGS says) and checks that `callflow
// version` prints the commit git rev-parse HEAD names, "modified" when
// the tree has changes, and that -X main.version still wins for the
// version. Under go test there is no stamp, and it says so.
func TestVersionFromBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "commit unknown") {
		t.Errorf("version under go test: exit %d %q, want 'commit unknown'", code, stdout.String())
	}
	if err := exec.Command("git", "rev-parse", "--is-inside-work-tree").Run(); err != nil {
		t.Skipf("not in a git work tree (%v): no commit to compare the stamp with", err)
	}
	git := func(args ...string) string {
		out, err := exec.Command("git", args...).Output()
		if err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	dir := t.TempDir()
	dirty := func() bool { return git("status", "--porcelain") != "" }
	// build returns the commit and the tree's state during the build, and
	// what the binary printed; others may commit or edit meanwhile: the
	// commit must be the same before and after the build.
	build := func(extra ...string) (head string, modified *bool, out string) {
		for range 5 {
			head, before := git("rev-parse", "HEAD"), dirty()
			bin := filepath.Join(dir, "callflow")
			cmd := exec.Command("go", append(append([]string{"build", "-buildvcs=true", "-o", bin}, extra...), ".")...)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, b)
			}
			if git("rev-parse", "HEAD") != head {
				continue
			}
			if dirty() == before {
				modified = &before
			}
			b, err := exec.Command(bin, "version").Output()
			if err != nil {
				t.Fatalf("callflow version: %v", err)
			}
			return head, modified, strings.TrimSpace(string(b))
		}
		t.Fatal("HEAD moved during every build")
		return "", nil, ""
	}
	head, modified, out := build()
	if !strings.HasPrefix(out, "callflow v") || !strings.Contains(out, " commit "+head) {
		t.Errorf("callflow version printed %q, want a module version and commit %s", out, head)
	}
	if modified != nil && *modified != strings.Contains(out, " modified") {
		t.Errorf("callflow version printed %q; the tree has changes: %v", out, *modified)
	}
	_, _, out = build("-ldflags", "-X main.version=1.2.3")
	if !strings.HasPrefix(out, "callflow 1.2.3 commit ") {
		t.Errorf("with -X main.version=1.2.3, callflow version printed %q", out)
	}
}

// TestBuildVersionIsSemver: the version processes report is one the
// deciders' NATS service takes, whatever the build says.
func TestBuildVersionIsSemver(t *testing.T) {
	defer func(v string) { version = v }(version)
	for v, want := range map[string]string{
		"1.2.3": "1.2.3", "v1.2.3": "1.2.3", "v0.0.0-20261205212318-97c840119590+dirty": "0.0.0-20261205212318-97c840119590+dirty",
		"dev": "0.0.0-dev", "(devel)": "0.0.0-devel", "1.2": "0.0.0-1.2", "!!": "0.0.0-dev",
	} {
		version = v
		if got := buildVersion(); got != want {
			t.Errorf("version %q: buildVersion() = %q, want %q", v, got, want)
		}
	}
}
