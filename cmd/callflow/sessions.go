package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const sessionsSynopsis = `sessions <create|get|list|update|close|delete|interactions> [flags] [id]

  create --participants A,B (--virtual-number N | --sub-account S [--country CC])
         [--ttl D | --expires-at T] [--ttl-mode absolute|idle] [--max-calls N] [--ref R]
         [--call-recording] [--greeting-text T [--greeting-voice V]] [--pin P|auto]
  get ID
  list [--sub-account S] [--virtual-number N] [--participant P] [--ref R] [--pin P]
       [--status open|closed|all] [--limit N] [--cursor C | --all]
  update ID [--ttl D | --expires-at T] [--greeting-text T [--greeting-voice V] | --no-greeting]
            [--call-recording=true|false] [--max-calls N] [--ref R]
  close ID
  delete ID
  interactions ID [--limit N] [--cursor C | --all]

Without a virtual number, create allocates one from the sub-account's pool.
update sends only the flags given. Errors are the admin API's, and exit 1.`

// Flags every verb of sessions and numbers takes.
var clientFlags = []string{"admin-url", "admin-token", "timeout"}

// sessionVerbs lists each verb's flags besides clientFlags, and whether it
// takes a session id.
var sessionVerbs = map[string]struct {
	flags []string
	id    bool
}{
	"create": {[]string{"virtual-number", "participants", "sub-account", "country", "ttl", "ttl-mode", "expires-at",
		"max-calls", "ref", "call-recording", "greeting-text", "greeting-voice", "pin"}, false},
	"get":          {nil, true},
	"list":         {[]string{"sub-account", "virtual-number", "participant", "ref", "pin", "status", "limit", "cursor", "all"}, false},
	"update":       {[]string{"ttl", "expires-at", "greeting-text", "greeting-voice", "no-greeting", "call-recording", "max-calls", "ref"}, true},
	"close":        {nil, true},
	"delete":       {nil, true},
	"interactions": {[]string{"limit", "cursor", "all"}, true},
}

// runSessions is a client of the admin API's /v1/sessions: it never writes
// the bucket itself, so the API's checks, tenants and audit records
// always apply.
func runSessions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sessions", sessionsSynopsis, stderr)
	client := clientFlagSet(fs)
	virtual := fs.String("virtual-number", "", "create, list: the virtual number (create: omit it to allocate one from --sub-account's pool)")
	participants := fs.String("participants", "", "create: the two participants, comma-separated")
	subAccount := fs.String("sub-account", "", "create, list: the 8x8 sub-account (subAccountId)")
	country := fs.String("country", "", "create: allocate a number of this country (ISO 3166 alpha-2, e.g. SG)")
	ttl := fs.Duration("ttl", 0, "create, update: session lifetime, whole seconds (0: no expiry)")
	ttlMode := fs.String("ttl-mode", "", "create: absolute (the TTL runs from creation, the default) or idle (from the last connected call)")
	expiresAt := fs.String("expires-at", "", "create, update: when the session closes, RFC 3339 (instead of --ttl)")
	maxCalls := fs.Int64("max-calls", 0, "create, update: close the session after that many connected calls (0: no limit)")
	ref := fs.String("ref", "", "create, update, list: the integrator's reference (an order or ticket id)")
	pin := fs.String("pin", "", "create, list: the session's PIN (4 to 8 digits, or auto to have one generated), for callers routed by a flow's pin step")
	recording := fs.Bool("call-recording", false, "create, update: record the connected calls")
	greetText := fs.String("greeting-text", "", "create, update: said to the caller before connecting")
	greetVoice := fs.String("greeting-voice", "en-US-ZiraRUS", "create, update: voice profile of the greeting")
	noGreeting := fs.Bool("no-greeting", false, "update: remove the greeting")
	participant := fs.String("participant", "", "list: sessions with this participant")
	status := fs.String("status", "", "list: open (default), closed or all")
	pages := pageFlags(fs)
	if len(args) == 0 {
		fs.Usage()
		return errUsage
	}
	verb := args[0]
	spec, ok := sessionVerbs[verb]
	if !ok {
		fmt.Fprintf(stderr, "callflow sessions: unknown action %q\n", verb)
		fs.Usage()
		return errUsage
	}
	given, err := parseVerb(fs, "sessions", verb, args[1:], spec.flags, spec.id, stderr)
	if err != nil {
		return err
	}
	c := client()
	id := ""
	if spec.id {
		id = url.PathEscape(fs.Arg(0))
	}
	greeting := func() map[string]any {
		return map[string]any{"text": *greetText, "voiceProfile": *greetVoice}
	}
	switch verb {
	case "create":
		body := map[string]any{"participants": splitList(*participants)}
		set := func(name string, v any) {
			if given[name] {
				body[flagField[name]] = v
			}
		}
		set("virtual-number", *virtual)
		set("sub-account", *subAccount)
		set("country", *country)
		set("ttl-mode", *ttlMode)
		set("expires-at", *expiresAt)
		set("max-calls", *maxCalls)
		set("ref", *ref)
		set("pin", *pin)
		set("call-recording", *recording)
		if given["ttl"] {
			secs, err := wholeSeconds(*ttl)
			if err != nil {
				return err
			}
			body["ttlSeconds"] = secs
		}
		if given["greeting-text"] {
			body["greeting"] = greeting()
		}
		return c.print(ctx, http.MethodPost, "/v1/sessions", body, stdout)
	case "get":
		return c.print(ctx, http.MethodGet, "/v1/sessions/"+id, nil, stdout)
	case "list":
		q := url.Values{}
		for name, v := range map[string]string{"sub-account": *subAccount, "virtual-number": *virtual, "participant": *participant, "ref": *ref, "pin": *pin, "status": *status} {
			if given[name] {
				q.Set(flagField[name], v)
			}
		}
		return c.list(ctx, "/v1/sessions", "sessions", q, pages, stdout)
	case "update":
		body := map[string]any{}
		set := func(name string, v any) {
			if given[name] {
				body[flagField[name]] = v
			}
		}
		set("expires-at", *expiresAt)
		set("max-calls", *maxCalls)
		set("ref", *ref)
		set("call-recording", *recording)
		if given["ttl"] {
			secs, err := wholeSeconds(*ttl)
			if err != nil {
				return err
			}
			body["ttlSeconds"] = secs
		}
		switch {
		case given["no-greeting"] && given["greeting-text"]:
			fmt.Fprintln(stderr, "callflow sessions update: --greeting-text or --no-greeting, not both")
			return errUsage
		case given["no-greeting"] && *noGreeting:
			body["greeting"] = nil
		case given["greeting-text"]:
			body["greeting"] = greeting()
		}
		if len(body) == 0 {
			fmt.Fprintln(stderr, "callflow sessions update: nothing to change; give --ttl, --expires-at, --greeting-text, --no-greeting, --call-recording, --max-calls or --ref (close: callflow sessions close ID)")
			return errUsage
		}
		return c.print(ctx, http.MethodPatch, "/v1/sessions/"+id, body, stdout)
	case "close":
		return c.print(ctx, http.MethodPatch, "/v1/sessions/"+id, map[string]any{"status": "closed"}, stdout)
	case "delete":
		return c.print(ctx, http.MethodDelete, "/v1/sessions/"+id, nil, stdout)
	default: // interactions
		return c.list(ctx, "/v1/sessions/"+id+"/interactions", "interactions", url.Values{}, pages, stdout)
	}
}

// flagField names the API field or query parameter each flag sets.
var flagField = map[string]string{
	"virtual-number": "virtualNumber", "sub-account": "subAccountId", "country": "countryCode",
	"ttl-mode": "ttlMode", "expires-at": "expiresAt", "max-calls": "maxCalls", "ref": "ref",
	"call-recording": "callRecording", "participant": "participant", "status": "status", "pin": "pin",
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// wholeSeconds is d in seconds; a fraction of a second is refused rather
// than rounded.
func wholeSeconds(d time.Duration) (int64, error) {
	if d%time.Second != 0 {
		return 0, fmt.Errorf("--ttl %s: give whole seconds", d)
	}
	return int64(d / time.Second), nil
}

// clientFlagSet registers the flags that reach the admin API and returns
// the client they make, once parsed.
func clientFlagSet(fs *flag.FlagSet) func() *apiClient {
	adminURL := fs.String("admin-url", "http://127.0.0.1:8081", "base URL of the admin API")
	token := fs.String("admin-token", "", "bearer token for the admin API (the TOKEN part of a TOKEN@SUB1/SUB2 setting)")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	return func() *apiClient {
		return &apiClient{base: strings.TrimRight(*adminURL, "/"), token: *token, http: &http.Client{Timeout: *timeout}}
	}
}

// pages is how much of a list to fetch.
type pages struct {
	limit  *int
	cursor *string
	all    *bool
}

func pageFlags(fs *flag.FlagSet) pages {
	return pages{
		limit:  fs.Int("limit", 0, "list, interactions: items per page (API default 100, at most 1000)"),
		cursor: fs.String("cursor", "", "list, interactions: the page after this cursor (the nextCursor of the page before)"),
		all:    fs.Bool("all", false, "list, interactions: follow nextCursor and print every page as one list"),
	}
}

// parseVerb parses the flags and arguments of verb: flags may come before
// or after the argument; only the flags of the verb (and clientFlags) may
// be given on the command line; a verb with an argument needs exactly one.
// It returns the flags given on the command line.
func parseVerb(fs *flag.FlagSet, cmd, verb string, args, flags []string, wantArg bool, stderr io.Writer) (map[string]bool, error) {
	ordered, given := flagsFirst(fs, args)
	for name := range given {
		if !slices.Contains(flags, name) && !slices.Contains(clientFlags, name) && name != "help" && name != "h" {
			fmt.Fprintf(stderr, "callflow %s %s does not take --%s\n", cmd, verb, name)
			return nil, errUsage
		}
	}
	if err := parseFlags(fs, ordered, true); err != nil {
		return nil, err
	}
	switch {
	case wantArg && fs.NArg() != 1:
		fmt.Fprintf(stderr, "callflow %s %s needs exactly one argument, got %d\n", cmd, verb, fs.NArg())
		return nil, errUsage
	case !wantArg && fs.NArg() != 0:
		fmt.Fprintf(stderr, "callflow %s %s: unexpected argument %q\n", cmd, verb, fs.Arg(0))
		return nil, errUsage
	}
	return given, nil
}

// flagsFirst moves the flags of args before their positional arguments
// (the flag package stops at the first of them), and returns the names of
// the flags given.
func flagsFirst(fs *flag.FlagSet, args []string) ([]string, map[string]bool) {
	var flags, positional []string
	given := map[string]bool{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		given[name] = true
		flags = append(flags, a)
		f := fs.Lookup(name)
		if f == nil || hasValue {
			continue // the flag package reports an unknown one
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return append(append(flags, "--"), positional...), given
}

type apiClient struct {
	base, token string
	http        *http.Client
}

// apiError is an error answer of the admin API.
type apiError struct {
	status  string
	message string
}

func (e *apiError) Error() string {
	if e.message == "" {
		return e.status
	}
	return e.status + ": " + e.message
}

// send sends one request and returns the answer's body; an error status
// becomes an *apiError carrying the API's message.
func (c *apiClient) send(ctx context.Context, method, path string, body any) (string, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return "", nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return "", nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(out, &e)
		return "", nil, &apiError{status: resp.Status, message: e.Error}
	}
	return resp.Status, out, nil
}

// print sends one request and prints the JSON answer, indented (or the
// status of an answer without a body).
func (c *apiClient) print(ctx context.Context, method, path string, body any, stdout io.Writer) error {
	status, out, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	if len(out) == 0 {
		_, err = fmt.Fprintf(stdout, "%s\n", status)
		return err
	}
	return printJSON(stdout, out)
}

func printJSON(stdout io.Writer, b []byte) error {
	var pretty bytes.Buffer
	if json.Indent(&pretty, b, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(b)
	}
	_, err := fmt.Fprintln(stdout, strings.TrimRight(pretty.String(), "\n"))
	return err
}

// maxPages bounds --all: a list that never ends is a bug, not a reason to
// loop forever.
const maxPages = 100_000

// list prints a list endpoint's page (items under field), or with --all
// every page as one list.
func (c *apiClient) list(ctx context.Context, path, field string, q url.Values, p pages, stdout io.Writer) error {
	if *p.limit != 0 {
		q.Set("limit", strconv.Itoa(*p.limit))
	}
	if *p.cursor != "" {
		q.Set("cursor", *p.cursor)
	}
	query := func() string {
		if len(q) == 0 {
			return path
		}
		return path + "?" + q.Encode()
	}
	if !*p.all {
		return c.print(ctx, http.MethodGet, query(), nil, stdout)
	}
	var all []json.RawMessage
	for range maxPages {
		_, out, err := c.send(ctx, http.MethodGet, query(), nil)
		if err != nil {
			return err
		}
		var page map[string]json.RawMessage
		if err := json.Unmarshal(out, &page); err != nil {
			return fmt.Errorf("answer is not a list: %w", err)
		}
		var items []json.RawMessage
		if err := json.Unmarshal(page[field], &items); err != nil {
			return fmt.Errorf("answer has no %s list: %w", field, err)
		}
		all = append(all, items...)
		var next *string
		if err := json.Unmarshal(page["nextCursor"], &next); err != nil {
			return fmt.Errorf("answer's nextCursor: %w", err)
		}
		if next == nil || *next == "" {
			if all == nil {
				all = []json.RawMessage{}
			}
			b, err := json.Marshal(map[string]any{field: all, "nextCursor": nil})
			if err != nil {
				return err
			}
			return printJSON(stdout, b)
		}
		q.Set("cursor", *next)
	}
	return errors.New("the list did not end after " + strconv.Itoa(maxPages) + " pages")
}
