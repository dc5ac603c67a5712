package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// outputFlag names the flag that chooses how objects are printed.
const outputFlag = "output"

// Output formats.
const (
	outputJSON  = "json"
	outputTable = "table"
	outputIDs   = "ids"
)

// outputFormat is the value of --output.
type outputFormat string

func (o *outputFormat) String() string { return string(*o) }

func (o *outputFormat) Set(v string) error {
	switch v {
	case outputJSON, outputTable, outputIDs:
		*o = outputFormat(v)
		return nil
	}
	return fmt.Errorf("%q: want json, table or ids", v)
}

// registerOutput adds --output (-o) to fs.
func registerOutput(fs *flag.FlagSet) *outputFormat {
	o := outputFormat(outputJSON)
	fs.Var(&o, outputFlag, "how objects are printed: json (the API's answer, indented), table (aligned columns with a header) or ids (one id or number a line, for xargs)")
	return &o
}

// column is one column of a table: its header and how a value is read
// from an object of the API.
type column struct {
	header string
	value  func(obj map[string]any) string
}

// resource is how one kind of object of the API prints as a table and as
// ids.
type resource struct {
	// list is the field of a list answer that holds the objects.
	list string
	// id is the field --output ids prints.
	id      string
	columns []column
}

var (
	sessionResource = resource{list: "sessions", id: "id", columns: []column{
		{"ID", field("id")}, {"STATUS", field("status")}, {"VIRTUAL NUMBER", field("virtualNumber")},
		{"PARTICIPANTS", field("participants")}, {"SUB-ACCOUNT", field("subAccountId")}, {"TTL", sessionTTL},
		{"EXPIRES", field("expiresAt")}, {"CALLS", sessionCalls}, {"REF", field("ref")},
	}}
	numberResource = resource{list: "numbers", id: "number", columns: []column{
		{"NUMBER", field("number")}, {"SUB-ACCOUNT", field("subAccountId")}, {"COUNTRY", field("countryCode")},
		{"STATUS", field("status")}, {"OPEN SESSIONS", field("openSessions")}, {"FLOW", field("flow")},
		{"OUT OF SESSION", outOfSession},
	}}
	flowResource = resource{list: "flows", id: "id", columns: []column{
		{"ID", field("id")}, {"VERSION", field("version")}, {"SUB-ACCOUNT", field("subAccountId")},
		{"START", field("start")}, {"STEPS", flowSteps}, {"UPDATED", field("updatedAt")},
	}}
)

// noValue stands for an absent value in a table, so that every row has
// every column (awk '{print $3}' works).
const noValue = "-"

// field reads a top-level field as text: lists comma-separated, absent
// and null as noValue.
func field(name string) func(map[string]any) string {
	return func(obj map[string]any) string { return text(obj[name]) }
}

func text(v any) string {
	switch v := v.(type) {
	case nil:
		return noValue
	case string:
		if v == "" {
			return noValue
		}
		return v
	case []any:
		parts := make([]string, len(v))
		for i, p := range v {
			parts[i] = text(p)
		}
		if len(parts) == 0 {
			return noValue
		}
		return strings.Join(parts, ",")
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// sessionTTL is a session's TTL mode and length ("idle 30m0s").
func sessionTTL(obj map[string]any) string {
	mode := text(obj["ttlMode"])
	n, ok := obj["ttlSeconds"].(json.Number)
	if !ok {
		return mode
	}
	secs, err := n.Int64()
	if err != nil {
		return mode
	}
	return mode + " " + (time.Duration(secs) * time.Second).String()
}

// sessionCalls is a session's connected calls, and its limit ("2/3").
func sessionCalls(obj map[string]any) string {
	calls := text(obj["callCount"])
	if max := text(obj["maxCalls"]); max != noValue {
		return calls + "/" + max
	}
	return calls
}

// outOfSession is a number's own out-of-session policy: its action, and
// where a forward goes.
func outOfSession(obj map[string]any) string {
	p, ok := obj["outOfSession"].(map[string]any)
	if !ok {
		return noValue
	}
	s := text(p["action"])
	if d := text(p["destination"]); d != noValue {
		s += " " + d
	}
	return s
}

// flowSteps is how many steps a flow has.
func flowSteps(obj map[string]any) string {
	steps, _ := obj["steps"].(map[string]any)
	return strconv.Itoa(len(steps))
}

// decodeObjects reads the objects of an answer: the list under r.list of
// a list answer, or the answer itself.
func decodeObjects(b []byte, r resource) ([]map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("answer is not a JSON object: %w", err)
	}
	items, isList := obj[r.list]
	if !isList {
		return []map[string]any{obj}, nil
	}
	list, ok := items.([]any)
	if !ok && items != nil {
		return nil, fmt.Errorf("answer's %s is not a list", r.list)
	}
	out := make([]map[string]any, 0, len(list))
	for i, it := range list {
		o, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("answer's %s[%d] is not an object", r.list, i)
		}
		out = append(out, o)
	}
	return out, nil
}

// printObjects prints an answer (one object, or a list answer) in format:
// JSON as the API gave it, indented; a table with a header; or one id a
// line.
func printObjects(w io.Writer, b []byte, r resource, format outputFormat) error {
	if format == outputJSON || format == "" {
		return printJSON(w, b)
	}
	objs, err := decodeObjects(b, r)
	if err != nil {
		return err
	}
	if format == outputIDs {
		var out strings.Builder
		for _, o := range objs {
			out.WriteString(text(o[r.id]) + "\n")
		}
		_, err := io.WriteString(w, out.String())
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, c := range r.columns {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, c.header)
	}
	fmt.Fprintln(tw)
	for _, o := range objs {
		for i, c := range r.columns {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, strings.NewReplacer("\t", " ", "\n", " ").Replace(c.value(o)))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
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
