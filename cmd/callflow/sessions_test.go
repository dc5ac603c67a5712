package main

import (
	"encoding/json"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// cliCode runs the binary and returns its stdout, stderr and exit code.
func cliCode(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	out, err := cli(t, args...)
	if err == nil {
		return out, "", 0
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("callflow %v: %v", args, err)
	}
	return out, err.Error(), exit.ExitCode()
}

// TestSessionsAndNumbersCLI drives `callflow sessions` and `callflow
// numbers` against a real `callflow serve` with two admin tokens (one of
// every sub-account, one of acme only): the pool is filled with `numbers
// add`, sessions are allocated from it, listed with filters and pages,
// updated, closed and deleted; the admin API's errors are printed with its
// message and exit 1; usage errors exit 2.
func TestSessionsAndNumbersCLI(t *testing.T) {
	const root, acme = "cli-root-4b8e", "cli-acme-91c2"
	p := start(t, nil, "serve", "--data-dir", t.TempDir(), "--http-addr", anyPort, "--admin-addr", anyPort,
		"--nats-listen", anyPort, "--clickhouse-addr", "", "--admin-token", root+","+acme+"@acme")
	adminURL := "http://" + waitReady(t, p).Admin
	as := func(token string, args ...string) []string {
		return append(args[:2:2], append([]string{"--admin-url", adminURL, "--admin-token", token}, args[2:]...)...)
	}
	// run runs a command that must succeed and decodes what it printed.
	run := func(v any, token string, args ...string) string {
		t.Helper()
		out, stderr, code := cliCode(t, as(token, args...)...)
		if code != 0 {
			t.Fatalf("callflow %v: exit %d: %s", args, code, stderr)
		}
		if v != nil {
			if err := json.Unmarshal([]byte(out), v); err != nil {
				t.Fatalf("callflow %v printed %q: %v", args, out, err)
			}
		}
		return out
	}
	type number struct {
		Number, SubAccountID, CountryCode, Status string
		OpenSessions                              int
		OutOfSession                              *struct{ Action, Destination string }
	}
	type sess struct {
		ID, SubAccountID, VirtualNumber, TTLMode, Ref, Status string
		ClosedReason                                          *string
		MaxCalls, TTLSeconds                                  int64
		ExpiresAt                                             *time.Time
		Greeting                                              *struct{ Text string }
	}

	// The pool.
	var n number
	run(&n, root, "numbers", "add", "+65 6000 0001", "--sub-account", "acme", "--country", "SG")
	if n.Number != "+6560000001" || n.SubAccountID != "acme" || n.Status != "Active" || n.CountryCode != "SG" {
		t.Errorf("numbers add: %+v", n)
	}
	run(&n, acme, "numbers", "add", "+6560000002", "--country", "SG", "--out-of-session-action", "forward",
		"--out-of-session-destination", "+6560009999", "--out-of-session-text", "Connecting you to our team")
	if n.SubAccountID != "acme" || n.OutOfSession == nil || n.OutOfSession.Destination != "+6560009999" {
		t.Errorf("numbers add with the acme token and a policy: %+v", n)
	}
	run(&n, root, "numbers", "add", "+6560000002", "--status", "Unhealthy", "--no-out-of-session")
	if n.Status != "Unhealthy" || n.OutOfSession != nil || n.CountryCode != "SG" {
		t.Errorf("numbers add (update): %+v", n)
	}
	run(nil, root, "numbers", "add", "+6560000003", "--sub-account", "globex")
	run(&n, acme, "numbers", "get", "6560000002")
	var numbers struct {
		Numbers    []number
		NextCursor *string
	}
	run(&numbers, acme, "numbers", "list", "--limit", "1")
	if len(numbers.Numbers) != 1 || numbers.NextCursor == nil {
		t.Errorf("numbers list --limit 1: %+v", numbers)
	}
	run(&numbers, acme, "numbers", "list", "--limit", "1", "--all")
	if len(numbers.Numbers) != 2 || numbers.NextCursor != nil {
		t.Errorf("numbers list --all with the acme token: %+v, want acme's two", numbers)
	}
	run(&numbers, root, "numbers", "list", "--status", "Active")
	if len(numbers.Numbers) != 2 {
		t.Errorf("numbers list --status Active: %+v", numbers)
	}

	// Sessions allocated from it.
	var s sess
	run(&s, acme, "sessions", "create", "--country", "SG", "--participants", "+6581000001,+6582000001",
		"--ttl-mode", "idle", "--ttl", "30m", "--max-calls", "3", "--ref", "order-1")
	if s.VirtualNumber != "+6560000001" || s.SubAccountID != "acme" || s.TTLMode != "idle" || s.TTLSeconds != 1800 || s.MaxCalls != 3 || s.Ref != "order-1" {
		t.Errorf("sessions create (allocated): %+v", s)
	}
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	var s2 sess
	run(&s2, root, "sessions", "create", "--sub-account", "acme", "--participants", "+6581000002,+6582000002",
		"--expires-at", at.Format(time.RFC3339), "--greeting-text", "Hello")
	if s2.ExpiresAt == nil || !s2.ExpiresAt.Equal(at) || s2.Greeting == nil {
		t.Errorf("sessions create --expires-at: %+v", s2)
	}
	var other sess
	run(&other, root, "sessions", "create", "--virtual-number", "+6590000001", "--participants", "+6581000003,+6582000003")

	var list struct {
		Sessions   []sess
		NextCursor *string
	}
	run(&list, root, "sessions", "list", "--ref", "order-1")
	if len(list.Sessions) != 1 || list.Sessions[0].ID != s.ID {
		t.Errorf("sessions list --ref: %+v", list)
	}
	run(&list, root, "sessions", "list", "--participant", "+6582000002", "--sub-account", "acme")
	if len(list.Sessions) != 1 || list.Sessions[0].ID != s2.ID {
		t.Errorf("sessions list --participant --sub-account: %+v", list)
	}
	run(&list, root, "sessions", "list", "--all", "--limit", "1")
	if len(list.Sessions) != 3 || list.NextCursor != nil {
		t.Errorf("sessions list --all: %d sessions, next %v; want 3", len(list.Sessions), list.NextCursor)
	}
	run(&list, acme, "sessions", "list")
	if len(list.Sessions) != 2 {
		t.Errorf("sessions list with the acme token: %d sessions, want acme's 2", len(list.Sessions))
	}

	// --output: ids (one a line, every page with --all) and a table.
	ids := strings.Fields(run(nil, root, "sessions", "list", "--all", "--limit", "1", "-o", "ids"))
	slices.Sort(ids)
	wantIDs := []string{s.ID, s2.ID, other.ID}
	slices.Sort(wantIDs)
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("sessions list --all -o ids: %q, want %q", ids, wantIDs)
	}
	table := strings.Split(strings.TrimSpace(run(nil, acme, "sessions", "get", s.ID, "--output", "table")), "\n")
	if len(table) != 2 || !strings.HasPrefix(table[0], "ID ") || !strings.Contains(table[0], "  VIRTUAL NUMBER  ") ||
		strings.Fields(table[1])[0] != s.ID || !strings.Contains(table[1], "+6560000001") || !strings.Contains(table[1], "idle 30m0s") ||
		!strings.Contains(table[1], "0/3") || !strings.Contains(table[1], "order-1") {
		t.Errorf("sessions get -o table:\n%s", strings.Join(table, "\n"))
	}
	table = strings.Split(strings.TrimSpace(run(nil, root, "sessions", "list", "-o", "table", "--sub-account", "acme")), "\n")
	if len(table) != 3 || strings.Index(table[1], "+658") != strings.Index(table[0], "PARTICIPANTS") {
		t.Errorf("sessions list -o table: columns not aligned:\n%s", strings.Join(table, "\n"))
	}
	if got := run(nil, acme, "numbers", "list", "-o", "ids"); got != "+6560000001\n+6560000002\n" {
		t.Errorf("numbers list -o ids: %q", got)
	}
	if got := run(nil, acme, "numbers", "add", "+6560000002", "--status", "Unhealthy", "-o", "ids"); got != "+6560000002\n" {
		t.Errorf("numbers add -o ids: %q", got)
	}
	table = strings.Split(strings.TrimSpace(run(nil, acme, "numbers", "get", "+6560000001", "-o", "table")), "\n")
	if len(table) != 2 || !strings.HasPrefix(table[0], "NUMBER ") || !strings.HasPrefix(table[1], "+6560000001  acme ") || !strings.Contains(table[1], " SG ") {
		t.Errorf("numbers get -o table:\n%s", strings.Join(table, "\n"))
	}

	// update, flags after the id as well as before.
	var u sess
	run(&u, acme, "sessions", "update", s.ID, "--ttl", "2h", "--ref", "order-2")
	if u.TTLSeconds != 7200 || u.Ref != "order-2" {
		t.Errorf("sessions update: %+v", u)
	}
	run(&u, acme, "sessions", "update", "--no-greeting", s2.ID)
	if u.Greeting != nil {
		t.Errorf("sessions update --no-greeting: %+v", u)
	}
	run(&u, acme, "sessions", "close", s2.ID)
	if u.Status != "closed" || u.ClosedReason == nil || *u.ClosedReason != "closed" {
		t.Errorf("sessions close: %+v", u)
	}
	run(&u, root, "sessions", "get", s2.ID)
	if u.Status != "closed" {
		t.Errorf("sessions get of a closed session: %+v", u)
	}
	run(&list, root, "sessions", "list", "--status", "closed")
	if len(list.Sessions) != 1 || list.Sessions[0].ID != s2.ID {
		t.Errorf("sessions list --status closed: %+v", list)
	}

	// The API's refusals: its status and message, exit 1; usage: exit 2.
	errs := []struct {
		name  string
		token string
		args  []string
		code  int
		want  string
	}{
		{"closed never reopens", acme, []string{"sessions", "update", s2.ID, "--ttl", "1h"}, 1, "409 Conflict: session is closed"},
		{"close twice", acme, []string{"sessions", "close", s2.ID}, 1, "409 Conflict"},
		{"bad participant", root, []string{"sessions", "create", "--virtual-number", "+6590000002", "--participants", "+6581000001,12ab"}, 1, "400 Bad Request: --participants (item 2): "},
		{"one participant", root, []string{"sessions", "create", "--virtual-number", "+6590000002", "--participants", "+6581000001"}, 1, "400 Bad Request: --participants: "},
		{"bad virtual number", root, []string{"sessions", "create", "--virtual-number", "12", "--participants", "+6581000001,+6582000001"}, 1, "400 Bad Request: --virtual-number: "},
		{"bad ttl mode", root, []string{"sessions", "create", "--virtual-number", "+6590000002", "--participants", "+6581000001,+6582000001", "--ttl-mode", "sometimes"}, 1, `400 Bad Request: --ttl-mode: "sometimes"`},
		{"ttl too long", root, []string{"sessions", "create", "--virtual-number", "+6590000002", "--participants", "+6581000001,+6582000001", "--ttl", "100000h"}, 1, "400 Bad Request: --ttl: must be from 0"},
		{"negative max calls", root, []string{"sessions", "update", s.ID, "--max-calls", "-1"}, 1, "400 Bad Request: --max-calls: "},
		{"bad pin", root, []string{"sessions", "create", "--virtual-number", "+6590000002", "--participants", "+6581000001,+6582000001", "--pin", "12"}, 1, "400 Bad Request: --pin: "},
		{"bad country", root, []string{"numbers", "add", "+6560000009", "--sub-account", "acme", "--country", "Singapore"}, 1, "400 Bad Request: --country: "},
		{"bad policy", root, []string{"numbers", "add", "+6560000009", "--sub-account", "acme", "--out-of-session-action", "sing"}, 1, "400 Bad Request: --out-of-session-action: "},
		{"bad number", root, []string{"numbers", "add", "12ab", "--sub-account", "acme"}, 1, `400 Bad Request: NUMBER: "12ab"`},
		{"bad expires-at", root, []string{"sessions", "create", "--virtual-number", "+6590000002", "--participants", "+6581000001,+6582000001", "--expires-at", "tomorrow"}, 1, `400 Bad Request: --expires-at: "tomorrow" is not an RFC 3339 time`},
		{"ttl and expires-at", root, []string{"sessions", "create", "--virtual-number", "+6590000002", "--participants", "+6581000001,+6582000001", "--ttl", "1h", "--expires-at", at.Format(time.RFC3339)}, 1, "400 Bad Request: --expires-at: give ttlSeconds or expiresAt, not both"},
		{"pool exhausted", acme, []string{"sessions", "create", "--participants", "+6581000001,+6582000099"}, 1, "exhausted"},
		{"another tenant's session", acme, []string{"sessions", "get", other.ID}, 1, "404 Not Found: session not found"},
		{"another tenant's number", acme, []string{"numbers", "get", "+6560000003"}, 1, "404 Not Found"},
		{"another tenant's pool", acme, []string{"numbers", "add", "+6560000004", "--sub-account", "globex"}, 1, "404 Not Found"},
		{"wrong token", "nope", []string{"sessions", "list"}, 1, "401 Unauthorized"},
		{"interactions without ClickHouse", root, []string{"sessions", "interactions", s.ID}, 1, "interactions need ClickHouse (--clickhouse-addr)"},
		{"remove with open sessions", root, []string{"numbers", "remove", "+6560000001"}, 1, "409 Conflict: number has open sessions"},
		{"bad status filter", root, []string{"numbers", "list", "--status", "good"}, 1, "400 Bad Request: --status: "},
		{"bad session status filter", root, []string{"sessions", "list", "--status", "good"}, 1, "400 Bad Request: --status: "},
		{"bad limit", root, []string{"sessions", "list", "--limit", "5000"}, 1, `400 Bad Request: --limit: "5000"`},
		{"bad cursor", root, []string{"numbers", "list", "--cursor", "nonsense"}, 1, "400 Bad Request: --cursor: "},
		{"update with nothing", root, []string{"sessions", "update", s.ID}, 2, "nothing to change"},
		{"get without id", root, []string{"sessions", "get"}, 2, "exactly one argument"},
		{"a flag of another verb", root, []string{"sessions", "get", "--ref", "x", s.ID}, 2, "does not take --ref"},
		{"unknown verb", root, []string{"sessions", "extend", s.ID}, 2, "unknown action"},
		{"numbers unknown verb", root, []string{"numbers", "delete", "+6560000001"}, 2, "unknown action"},
		{"fractional ttl", root, []string{"sessions", "create", "--virtual-number", "+6590000002", "--participants", "+6581000001,+6582000001", "--ttl", "1.5s"}, 2, "--ttl 1.5s: give whole seconds"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := cliCode(t, as(tt.token, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d with %q", code, stderr, tt.code, tt.want)
			}
		})
	}

	// remove --force closes the sessions on the number; delete removes a
	// session at once.
	if out := run(nil, acme, "numbers", "remove", "--force", "+6560000001"); !strings.Contains(out, "204") {
		t.Errorf("numbers remove --force printed %q", out)
	}
	run(&u, acme, "sessions", "get", s.ID)
	if u.Status != "closed" {
		t.Errorf("session on a removed number: %+v, want closed", u)
	}
	// sessions list -o ids | xargs -n1 callflow sessions close
	id := strings.TrimSpace(run(nil, root, "sessions", "create", "--virtual-number", "+6590000003", "--participants", "+6581000004,+6582000004", "-o", "ids"))
	open := strings.Fields(run(nil, root, "sessions", "list", "-o", "ids"))
	if !slices.Contains(open, id) {
		t.Errorf("sessions list -o ids: %q lacks %s, created with -o ids", open, id)
	}
	for _, id := range open {
		run(nil, root, "sessions", "close", id)
	}
	if out := run(nil, root, "sessions", "list", "-o", "ids"); out != "" {
		t.Errorf("open sessions after closing every id listed: %q", out)
	}
	if out := run(nil, root, "sessions", "delete", other.ID); !strings.Contains(out, "204") {
		t.Errorf("sessions delete printed %q", out)
	}
	if _, stderr, code := cliCode(t, as(root, "sessions", "get", other.ID)...); code != 1 || !strings.Contains(stderr, "404") {
		t.Errorf("get after delete: exit %d %q, want 404", code, stderr)
	}
}
