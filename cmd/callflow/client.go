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
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Flags every verb of sessions, numbers and flows takes.
var clientFlags = []string{"admin-url", "admin-token", "timeout"}

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

// apiClient is a client of the admin API.
type apiClient struct {
	base, token string
	http        *http.Client
	// flags names the flag (or argument) that sets each field of the API,
	// so that an error about a field names what the user typed; nil
	// leaves fields as the API names them (flows apply: the fields are
	// the file's).
	flags map[string]string
}

// apiError is an error answer of the admin API.
type apiError struct {
	status string
	// field is what the message is about, as the API names it ("" when
	// it names none); message is the rest of it.
	field, message string
	// flag is the flag or argument that sets field, "" when unknown.
	flag string
}

func (e *apiError) Error() string {
	var b strings.Builder
	b.WriteString(e.status)
	switch {
	case e.flag != "":
		b.WriteString(": " + e.flag)
	case e.field != "":
		b.WriteString(": " + e.field)
	}
	if e.message != "" {
		b.WriteString(": " + e.message)
	}
	return b.String()
}

// leadingField matches the field an API message starts with
// ("participants[1]: ...", "greeting.text: ...").
var leadingField = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9]*(?:\[[0-9]+\])?(?:\.[A-Za-z0-9]+(?:\[[0-9]+\])?)*): `)

// newAPIError reads an error answer: {"error": "<field>: <message>"},
// with "field" (and "code") when the API sends them; the field is
// translated to its flag with flags.
func newAPIError(status string, body []byte, flags map[string]string) *apiError {
	var b struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	_ = json.Unmarshal(body, &b)
	e := &apiError{status: status, field: b.Field, message: b.Error}
	if e.field == "" {
		if m := leadingField.FindStringSubmatch(b.Error); m != nil {
			e.field = m[1]
		}
	}
	if e.field != "" {
		e.message = strings.TrimPrefix(e.message, e.field+": ")
		e.flag = flagFor(e.field, flags)
	}
	return e
}

// flagFor names the flag (or argument) that sets field, "" when none of
// flags does. A list's item is named by its place: participants[1] is
// "--participants (item 2)".
func flagFor(field string, flags map[string]string) string {
	if f, ok := flags[field]; ok {
		return f
	}
	base, rest, ok := strings.Cut(field, "[")
	if !ok {
		return ""
	}
	f, ok := flags[base]
	if !ok {
		return ""
	}
	idx, tail, _ := strings.Cut(rest, "]")
	n, err := strconv.Atoi(idx)
	if err != nil || tail != "" {
		return ""
	}
	return fmt.Sprintf("%s (item %d)", f, n+1)
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
		return "", nil, newAPIError(resp.Status, out, c.flags)
	}
	return resp.Status, out, nil
}

// print sends one request and prints the answer in format (or the status
// of an answer without a body).
func (c *apiClient) print(ctx context.Context, method, path string, body any, r resource, format outputFormat, stdout io.Writer) error {
	status, out, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	if len(out) == 0 {
		_, err = fmt.Fprintf(stdout, "%s\n", status)
		return err
	}
	return printObjects(stdout, out, r, format)
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

// maxPages bounds --all: a list that never ends is a bug, not a reason to
// loop forever.
const maxPages = 100_000

// list prints a list endpoint's page (items under r.list), or with --all
// every page as one list, in format. A table or ids of one page say on
// stderr how to read the next.
func (c *apiClient) list(ctx context.Context, path string, r resource, q url.Values, p pages, format outputFormat, stdout, stderr io.Writer) error {
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
		var next *string
		if raw, ok := page["nextCursor"]; ok {
			if err := json.Unmarshal(raw, &next); err != nil {
				return fmt.Errorf("answer's nextCursor: %w", err)
			}
		}
		if !*p.all {
			if next != nil && *next != "" && format != outputJSON {
				defer fmt.Fprintf(stderr, "callflow: more on the next page: --cursor %s (or --all)\n", *next)
			}
			return printObjects(stdout, out, r, format)
		}
		var items []json.RawMessage
		if err := json.Unmarshal(page[r.list], &items); err != nil {
			return fmt.Errorf("answer has no %s list: %w", r.list, err)
		}
		all = append(all, items...)
		if next == nil || *next == "" {
			if all == nil {
				all = []json.RawMessage{}
			}
			b, err := json.Marshal(map[string]any{r.list: all, "nextCursor": nil})
			if err != nil {
				return err
			}
			return printObjects(stdout, b, r, format)
		}
		q.Set("cursor", *next)
	}
	return errors.New("the list did not end after " + strconv.Itoa(maxPages) + " pages")
}
