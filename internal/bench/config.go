package bench

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Config is one `callflow bench` invocation.
type Config struct {
	// URL receives the webhooks (POST).
	URL string
	// Rate is the open-loop rate in calls per second; 0 runs closed loop.
	Rate float64
	// Duration is how long load is generated.
	Duration time.Duration
	// Connections is the number of concurrent requests at most: the
	// workers of the closed loop, the connection pool of the open loop.
	Connections int
	// Timeout bounds each request.
	Timeout time.Duration
	// Warmup runs the same load for that long before each measured run,
	// its figures discarded: connections, pools and caches of the system
	// are warm when measuring starts.
	Warmup time.Duration
	// Drain bounds how long after Duration requests still scheduled or in
	// flight are waited for; the open loop counts what it could not send
	// by then as not_sent.
	Drain time.Duration

	// Sessions is the number of masking sessions created before the load
	// through the admin API; 0 skips that (every call is out of session).
	Sessions int
	// SessionTTL is the lifetime of those sessions, so that a bench leaves
	// nothing behind (0: no expiry).
	SessionTTL time.Duration
	AdminURL   string
	AdminToken string

	// Mix weighs the kinds of webhook sent (normalized by their sum).
	Mix Mix

	// Baseline runs the same load first against a bare fasthttp responder
	// in this process.
	Baseline bool
	// Chain runs the same load, after the baseline, against the service
	// written the straightforward way (see Chain), in this process.
	Chain bool
	// ChainCommand, when set, runs the chain as that process (a
	// `callflow bench chain`) instead of in this one, so that it does not
	// share a heap and a scheduler with the load generator.
	ChainCommand []string

	// Audit checks afterwards that every answered event is in the stream
	// (and in ClickHouse when ClickHouseAddr is set) exactly once.
	Audit              bool
	NATSURL            string
	Stream             string
	ClickHouseAddr     string
	ClickHouseDatabase string
	ClickHouseUser     string
	ClickHousePassword string
	AuditWait          time.Duration

	// Soak is an open-loop run with progress lines and the audit.
	Soak bool
	// ReportEvery is the interval of progress lines (0: none).
	ReportEvery time.Duration
	// PIDs are processes whose memory is reported (from /proc).
	PIDs []int

	// AllowRemote permits a URL whose host is not loopback.
	AllowRemote bool
	// JSON prints one JSON object instead of text.
	JSON bool
	// RunID prefixes every event id (bench-<RunID>-<n>); default: the
	// start time in Unix milliseconds.
	RunID string
}

// Mix weighs the four kinds of webhook.
type Mix struct {
	InSession    float64 `json:"in_session"`
	OutOfSession float64 `json:"out_of_session"`
	Status       float64 `json:"status"`
	Summary      float64 `json:"summary"`
}

// DefaultMix is mostly calls between session participants.
var DefaultMix = Mix{InSession: 0.8, OutOfSession: 0.1, Status: 0.05, Summary: 0.05}

// Defaults of the command's flags.
const (
	DefaultURL         = "http://127.0.0.1:8080/vca"
	DefaultAdminURL    = "http://127.0.0.1:8081"
	DefaultNATSURL     = "nats://127.0.0.1:4222"
	DefaultStream      = "CALLS"
	DefaultDatabase    = "callflow"
	DefaultConnections = 64
	DefaultSessions    = 100
)

// MaxSessions bounds --sessions: session numbers carry a 5-digit index.
const MaxSessions = 99999

// Validate checks the configuration and fills in what is derived from it.
func (c *Config) Validate() error {
	if c.Soak {
		c.Audit = true
		if c.Rate <= 0 {
			return errors.New("--soak needs an open-loop --rate above 0")
		}
	}
	switch {
	case c.Rate < 0:
		return fmt.Errorf("--rate must be >= 0 (0 runs closed loop), got %v", c.Rate)
	case c.Duration <= 0:
		return fmt.Errorf("--duration must be > 0, got %v", c.Duration)
	case c.Connections < 1:
		return fmt.Errorf("--connections must be >= 1, got %d", c.Connections)
	case c.Timeout <= 0:
		return fmt.Errorf("--timeout must be > 0, got %v", c.Timeout)
	case c.Warmup < 0:
		return fmt.Errorf("--warmup must be >= 0, got %v", c.Warmup)
	case c.Drain < 0:
		return fmt.Errorf("--drain must be >= 0, got %v", c.Drain)
	case c.Sessions < 0 || c.Sessions > MaxSessions:
		return fmt.Errorf("--sessions must be from 0 to %d, got %d", MaxSessions, c.Sessions)
	case c.SessionTTL < 0:
		return fmt.Errorf("--session-ttl must be >= 0, got %v", c.SessionTTL)
	case c.SessionTTL%time.Second != 0:
		return fmt.Errorf("--session-ttl %v: give whole seconds (the admin API keeps seconds; it would be cut to %v)", c.SessionTTL, c.SessionTTL.Truncate(time.Second))
	case c.ReportEvery < 0:
		return fmt.Errorf("--report-every must be >= 0, got %v", c.ReportEvery)
	case c.AuditWait < 0:
		return fmt.Errorf("--audit-wait must be >= 0, got %v", c.AuditWait)
	}
	if c.Rate > 0 && float64(c.Duration)/1e9*c.Rate < 1 {
		return fmt.Errorf("--rate %v for --duration %v schedules no request", c.Rate, c.Duration)
	}
	if err := c.Mix.validate(); err != nil {
		return err
	}
	if err := CheckURL(c.URL, c.AllowRemote); err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	if c.Sessions > 0 {
		if err := CheckURL(c.AdminURL, c.AllowRemote); err != nil {
			return fmt.Errorf("--admin-url: %w", err)
		}
	}
	if c.RunID != "" && !validRunID(c.RunID) {
		return fmt.Errorf("--run-id %q: use 1 to 40 letters, digits or '.'", c.RunID)
	}
	if c.Audit {
		if c.NATSURL == "" {
			c.NATSURL = DefaultNATSURL
		}
		if c.Stream == "" {
			c.Stream = DefaultStream
		}
		if c.ClickHouseAddr != "" && c.ClickHouseDatabase == "" {
			c.ClickHouseDatabase = DefaultDatabase
		}
		if c.ClickHouseDatabase != "" && !validIdent(c.ClickHouseDatabase) {
			return fmt.Errorf("--clickhouse-database %q is not a plain identifier", c.ClickHouseDatabase)
		}
	}
	for _, p := range c.PIDs {
		if p <= 0 {
			return fmt.Errorf("--pids: %d is not a process id", p)
		}
	}
	return nil
}

func (m Mix) validate() error {
	for _, w := range []struct {
		name string
		v    float64
	}{{"--mix-in-session", m.InSession}, {"--mix-out-of-session", m.OutOfSession}, {"--mix-status", m.Status}, {"--mix-summary", m.Summary}} {
		if w.v < 0 || w.v != w.v {
			return fmt.Errorf("%s must be >= 0, got %v", w.name, w.v)
		}
	}
	if m.InSession+m.OutOfSession+m.Status+m.Summary <= 0 {
		return errors.New("the --mix-* weights add up to 0: nothing to send")
	}
	return nil
}

// validRunID: the run id goes into event ids, JSON bodies and a ClickHouse
// LIKE pattern unescaped, so it is restricted to what needs no escaping
// anywhere ('-' separates it from the counter; '%' and '_' are LIKE
// wildcards).
func validRunID(s string) bool {
	if len(s) == 0 || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.') {
			return false
		}
	}
	return true
}

func validIdent(s string) bool {
	if s == "" || len(s) > 128 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ErrRemote is returned for a URL whose host is not loopback when remote
// load is not allowed.
var ErrRemote = errors.New("host is not loopback; bench loads only loopback addresses unless --allow-remote is given, so that it is never aimed at a production system by mistake")

// ErrConfig is matched (errors.Is) by the errors of a configuration Run
// refuses before doing anything.
var ErrConfig = errors.New("invalid bench configuration")

// configError is an error of Validate: its text, matching ErrConfig.
type configError struct{ err error }

func (e configError) Error() string   { return e.err.Error() }
func (e configError) Unwrap() []error { return []error{e.err, ErrConfig} }

// CheckURL checks that raw is an http(s) URL with a host, and, unless
// allowRemote, that the host is a loopback address: an IP in 127.0.0.0/8
// or ::1, or the name "localhost". Other names are refused even when they
// resolve to loopback, since what they resolve to can change between the
// check and the load.
func CheckURL(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", raw)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%q: no host", raw)
	}
	if allowRemote || isLoopback(host) {
		return nil
	}
	return fmt.Errorf("%q: %w", raw, ErrRemote)
}

func isLoopback(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" {
		return true
	}
	// Zones (fe80::1%eth0) are never loopback.
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// hostAddr is the host:port that u's requests are sent to.
func hostAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}
