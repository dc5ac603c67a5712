package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/callflow/callflow/ingest/spool"
	"github.com/callflow/callflow/internal/certs"
	"github.com/callflow/callflow/wire"
)

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("invalid ingest config")

// Config configures the ingestor.
type Config struct {
	// Addr is the webhook listener's address.
	Addr string
	// Path is the webhook path 8x8 is configured with.
	Path string
	// MaxBody is the largest webhook body accepted, in bytes.
	MaxBody int
	// ReadTimeout and WriteTimeout bound one request's read and the
	// answer's write; IdleTimeout bounds a kept-alive connection's idleness.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header (larger is 431).
	MaxHeaderBytes int
	// MaxConns bounds the connections served at once (0: DefaultMaxConns),
	// MaxConnsPerIP those from one address (0: no per-address limit); past
	// them a connection gets 503 or 429 and is closed.
	MaxConns, MaxConnsPerIP int

	// Auth holds the accepted values of the Authorization header: what is
	// configured as the webhook's httpAuthHeader at 8x8. Several values
	// let the secret be rotated without downtime. Empty accepts any
	// request, which is only for development.
	Auth []string
	// AllowCIDRs, when set, are the only source ranges that may call the
	// webhook (8x8's published ranges); others get 403.
	AllowCIDRs []netip.Prefix
	// TLS, when set, serves the webhook over TLS (see package certs).
	TLS *certs.Reloader
	// TrustedProxies are the load balancers whose X-Forwarded-For names
	// the client; for any other peer the header is ignored.
	TrustedProxies []netip.Prefix

	// DecideSubject is where the deciders listen.
	DecideSubject string
	// DecideTimeout is how long a call waits for a decider.
	DecideTimeout time.Duration
	// Local, when set, decides CALL_ACTIONs in this process instead of
	// asking the pool over NATS: serve sets it to one of its own deciders,
	// which share the pool's policy and session index. Without it (the
	// ingest role) every decision is a request to the pool.
	Local LocalDecider
	// Breaker configures the circuit breaker in front of the deciders.
	Breaker BreakerConfig
	// Fallback is said before hanging up when no decider answers.
	Fallback wire.Say

	// RecordTimeout is how long a call waits for JetStream to acknowledge
	// its record before the record goes to the spool and the call is
	// answered.
	RecordTimeout time.Duration
	// DataDir holds the spool (DataDir/spool) of records JetStream did not
	// acknowledge in time.
	DataDir string
	// SpoolMaxBytes bounds the spool on disk (default 1 GiB).
	SpoolMaxBytes int64
	// Instance names this ingestor in records (default: the host name).
	Instance string

	// Logger receives notable events; never one line per call.
	Logger *slog.Logger
	// Metrics receives the ingestor's measurements (see NewMetrics); nil
	// keeps them unregistered.
	Metrics *Metrics
}

// LocalDecider is a decider in the ingestor's own process (see
// decider.Service.Decide).
type LocalDecider interface {
	// Decide appends req's callflow to dst and says what it means. It
	// must not keep req, which is reused for the next call.
	Decide(dst []byte, req *wire.DecideRequest, now time.Time) ([]byte, wire.Verdict)
}

// BreakerConfig configures the circuit breaker.
type BreakerConfig struct {
	// Failures is the number of consecutive failures that opens it.
	Failures uint32
	// OpenFor is how long it stays open before letting probes through.
	OpenFor time.Duration
	// HalfOpenProbes is how many calls may probe the deciders while half
	// open; that many successes in a row close it again.
	HalfOpenProbes uint32
}

// Defaults for Config.
const (
	DefaultAddr          = ":8080"
	DefaultPath          = "/vca"
	DefaultMaxBody       = 64 << 10
	DefaultDecideTimeout = 500 * time.Millisecond
	DefaultRecordTimeout = time.Second
	// DefaultMaxHeaderBytes is fasthttp's read buffer: 8x8 sends a few
	// hundred bytes of header.
	DefaultMaxHeaderBytes = 8 << 10
	// DefaultMaxConns covers 5,000 calls a second each held for the
	// longest decide and record budgets (0.5 s + 1 s) with room to spare;
	// each connection holds a descriptor and a goroutine.
	DefaultMaxConns = 10_000
)

// DefaultFallback is what callers hear when no decider can answer.
var DefaultFallback = wire.Say{
	Text:         "Sorry, we cannot connect your call right now. Please try again later.",
	VoiceProfile: "en-US-ZiraRUS",
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	def(&c.ReadTimeout, 5*time.Second)
	def(&c.WriteTimeout, 5*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.DecideSubject == "" {
		c.DecideSubject = wire.DecideSubject
	}
	def(&c.DecideTimeout, DefaultDecideTimeout)
	if c.Breaker.Failures == 0 {
		c.Breaker.Failures = 5
	}
	def(&c.Breaker.OpenFor, 5*time.Second)
	if c.Breaker.HalfOpenProbes == 0 {
		c.Breaker.HalfOpenProbes = 3
	}
	if c.Fallback.Text == "" {
		c.Fallback = DefaultFallback
	}
	def(&c.RecordTimeout, DefaultRecordTimeout)
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.SpoolMaxBytes == 0 {
		c.SpoolMaxBytes = spool.DefaultMaxBytes
	}
	if c.Instance == "" {
		c.Instance, _ = os.Hostname()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
}

// Validate checks the configuration after defaults are applied.
func (c *Config) Validate() error {
	switch {
	case c.Path == "" || c.Path[0] != '/':
		return fmt.Errorf("%w: webhook path must start with /", ErrInvalidConfig)
	case c.MaxBody < 1024:
		return fmt.Errorf("%w: max body must be at least 1024 bytes, got %d", ErrInvalidConfig, c.MaxBody)
	case c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0:
		return fmt.Errorf("%w: HTTP timeouts cannot be negative", ErrInvalidConfig)
	case c.MaxHeaderBytes < 1024:
		return fmt.Errorf("%w: max header bytes must be at least 1024, got %d", ErrInvalidConfig, c.MaxHeaderBytes)
	case c.MaxConns < 0 || c.MaxConnsPerIP < 0:
		return fmt.Errorf("%w: connection limits cannot be negative", ErrInvalidConfig)
	case c.DecideTimeout <= 0:
		return fmt.Errorf("%w: decide timeout must be > 0", ErrInvalidConfig)
	case c.RecordTimeout <= 0:
		return fmt.Errorf("%w: record timeout must be > 0", ErrInvalidConfig)
	case c.Breaker.OpenFor <= 0:
		return fmt.Errorf("%w: breaker open interval must be > 0", ErrInvalidConfig)
	case c.SpoolMaxBytes < 1<<20:
		return fmt.Errorf("%w: spool max bytes must be at least 1 MiB, got %d", ErrInvalidConfig, c.SpoolMaxBytes)
	}
	if err := validAuth(c.Auth); err != nil {
		return err
	}
	if err := c.Fallback.Validate(); err != nil {
		return fmt.Errorf("%w: fallback say: %v", ErrInvalidConfig, err)
	}
	return nil
}
