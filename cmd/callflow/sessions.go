package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// sessionsCommand is `callflow sessions`: its actions, their flags and
// arguments.
var sessionsCommand = verbCommand{name: "sessions", verbs: []verb{
	{name: "create", synopsis: `--participants A,B (--virtual-number N | --sub-account S [--country CC])
         [--ttl D | --expires-at T] [--ttl-mode absolute|idle] [--max-calls N] [--ref R]
         [--call-recording] [--greeting-text T [--greeting-voice V]] [--pin P|auto] [-o FORMAT]`,
		flags: []string{"virtual-number", "participants", "sub-account", "country", "ttl", "ttl-mode", "expires-at",
			"max-calls", "ref", "call-recording", "greeting-text", "greeting-voice", "pin"}, output: true},
	{name: "get", synopsis: "ID [-o FORMAT]", arg: "ID", output: true},
	{name: "list", synopsis: `[--sub-account S] [--virtual-number N] [--participant P] [--ref R] [--pin P]
       [--status open|closed|all] [--limit N] [--cursor C | --all] [-o FORMAT]`,
		flags: []string{"sub-account", "virtual-number", "participant", "ref", "pin", "status", "limit", "cursor", "all"}, output: true},
	{name: "update", synopsis: `ID [--ttl D | --expires-at T] [--greeting-text T [--greeting-voice V] | --no-greeting]
            [--call-recording=true|false] [--max-calls N] [--ref R] [-o FORMAT]`,
		flags: []string{"ttl", "expires-at", "greeting-text", "greeting-voice", "no-greeting", "call-recording", "max-calls", "ref"},
		arg:   "ID", output: true},
	{name: "close", synopsis: "ID [-o FORMAT]", arg: "ID", output: true},
	{name: "delete", synopsis: "ID", arg: "ID"},
	{name: "interactions", synopsis: "ID [--limit N] [--cursor C | --all]", flags: []string{"limit", "cursor", "all"}, arg: "ID"},
}, about: `Without a virtual number, create allocates one from the sub-account's pool.
update sends only the flags given. --output (-o) prints json (the default: the
API's answer), a table, or ids (one a line: callflow sessions list -o ids |
xargs -n1 callflow sessions close). Errors are the admin API's, naming the flag
that set the field it refuses, and exit 1.`}

// sessionFlags names the flag or argument behind each field of the
// sessions API, for its errors.
var sessionFlags = map[string]string{
	"id": "ID", "participants": "--participants", "virtualNumber": "--virtual-number", "subAccountId": "--sub-account",
	"countryCode": "--country", "ttlSeconds": "--ttl", "ttlMode": "--ttl-mode", "expiresAt": "--expires-at",
	"maxCalls": "--max-calls", "ref": "--ref", "callRecording": "--call-recording", "greeting": "--greeting-text",
	"greeting.text": "--greeting-text", "greeting.voiceProfile": "--greeting-voice", "pin": "--pin",
	"participant": "--participant", "status": "--status", "limit": "--limit", "cursor": "--cursor",
}

// runSessions is a client of the admin API's /v1/sessions: it never writes
// the bucket itself, so the API's checks, tenants and audit records
// always apply.
func runSessions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sessions", "sessions", stderr)
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
	output := registerOutput(fs)
	v, given, err := sessionsCommand.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	c := client()
	c.flags = sessionFlags
	id := ""
	if v.arg != "" {
		id = url.PathEscape(fs.Arg(0))
	}
	greeting := func() map[string]any {
		return map[string]any{"text": *greetText, "voiceProfile": *greetVoice}
	}
	switch v.name {
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
			secs, err := wholeSeconds("ttl", *ttl, stderr)
			if err != nil {
				return err
			}
			body["ttlSeconds"] = secs
		}
		if given["greeting-text"] {
			body["greeting"] = greeting()
		}
		return c.print(ctx, http.MethodPost, "/v1/sessions", body, sessionResource, *output, stdout)
	case "get":
		return c.print(ctx, http.MethodGet, "/v1/sessions/"+id, nil, sessionResource, *output, stdout)
	case "list":
		q := url.Values{}
		for name, v := range map[string]string{"sub-account": *subAccount, "virtual-number": *virtual, "participant": *participant, "ref": *ref, "pin": *pin, "status": *status} {
			if given[name] {
				q.Set(flagField[name], v)
			}
		}
		return c.list(ctx, "/v1/sessions", sessionResource, q, pages, *output, stdout, stderr)
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
			secs, err := wholeSeconds("ttl", *ttl, stderr)
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
		return c.print(ctx, http.MethodPatch, "/v1/sessions/"+id, body, sessionResource, *output, stdout)
	case "close":
		return c.print(ctx, http.MethodPatch, "/v1/sessions/"+id, map[string]any{"status": "closed"}, sessionResource, *output, stdout)
	case "delete":
		return c.print(ctx, http.MethodDelete, "/v1/sessions/"+id, nil, sessionResource, *output, stdout)
	default: // interactions
		return c.list(ctx, "/v1/sessions/"+id+"/interactions", resource{list: "interactions"}, url.Values{}, pages, outputJSON, stdout, stderr)
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

// wholeSeconds is d in seconds; a fraction of a second is refused, naming
// the flag, rather than rounded (a usage error).
func wholeSeconds(flagName string, d time.Duration, stderr io.Writer) (int64, error) {
	if d%time.Second != 0 {
		fmt.Fprintf(stderr, "callflow: --%s %s: give whole seconds (the API keeps seconds; %s would be cut to %s)\n", flagName, d, d, d.Truncate(time.Second))
		return 0, errUsage
	}
	return int64(d / time.Second), nil
}
