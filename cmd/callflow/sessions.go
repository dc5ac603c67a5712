package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
)

const sessionsSynopsis = `sessions <create|get|list|delete> [flags] [id]

  create --virtual-number N --participants A,B [--ttl D] [--call-recording] [--greeting-text T]
  get ID
  list --virtual-number N
  delete ID`

// runSessions is a client of the admin API's /v1/sessions: it never writes
// the bucket itself, so the API's checks always apply.
func runSessions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sessions", sessionsSynopsis, stderr)
	adminURL := fs.String("admin-url", "http://127.0.0.1:8081", "base URL of the admin API")
	token := fs.String("admin-token", "", "bearer token for the admin API")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	virtual := fs.String("virtual-number", "", "create, list: the virtual number")
	participants := fs.String("participants", "", "create: the two participants, comma-separated")
	ttl := fs.Duration("ttl", 0, "create: session lifetime (0: no expiry)")
	recording := fs.Bool("call-recording", false, "create: record the connected calls")
	greetText := fs.String("greeting-text", "", "create: said to the caller before connecting")
	greetVoice := fs.String("greeting-voice", "en-US-ZiraRUS", "create: voice profile of the greeting")
	if len(args) == 0 {
		fs.Usage()
		return errUsage
	}
	verb := args[0]
	if err := parseFlags(fs, args[1:], true); err != nil {
		return err
	}
	c := &apiClient{base: strings.TrimRight(*adminURL, "/"), token: *token, http: &http.Client{Timeout: *timeout}}
	needID := func() (string, error) {
		if fs.NArg() != 1 {
			fmt.Fprintf(stderr, "callflow sessions %s needs exactly one session id\n", verb)
			return "", errUsage
		}
		return fs.Arg(0), nil
	}
	switch verb {
	case "create":
		req := session.Request{VirtualNumber: *virtual, TTLSeconds: int64(ttl.Seconds()), CallRecording: *recording}
		for _, p := range strings.Split(*participants, ",") {
			if p = strings.TrimSpace(p); p != "" {
				req.Participants = append(req.Participants, p)
			}
		}
		if *greetText != "" {
			req.Greeting = &wire.Say{Text: *greetText, VoiceProfile: *greetVoice}
		}
		return c.do(ctx, http.MethodPost, "/v1/sessions", req, stdout)
	case "get":
		id, err := needID()
		if err != nil {
			return err
		}
		return c.do(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id), nil, stdout)
	case "delete":
		id, err := needID()
		if err != nil {
			return err
		}
		return c.do(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id), nil, stdout)
	case "list":
		return c.do(ctx, http.MethodGet, "/v1/sessions?virtualNumber="+url.QueryEscape(*virtual), nil, stdout)
	default:
		fmt.Fprintf(stderr, "callflow sessions: unknown action %q\n", verb)
		fs.Usage()
		return errUsage
	}
}

type apiClient struct {
	base, token string
	http        *http.Client
}

// do sends one request and prints the JSON answer, indented; an error
// status becomes an error carrying the API's message.
func (c *apiClient) do(ctx context.Context, method, path string, body any, stdout io.Writer) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(out, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	if len(out) == 0 {
		_, err = fmt.Fprintf(stdout, "%s\n", resp.Status)
		return err
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, out, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(out)
	}
	_, err = fmt.Fprintln(stdout, strings.TrimRight(pretty.String(), "\n"))
	return err
}
