package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.yaml.in/yaml/v3"
)

// flowsCommand is `callflow flows`: its actions, their flags and
// arguments.
var flowsCommand = verbCommand{name: "flows", verbs: []verb{
	{name: "apply", synopsis: "-f FILE|DIR [-f FILE|DIR ...]", flags: []string{"f", "file"}},
	{name: "get", synopsis: "ID [-o FORMAT]", arg: "ID", output: true},
	{name: "list", synopsis: "[--sub-account S] [--limit N] [--cursor C | --all] [-o FORMAT]",
		flags: []string{"sub-account", "limit", "cursor", "all"}, output: true},
	{name: "delete", synopsis: "ID [--force]", flags: []string{"force"}, arg: "ID"},
	{name: "simulate", synopsis: `--number N --from F [--sub-account S] [--digits D,D,...]
           [--nats-url URL] [--subject S] [--max-steps N]`,
		flags: []string{"number", "from", "sub-account", "digits", "subject", "max-steps",
			"nats-url", "nats-user", "nats-password", "nats-password-file", "nats-token", "nats-token-file",
			"nats-nkey", "nats-creds", "nats-tls-ca", "nats-tls-cert", "nats-tls-key"}},
}, about: `apply stores every flow of the files given (JSON or YAML, several flows per
file as a list, YAML documents or JSON values one after the other; a
directory: its *.json, *.yaml and *.yml files) with PUT /v1/flows/{id}, each
flow naming its "id". Every file is read before anything is stored. A flow's
"version", when given, must be its current one (a change made meanwhile is
not overwritten). In YAML, quote phone numbers ("+6560000001": unquoted, it
is a number, which the API refuses). Errors are the admin API's, and exit 1;
apply's name the flow's file and the field in it.

get and list print json (the default), a table or ids (--output, -o).

simulate walks a call through a running decider over NATS, as 8x8 would: a
CALL_RECEIVED from --from to --number, then an ACTION_COMPLETED with the
answer's clientActionId and the next --digits (an empty entry: the caller
pressed nothing), printing each answer, until the call ends (hangup,
makeCall), the digits run out or --max-steps answers.`}

// flowFlags names the flag or argument behind the fields of the flows
// API's paths and queries, for its errors (apply's errors are about the
// file, and keep the API's field names).
var flowFlags = map[string]string{
	"id": "ID", "subAccountId": "--sub-account", "force": "--force", "limit": "--limit", "cursor": "--cursor",
}

// fileList is a flag given once per file or directory.
type fileList []string

func (l *fileList) String() string     { return strings.Join(*l, ",") }
func (l *fileList) Set(v string) error { *l = append(*l, v); return nil }

// runFlows is a client of the admin API's /v1/flows, and of the deciders
// (simulate).
func runFlows(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("flows", "flows", stderr)
	client := clientFlagSet(fs)
	var files fileList
	fs.Var(&files, "f", "apply: a flow file (JSON or YAML) or a directory of them; repeat for more")
	fs.Var(&files, "file", "apply: as -f")
	subAccount := fs.String("sub-account", "", "list: flows of this sub-account; simulate: the call's subAccountId")
	force := fs.Bool("force", false, "delete: detach the flow from its numbers and sub-accounts first")
	number := fs.String("number", "", "simulate: the virtual number called")
	from := fs.String("from", "", "simulate: the caller's number")
	digits := fs.String("digits", "", "simulate: what the caller presses at each prompt, comma-separated (2,1234#); an empty entry presses nothing")
	subject := fs.String("subject", wire.DecideSubject, "simulate: the subject the deciders listen on")
	maxSteps := fs.Int("max-steps", 20, "simulate: stop after this many answers")
	var o options
	fs.StringVar(&o.natsURL, "nats-url", "nats://127.0.0.1:4222", "simulate: NATS server URLs, comma-separated")
	fs.StringVar(&o.natsUser, "nats-user", "", "simulate: NATS user (with --nats-password)")
	o.secretVar(fs, &o.natsPassword, "nats-password", "simulate: NATS password of --nats-user")
	o.secretVar(fs, &o.natsToken, "nats-token", "simulate: NATS authentication token")
	fs.StringVar(&o.natsNKey, "nats-nkey", "", "simulate: file holding the NKey seed to authenticate to NATS with")
	fs.StringVar(&o.natsCreds, "nats-creds", "", "simulate: NATS credentials file (.creds)")
	fs.StringVar(&o.natsTLSCA, "nats-tls-ca", "", "simulate: CA certificate file (PEM) that verifies the NATS servers")
	fs.StringVar(&o.natsTLSCert, "nats-tls-cert", "", "simulate: client certificate file (PEM) presented to NATS")
	fs.StringVar(&o.natsTLSKey, "nats-tls-key", "", "simulate: private key file (PEM) of --nats-tls-cert")
	pages := pageFlags(fs)
	output := registerOutput(fs)
	v, given, err := flowsCommand.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	c := client()
	if v.name != "apply" {
		c.flags = flowFlags
	}
	id := ""
	if v.arg != "" {
		id = url.PathEscape(fs.Arg(0))
	}
	switch v.name {
	case "apply":
		if len(files) == 0 {
			fmt.Fprintln(stderr, "callflow flows apply: give the flows with -f FILE (or a directory)")
			return errUsage
		}
		return applyFlows(ctx, c, files, stdout, stderr)
	case "get":
		return c.print(ctx, http.MethodGet, "/v1/flows/"+id, nil, flowResource, *output, stdout)
	case "list":
		q := url.Values{}
		if given["sub-account"] {
			q.Set("subAccountId", *subAccount)
		}
		return c.list(ctx, "/v1/flows", flowResource, q, pages, *output, stdout, stderr)
	case "delete":
		path := "/v1/flows/" + id
		if given["force"] && *force {
			path += "?force=true"
		}
		return c.print(ctx, http.MethodDelete, path, nil, flowResource, outputJSON, stdout)
	default: // simulate
		sim := simulation{number: *number, from: *from, subAccount: *subAccount, subject: *subject, maxSteps: *maxSteps, timeout: c.http.Timeout}
		switch {
		case sim.number == "" || sim.from == "":
			fmt.Fprintln(stderr, "callflow flows simulate: give --number (the virtual number called) and --from (the caller)")
			return errUsage
		case sim.maxSteps < 1:
			fmt.Fprintln(stderr, "callflow flows simulate: --max-steps must be at least 1")
			return errUsage
		}
		if sim.digits, err = parseDigits(*digits); err != nil {
			fmt.Fprintf(stderr, "callflow flows simulate: --digits: %v\n", err)
			return errUsage
		}
		if err := o.readSecrets(); err != nil {
			return err
		}
		cfg := o.connConfig()
		cfg.Name = "callflow flows simulate"
		nc, err := broker.Connect(cfg)
		if err != nil {
			return err
		}
		defer nc.Close()
		sim.natsURL = nc.ConnectedUrlRedacted()
		return sim.run(ctx, nc, stdout)
	}
}

// flowDoc is one flow read from a file, as the JSON the API takes.
type flowDoc struct {
	where string // file, and the flow's place in it
	id    string
	body  json.RawMessage
}

// applyFlows reads every flow of files, then PUTs them one by one; a flow
// the API refuses does not stop the others.
func applyFlows(ctx context.Context, c *apiClient, files []string, stdout, stderr io.Writer) error {
	var docs []flowDoc
	for _, f := range files {
		d, err := readFlowFiles(f)
		if err != nil {
			return err
		}
		docs = append(docs, d...)
	}
	if len(docs) == 0 {
		return fmt.Errorf("no flow in %s", strings.Join(files, ", "))
	}
	seen := map[string]string{}
	for _, d := range docs {
		if prev, ok := seen[d.id]; ok {
			return fmt.Errorf("%s: flow %q is also in %s", d.where, d.id, prev)
		}
		seen[d.id] = d.where
	}
	failed := 0
	for _, d := range docs {
		status, out, err := c.send(ctx, http.MethodPut, "/v1/flows/"+url.PathEscape(d.id), d.body)
		if err != nil {
			var api *apiError
			if !errors.As(err, &api) {
				return fmt.Errorf("flow %q (%s): %w", d.id, d.where, err)
			}
			fmt.Fprintf(stderr, "callflow flows apply: flow %q (%s): %v\n", d.id, d.where, err)
			failed++
			continue
		}
		var got struct {
			ID      string `json:"id"`
			Version uint64 `json:"version"`
		}
		_ = json.Unmarshal(out, &got)
		what := "updated"
		if strings.HasPrefix(status, "201") {
			what = "created"
		}
		fmt.Fprintf(stdout, "flow %s version %d %s (%s)\n", got.ID, got.Version, what, d.where)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d flows not applied", failed, len(docs))
	}
	return nil
}

// readFlowFiles reads the flows of a file, or of the *.json, *.yaml and
// *.yml files of a directory (by name).
func readFlowFiles(path string) ([]flowDoc, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return readFlowFile(path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []flowDoc
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".json", ".yaml", ".yml":
		default:
			continue
		}
		if e.IsDir() {
			continue
		}
		d, err := readFlowFile(filepath.Join(path, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, d...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no flow file (*.json, *.yaml, *.yml)", path)
	}
	return out, nil
}

// maxFlowFile bounds a flow file: the API takes flows of up to 64 KiB.
const maxFlowFile = 16 << 20

// readFlowFile reads the flows of one file: a .json file is JSON values
// one after the other, anything else YAML documents; each value is a flow
// or a list of flows.
func readFlowFile(path string) ([]flowDoc, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) > maxFlowFile {
		return nil, fmt.Errorf("%s: larger than %d MiB", path, maxFlowFile>>20)
	}
	var values []json.RawMessage
	if strings.EqualFold(filepath.Ext(path), ".json") {
		dec := json.NewDecoder(bytes.NewReader(b))
		for {
			var v json.RawMessage
			if err := dec.Decode(&v); err == io.EOF {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			values = append(values, v)
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var n yaml.Node
			if err := dec.Decode(&n); err == io.EOF {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			v, err := yamlJSON(&n)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if v == nil {
				continue // an empty document
			}
			raw, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			values = append(values, raw)
		}
	}
	var out []flowDoc
	add := func(where string, raw json.RawMessage) error {
		var head map[string]json.RawMessage
		if err := json.Unmarshal(raw, &head); err != nil || head == nil {
			return fmt.Errorf("%s: not a flow (a JSON object or YAML mapping)", where)
		}
		var id string
		if err := json.Unmarshal(head["id"], &id); err != nil || id == "" {
			return fmt.Errorf("%s: the flow has no \"id\" (a string: the id it is stored under)", where)
		}
		out = append(out, flowDoc{where: where, id: id, body: raw})
		return nil
	}
	for i, v := range values {
		where := path
		if len(values) > 1 {
			where = fmt.Sprintf("%s, document %d", path, i+1)
		}
		if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '[' {
			var list []json.RawMessage
			if err := json.Unmarshal(v, &list); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			for j, f := range list {
				if err := add(fmt.Sprintf("%s, flow %d", where, j+1), f); err != nil {
					return nil, err
				}
			}
			continue
		}
		if err := add(where, v); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no flow", path)
	}
	return out, nil
}

// yamlJSON converts a YAML node to the value encoding/json writes as the
// same document: mapping keys as written (options: {1: sales} is
// {"1": "sales"}), scalars by their resolved tag. A key given twice, a
// non-scalar key and merge keys are refused, as the API refuses a key
// given twice.
func yamlJSON(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return yamlJSON(n.Content[0])
	case yaml.AliasNode:
		return yamlJSON(n.Alias)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := yamlJSON(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind == yaml.AliasNode {
				k = k.Alias
			}
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				return nil, fmt.Errorf("line %d: keys must be plain names (no lists, mappings or << merges)", k.Line)
			}
			if _, dup := out[k.Value]; dup {
				return nil, fmt.Errorf("line %d: key %q given twice", k.Line, k.Value)
			}
			v, err := yamlJSON(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			out[k.Value] = v
		}
		return out, nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
}

// parseDigits splits --digits: one entry per prompt, each of 0-9, * and #
// (8x8 passes on the # that ends an input), empty for no input.
func parseDigits(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	out := strings.Split(s, ",")
	for i, d := range out {
		d = strings.TrimSpace(d)
		out[i] = d
		if len(d) > wire.MaxCaptureDigits+1 || strings.Trim(d, "0123456789*#") != "" {
			return nil, fmt.Errorf("%q: want up to %d of 0-9, * and #", d, wire.MaxCaptureDigits)
		}
	}
	return out, nil
}

// simulation is one call walked through the deciders.
type simulation struct {
	number, from, subAccount string
	digits                   []string
	subject, natsURL         string
	maxSteps                 int
	timeout                  time.Duration
}

// run sends the call's decide requests and prints each answer.
func (s *simulation) run(ctx context.Context, nc *nats.Conn, stdout io.Writer) error {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	call := "sim-" + hex.EncodeToString(rnd[:])
	req := wire.DecideRequest{CallID: call, SessionID: call, SubAccountID: s.subAccount, CallStatus: "CALL_RECEIVED",
		Source: s.from, Destination: s.number}
	fmt.Fprintf(stdout, "simulating call %s from %s to %s\n", call, s.from, s.number)
	next := 0 // the next entry of s.digits
	for step := 1; step <= s.maxSteps; step++ {
		req.EventID = call + "-" + strconv.Itoa(step)
		switch {
		case req.CallStatus == "CALL_RECEIVED":
			fmt.Fprintf(stdout, "\n%d. CALL_RECEIVED\n", step)
		case req.DTMF == "":
			fmt.Fprintf(stdout, "\n%d. ACTION_COMPLETED, no digits\n", step)
		default:
			fmt.Fprintf(stdout, "\n%d. ACTION_COMPLETED, digits %s\n", step, req.DTMF)
		}
		reqCtx, cancel := context.WithTimeout(ctx, s.timeout)
		msg, err := nc.RequestWithContext(reqCtx, s.subject, req.AppendJSON(nil))
		cancel()
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			return fmt.Errorf("no decider is running on NATS at %s (subject %s): start `callflow serve` or `callflow decider`", s.natsURL, s.subject)
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			return fmt.Errorf("no decider answered on %s at %s within %s", s.subject, s.natsURL, s.timeout)
		case err != nil:
			return fmt.Errorf("decide request: %w", err)
		}
		if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" || msg.Header.Get(micro.ErrorHeader) != "" {
			return fmt.Errorf("the decider refused the request: %s %s", code, msg.Header.Get(micro.ErrorHeader))
		}
		verdict, err := wire.CheckCallflow(msg.Data)
		if err != nil {
			return fmt.Errorf("the decider's answer is not a valid callflow (%v): %s", err, msg.Data)
		}
		resp, err := wire.ParseResponse(msg.Data)
		if err != nil {
			return fmt.Errorf("the decider's answer is not a valid callflow (%v): %s", err, msg.Data)
		}
		fmt.Fprintf(stdout, "   answer: %s\n", describeVerdict(verdict, resp.ClientActionID))
		ended, captures := "", false
		for _, a := range resp.Callflow {
			fmt.Fprintf(stdout, "   %s\n", describeAction(a))
			switch a.Action {
			case wire.ActionHangup:
				ended = "the call ends (hangup)"
			case wire.ActionMakeCall:
				if a.Params != nil {
					ended = "the call is connected to " + a.Params.Destination + " (makeCall)"
				} else {
					ended = "the call is connected (makeCall)"
				}
			case wire.ActionSayAndCapture:
				captures = true
			}
		}
		if ended != "" {
			fmt.Fprintf(stdout, "\n%s\n", ended)
			return nil
		}
		req.CallStatus, req.ClientActionID, req.DTMF = "ACTION_COMPLETED", resp.ClientActionID, ""
		if captures {
			if next == len(s.digits) {
				fmt.Fprintf(stdout, "\nthe caller is asked for digits and --digits has no more: the simulation stops here\n")
				return nil
			}
			req.DTMF = s.digits[next]
			next++
		}
	}
	fmt.Fprintf(stdout, "\nstopped after %d answers (--max-steps)\n", s.maxSteps)
	return nil
}

// describeVerdict says what an answer means: where in a flow the caller
// is, or the masking outcome.
func describeVerdict(v wire.Verdict, actionID string) string {
	var b strings.Builder
	if v.FlowID != "" {
		fmt.Fprintf(&b, "flow %s version %d, step %s (%s)", v.FlowID, v.FlowVersion, v.FlowStep, v.Outcome)
	} else {
		b.WriteString(v.Outcome)
	}
	if v.MaskingSessionID != "" {
		fmt.Fprintf(&b, ", session %s", v.MaskingSessionID)
	}
	if v.Policy != "" {
		fmt.Fprintf(&b, ", %s policy", v.Policy)
	}
	fmt.Fprintf(&b, "; clientActionId %s", actionID)
	return b.String()
}

// describeAction is one line about a call action.
func describeAction(a wire.Action) string {
	p := a.Params
	if p == nil {
		p = &wire.Params{}
	}
	switch a.Action {
	case wire.ActionSay:
		return fmt.Sprintf("say %q", p.Text)
	case wire.ActionSayAndCapture:
		var b strings.Builder
		fmt.Fprintf(&b, "sayAndCapture %q: ", p.Text)
		if p.MinDigits > 0 && p.MinDigits != p.MaxDigits {
			fmt.Fprintf(&b, "%d to %d digits", p.MinDigits, p.MaxDigits)
		} else {
			fmt.Fprintf(&b, "%d digit(s)", p.MaxDigits)
		}
		if p.OverallTimeout > 0 {
			fmt.Fprintf(&b, " within %gs", float64(p.OverallTimeout)/1000)
		}
		if p.CompleteOnHash != nil && *p.CompleteOnHash {
			b.WriteString(", # ends")
		}
		return b.String()
	case wire.ActionPlayFile:
		return "playFile " + p.FileURL
	case wire.ActionMakeCall:
		s := fmt.Sprintf("makeCall %s -> %s", p.Source, p.Destination)
		if p.CallRecording {
			s += " (recorded)"
		}
		return s
	case wire.ActionHangup:
		return "hangup"
	}
	return a.Action
}
