package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
	"github.com/sony/gobreaker/v2"
	"github.com/valyala/fasthttp"
)

// Server is the ingestor: the webhook listener and what it needs to decide
// and record calls.
type Server struct {
	cfg      Config
	http     *fasthttp.Server
	deciders *deciders
	rec      *recorder
	fallback []byte // pre-encoded fallback callflow
	bufs     sync.Pool
	stats    stats
	metrics  *Metrics
	subjects subjectCache
	guard    *guard
	// rejectedPerIP counts connections refused over MaxConnsPerIP.
	rejectedPerIP atomic.Uint64

	// calls is held for reading by every request being handled and for
	// writing by Shutdown, which so waits for every call in flight before
	// it closes the recorder, and refuses the requests that come later.
	calls        sync.RWMutex
	shutdownOnce sync.Once
	shutdownErr  error
}

// New builds an ingestor on nc. The records stream must exist (see
// broker.EnsureStream) for records to be acknowledged.
func New(nc *nats.Conn, cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	rec, err := newRecorder(nc, &cfg, log)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		deciders: newDeciders(nc, &cfg, log),
		rec:      rec,
		metrics:  cfg.Metrics,
		guard:    newGuard(&cfg),
	}
	if len(cfg.Auth) == 0 {
		log.Warn("webhook authentication is off: any client that reaches the listener can post calls; set --webhook-auth to the httpAuthHeader configured at 8x8")
	}
	fb := fallbackResponse(cfg.Fallback)
	s.fallback = fb.JSON()
	s.bufs.New = func() any { return &buffers{} }
	s.http = &fasthttp.Server{
		Name:                  "callflow",
		Handler:               s.route,
		ErrorHandler:          s.transportError,
		MaxRequestBodySize:    cfg.MaxBody,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		ReadBufferSize:        cfg.MaxHeaderBytes,
		Concurrency:           cfg.MaxConns,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		CloseOnShutdown:       true,
		// Errors logged (at debug level) without the request's contents,
		// which hold the webhook secret.
		SecureErrorLogMessage: true,
		Logger:                debugLogger{log},
	}
	s.metrics.registerServer(s.deciders, s.http, &s.rejectedPerIP)
	return s, nil
}

// Serve answers webhooks on ln until Shutdown, over TLS when configured.
func (s *Server) Serve(ln net.Listener) error {
	s.cfg.Logger.Info("webhook listener started", "addr", ln.Addr().String(), "path", s.cfg.Path,
		"tls", s.cfg.TLS != nil, "auth", len(s.cfg.Auth) > 0, "allow_cidrs", len(s.cfg.AllowCIDRs))
	if s.cfg.MaxConnsPerIP > 0 {
		ln = newPerIPListener(ln, s.cfg.MaxConnsPerIP, s.cfg.TLS == nil, &s.rejectedPerIP)
	}
	// Outside the per-address limit, so that a connection being drained
	// still holds its address's slot.
	ln = lingerListener{ln}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS.TLSConfig())
	}
	return s.http.Serve(ln)
}

// ListenAndServe listens on the configured address and serves.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("webhook listener: %w", err)
	}
	return s.Serve(ln)
}

// Shutdown stops accepting webhooks, waits for the calls in flight to be
// answered and their records kept, then sends what the spool holds while
// NATS is connected and closes it. ctx bounds the listener's drain and the
// spool's last replay, but never the calls in flight: each is bounded by
// the decide and record budgets, and its record is kept (acknowledged or
// spooled) before the spool closes, even past ctx's deadline. Records still
// spooled stay on disk for the next start. Later calls return the first
// call's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		herr := s.http.ShutdownWithContext(ctx)
		// The listener returns at ctx's deadline with handlers possibly
		// still running; they must not find the spool closed.
		s.calls.Lock()
		s.shutdownErr = errors.Join(herr, s.rec.close(ctx))
	})
	return s.shutdownErr
}

// Record keeps a record that is not a webhook's (an audit record of the
// admin API) the way webhook records are kept: acknowledged by JetStream,
// or else in the spool. It returns nil once the record is kept in either.
// data must not be modified afterwards.
func (s *Server) Record(subject, id string, data []byte) error {
	if err := s.rec.record(subject, id, data); err != nil && !errors.Is(err, ErrSpooled) {
		return err
	}
	return nil
}

// CheckRecords reports whether the records of new calls can be kept: it
// fails only when JetStream is not acknowledging them (disconnected, or
// failing) and the spool has too little room left for them. Without NATS
// but with room in the spool, calls are answered and their records kept:
// the ingestor is ready.
func (s *Server) CheckRecords(context.Context) error { return s.rec.check() }

// BreakerOpen reports whether the circuit breaker in front of the deciders
// is open (calls get the fallback without asking).
func (s *Server) BreakerOpen() bool { return s.deciders.state() == gobreaker.StateOpen }

// BreakerState is the breaker's state: "closed", "half-open" or "open".
func (s *Server) BreakerState() string { return s.deciders.state().String() }

// Stats returns counters of what the ingestor did since it started.
func (s *Server) Stats() Stats {
	st := s.stats.snapshot()
	st.Spooled, st.Lost, st.SpoolWaiting = s.rec.spooled.Load(), s.rec.lost.Load(), s.rec.spool.Len()
	return st
}

// debugLogger takes fasthttp's per-connection error lines (a client that
// sent garbage, a body over the limit) at debug level: they are answered
// and counted, and at the default level one line per bad request would let
// any client flood the log.
type debugLogger struct{ log *slog.Logger }

// Only the message's format is logged, never its arguments: fasthttp quotes
// the unreadable request in them, and with it the webhook secret.
func (l debugLogger) Printf(format string, _ ...any) {
	l.log.Debug("webhook connection error (request contents withheld)", "fasthttp", format)
}

// subjectCache remembers record subjects: a call centre has a handful of
// sub-accounts, and building the subject costs an allocation a call. It is
// bounded: past maxSubjects entries, subjects are built each time.
type subjectCache struct {
	m sync.Map // subjectKey -> string
	n atomic.Int64
}

type subjectKey struct{ eventType, subAccount string }

const maxSubjects = 4096

func (c *subjectCache) get(eventType, subAccount string) string {
	if v, ok := c.m.Load(subjectKey{eventType, subAccount}); ok {
		return v.(string)
	}
	subject := wire.Subject(eventType, subAccount)
	if c.n.Load() < maxSubjects {
		// The key's strings share the webhook body's copy; clone them so
		// that the cache does not keep bodies alive.
		if _, loaded := c.m.LoadOrStore(subjectKey{strings.Clone(eventType), strings.Clone(subAccount)}, subject); !loaded {
			c.n.Add(1)
		}
	}
	return subject
}
