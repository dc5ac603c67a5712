package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// numbersCommand is `callflow numbers`: its actions, their flags and
// arguments.
var numbersCommand = verbCommand{name: "numbers", verbs: []verb{
	{name: "add", synopsis: `NUMBER [--sub-account S] [--country CC] [--status Active|Unhealthy|Expiring|Inactive]
             [--out-of-session-action hangup|forward [--out-of-session-destination N]
              [--out-of-session-text T] [--out-of-session-voice V] [--out-of-session-language L]
             | --no-out-of-session] [--flow ID | --no-flow] [-o FORMAT]`,
		flags: []string{"sub-account", "country", "status", "out-of-session-action", "out-of-session-destination",
			"out-of-session-text", "out-of-session-voice", "out-of-session-language", "no-out-of-session", "flow", "no-flow"},
		arg: "NUMBER", output: true},
	{name: "get", synopsis: "NUMBER [-o FORMAT]", arg: "NUMBER", output: true},
	{name: "list", synopsis: "[--sub-account S] [--status S] [--limit N] [--cursor C | --all] [-o FORMAT]",
		flags: []string{"sub-account", "status", "limit", "cursor", "all"}, output: true},
	{name: "remove", synopsis: "NUMBER [--force]", flags: []string{"force"}, arg: "NUMBER"},
}, about: `add registers a number in the pool (--sub-account required then) or
updates it, sending only the flags given; 8x8's number-health webhooks keep
its status current. remove refuses while sessions are open on the number,
unless --force, which closes them. --output (-o) prints json (the default),
a table, or ids (the numbers, one a line). Errors are the admin API's, naming
the flag that set the field it refuses, and exit 1.`}

// numberFlags names the flag or argument behind each field of the
// numbers API, for its errors.
var numberFlags = map[string]string{
	"number": "NUMBER", "subAccountId": "--sub-account", "countryCode": "--country", "status": "--status",
	"outOfSession": "--out-of-session-action", "outOfSession.action": "--out-of-session-action",
	"outOfSession.destination": "--out-of-session-destination", "outOfSession.say": "--out-of-session-text",
	"outOfSession.say.text": "--out-of-session-text", "outOfSession.say.voiceProfile": "--out-of-session-voice",
	"outOfSession.say.language": "--out-of-session-language", "flow": "--flow", "force": "--force",
	"limit": "--limit", "cursor": "--cursor",
}

// runNumbers is a client of the admin API's /v1/numbers: the virtual
// numbers of the pool that sessions are allocated from.
func runNumbers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("numbers", "numbers", stderr)
	client := clientFlagSet(fs)
	subAccount := fs.String("sub-account", "", "add, list: the 8x8 sub-account the number belongs to (subAccountId)")
	country := fs.String("country", "", "add: the number's country (ISO 3166 alpha-2, e.g. SG)")
	status := fs.String("status", "", "add, list: Active, Unhealthy, Expiring or Inactive (add: a new number is Active)")
	action := fs.String("out-of-session-action", "", "add: the number's policy for callers in no open session: hangup or forward")
	destination := fs.String("out-of-session-destination", "", "add: where a forward policy connects the caller")
	sayText := fs.String("out-of-session-text", "", "add: what the policy says first")
	sayVoice := fs.String("out-of-session-voice", "", "add: voice profile of --out-of-session-text")
	sayLanguage := fs.String("out-of-session-language", "", "add: language of --out-of-session-text")
	noPolicy := fs.Bool("no-out-of-session", false, "add: remove the number's policy (the sub-account's applies)")
	force := fs.Bool("force", false, "remove: close the sessions open on the number and remove it")
	flow := fs.String("flow", "", "add: attach this IVR flow to the number (calls to it start the flow)")
	noFlow := fs.Bool("no-flow", false, "add: detach the number's flow")
	pages := pageFlags(fs)
	output := registerOutput(fs)
	v, given, err := numbersCommand.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	c := client()
	c.flags = numberFlags
	number := ""
	if v.arg != "" {
		number = url.PathEscape(fs.Arg(0))
	}
	switch v.name {
	case "add":
		body := map[string]any{}
		for name, v := range map[string]string{"sub-account": *subAccount, "country": *country, "status": *status} {
			if given[name] {
				body[flagField[name]] = v
			}
		}
		policy := given["out-of-session-action"] || given["out-of-session-destination"] ||
			given["out-of-session-text"] || given["out-of-session-voice"] || given["out-of-session-language"]
		switch {
		case policy && given["no-out-of-session"]:
			fmt.Fprintln(stderr, "callflow numbers add: --out-of-session-* or --no-out-of-session, not both")
			return errUsage
		case given["no-out-of-session"] && *noPolicy:
			body["outOfSession"] = nil
		case policy:
			p := map[string]any{"action": *action}
			if *destination != "" {
				p["destination"] = *destination
			}
			if *sayText != "" || *sayVoice != "" || *sayLanguage != "" {
				say := map[string]any{"text": *sayText}
				if *sayVoice != "" {
					say["voiceProfile"] = *sayVoice
				}
				if *sayLanguage != "" {
					say["language"] = *sayLanguage
				}
				p["say"] = say
			}
			body["outOfSession"] = p
		}
		switch {
		case given["flow"] && given["no-flow"]:
			fmt.Fprintln(stderr, "callflow numbers add: --flow or --no-flow, not both")
			return errUsage
		case given["flow"]:
			body["flow"] = *flow
		case given["no-flow"] && *noFlow:
			body["flow"] = nil
		}
		return c.print(ctx, http.MethodPut, "/v1/numbers/"+number, body, numberResource, *output, stdout)
	case "get":
		return c.print(ctx, http.MethodGet, "/v1/numbers/"+number, nil, numberResource, *output, stdout)
	case "list":
		q := url.Values{}
		for name, v := range map[string]string{"sub-account": *subAccount, "status": *status} {
			if given[name] {
				q.Set(flagField[name], v)
			}
		}
		return c.list(ctx, "/v1/numbers", numberResource, q, pages, *output, stdout, stderr)
	default: // remove
		path := "/v1/numbers/" + number
		if given["force"] && *force {
			path += "?force=true"
		}
		return c.print(ctx, http.MethodDelete, path, nil, numberResource, outputJSON, stdout)
	}
}
