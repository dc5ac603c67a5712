package admin

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/callflow/callflow/internal/certs"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("invalid admin config")

// Config configures the admin listener.
type Config struct {
	// Addr is the listener's address.
	Addr string
	// Tokens are the bearer tokens accepted on /v1/; several may be set at
	// once so that a token can be rotated without downtime. Each is
	// "TOKEN", which sees and changes every sub-account, or
	// "TOKEN@SUB1/SUB2", which sees and changes only the sub-accounts
	// listed (see ParseToken): anything else answers 404 to it, as if it
	// did not exist.
	Tokens []string
	// SessionAPI says the listener will serve the session API under /v1/;
	// only then is a token required off loopback (probes and metrics are
	// never authenticated).
	SessionAPI bool
	// RateLimit is the requests per second one client address may make
	// to /v1/ (with bursts of RateBurst); past it, 429. Zero:
	// DefaultRateLimit, bursts of DefaultRateBurst; negative: no limit.
	RateLimit float64
	RateBurst int
	// IdempotencyWait is how long a create with an Idempotency-Key waits
	// for the first request with that key, in flight in this process or
	// another, before answering 409 (zero: 5s).
	IdempotencyWait time.Duration
	// TLS, when set, serves the listener over TLS (see package certs).
	TLS *certs.Reloader
	// Instance names this process in audit records.
	Instance string
	// Logger receives notable events.
	Logger *slog.Logger
	// Registerer receives the admin API's metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
}

// Defaults of the per-client rate limit of /v1/. One admin process
// sustained 1,000 to 1,500 session creates a second on two shared cores
// (BenchmarkCreateSessions, 8 clients, NATS in the process; about 1,000
// with an Idempotency-Key): a client may use a tenth of that, and send a
// CRM's batch of 200 creates at once, which the process serves in a
// fraction of a second. At 20/s with bursts of 40, a burst of 120
// creates had 81 refused.
const (
	DefaultRateLimit = 100
	DefaultRateBurst = 200
)

// DefaultIdempotencyWait is Config.IdempotencyWait's default: a create
// takes milliseconds; a first request slower than this is answered 409
// for the client to retry, well within the listener's write timeout.
const DefaultIdempotencyWait = 5 * time.Second

// Reasons a /v1/ request is refused (label of callflow_admin_refused_total).
const (
	RefusedUnauthorized = "unauthorized"
	RefusedRateLimited  = "rate_limited"
)

// Results of an allocation from the number pool (label of
// callflow_pool_allocations_total).
const (
	AllocationAllocated = "allocated"
	AllocationExhausted = "exhausted"
	AllocationError     = "error"
)

// metrics are the admin API's collectors.
type metrics struct {
	refused       *prometheus.CounterVec
	auditFailures prometheus.Counter
	allocations   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callflow_admin_refused_total",
			Help: "Session API requests refused, by reason (unauthorized, rate_limited).",
		}, []string{"reason"}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callflow_admin_audit_failures_total",
			Help: "Session changes whose audit record could be kept neither in JetStream nor in the spool. Should stay 0.",
		}),
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callflow_pool_allocations_total",
			Help: "Sessions created without a virtual number, by the result of allocating one from the sub-account's pool (allocated, exhausted, error).",
		}, []string{"result"}),
	}
	m.refused.WithLabelValues(RefusedUnauthorized)
	m.refused.WithLabelValues(RefusedRateLimited)
	for _, r := range []string{AllocationAllocated, AllocationExhausted, AllocationError} {
		m.allocations.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.refused, m.auditFailures, m.allocations)
	}
	return m
}

// Validate refuses a session API without a token on an address other than
// loopback: the session API decides who gets connected to whom.
func (c *Config) Validate() error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("%w: address %q: %v", ErrInvalidConfig, c.Addr, err)
	}
	if _, err := parseTokens(c.Tokens); err != nil {
		return err
	}
	if c.IdempotencyWait < 0 {
		return fmt.Errorf("%w: idempotency wait must be >= 0, got %s", ErrInvalidConfig, c.IdempotencyWait)
	}
	if c.RateLimit > 0 && c.RateBurst < 1 {
		return fmt.Errorf("%w: rate burst must be >= 1 with a rate limit", ErrInvalidConfig)
	}
	if c.SessionAPI && len(c.Tokens) == 0 && !isLoopback(host) {
		return fmt.Errorf("%w: admin address %s is not loopback, so an admin token is required", ErrInvalidConfig, c.Addr)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Check is a readiness check: nil when ready, else the reason it is not.
type Check func(ctx context.Context) error

// Server is the admin listener.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	srv     *http.Server
	checks  []namedCheck
	limits  *clientLimits
	metrics *metrics
	// auth holds the accepted bearer tokens (Config.Tokens, or the last
	// SetTokens); nil without tokens.
	auth atomic.Pointer[tokenSet]
	// history reads interactions from the archive; nil without one.
	history atomic.Pointer[InteractionReader]
}

type namedCheck struct {
	name     string
	check    Check
	advisory bool
}

// New builds the admin listener with /healthz and /readyz.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdempotencyWait == 0 {
		cfg.IdempotencyWait = DefaultIdempotencyWait
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit, cfg.RateBurst = DefaultRateLimit, max(cfg.RateBurst, DefaultRateBurst)
	}
	tokens, err := newTokenSet(cfg.Tokens)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), metrics: newMetrics(cfg.Registerer)}
	if len(tokens.tokens) > 0 {
		s.auth.Store(tokens)
	}
	if cfg.RateLimit > 0 {
		s.limits = newClientLimits(cfg.RateLimit, cfg.RateBurst)
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "not found: "+r.URL.Path)
	})
	s.srv = &http.Server{
		Handler:           s.withRequestID(s.mux),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		// net/http's own lines (a failed TLS handshake, a bad request)
		// go to the structured log, at debug level: any client could
		// otherwise flood it.
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// AddCheck adds a readiness check. An advisory check is reported in
// /readyz but does not make it fail.
func (s *Server) AddCheck(name string, advisory bool, c Check) {
	s.checks = append(s.checks, namedCheck{name, c, advisory})
}

// Handle mounts h on pattern (http.ServeMux syntax).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Protect wraps h so that it is rate limited per client address and
// requires one of the configured bearer tokens (compared in constant
// time, with every token, whichever matches). h finds the sub-accounts
// the token may see in the request (scopeOf). Without tokens, h is served
// without one, for every sub-account: New has made sure that only happens
// on loopback.
func (s *Server) Protect(h http.Handler) http.Handler {
	if s.auth.Load() == nil {
		return s.limit(h)
	}
	return s.limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		tokens := s.auth.Load()
		i := tokens.digests.Index([]byte(got))
		if !ok || i < 0 {
			s.metrics.refused.WithLabelValues(RefusedUnauthorized).Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="callflow"`)
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "a valid bearer token is required")
			return
		}
		h.ServeHTTP(w, withScope(r, tokens.tokens[i].scope))
	}))
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ready := true
	for _, c := range s.checks {
		if err := c.check(ctx); err != nil {
			checks[c.name] = err.Error()
			if !c.advisory {
				ready = false
			}
			continue
		}
		checks[c.name] = "ok"
	}
	status, code := "ready", http.StatusOK
	if !ready {
		status, code = "not ready", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": checks})
}

// Serve serves on ln until Shutdown, over TLS when configured.
func (s *Server) Serve(ln net.Listener) error {
	s.cfg.Logger.Info("admin listener started", "addr", ln.Addr().String(), "auth", len(s.cfg.Tokens) > 0, "tls", s.cfg.TLS != nil)
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS.TLSConfig())
	}
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Listen opens the configured address.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	return ln, nil
}

// Shutdown stops the listener, letting requests in flight finish within ctx.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// writeRawJSON answers body, a JSON encoding, as writeJSON would.
func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_, _ = w.Write([]byte("\n"))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
