// Package node runs one callflow process: whichever of the embedded NATS
// server, the ingestor, the deciders, the archiver and the admin listener its
// roles name, started, made ready and stopped in one order. cmd/callflow
// turns flags into a Config; tests build a Config and drive a Node directly.
//
// Start order: NATS (embedded or connected), the records stream, the
// archiver, the sessions bucket and its watch, the deciders, the ingestor,
// the pool feed (8x8's number updates into the pool, with the ingestor),
// then the listeners. Shutdown runs it backwards: the pool feed finishes
// the update in hand, then stop taking webhooks and answer the calls in
// flight (their deciders still serve), wait for their records, then the
// deciders, the archiver's last batch, the admin listener, the session
// watch, NATS.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callflow/callflow/archiver"
	"github.com/callflow/callflow/decider"
	"github.com/callflow/callflow/ingest"
	"github.com/callflow/callflow/internal/admin"
	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/certs"
	"github.com/callflow/callflow/internal/poolfeed"
	"github.com/callflow/callflow/internal/session"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrInvalidConfig is wrapped by every configuration error of New.
var ErrInvalidConfig = errors.New("invalid node config")

// Roles says which parts a node runs.
type Roles struct {
	// Name names the node in logs and NATS connection names: serve,
	// ingest, decider or archiver.
	Name string
	// Embedded runs a NATS server in the process (Config.Embedded).
	Embedded bool
	// Ingest runs the webhook listener and the session API.
	Ingest bool
	// Deciders is the number of decider services in the process.
	Deciders int
	// Archiver archives the records stream into ClickHouse.
	Archiver bool
	// ArchiveRequired makes ClickHouse part of readiness (the archiver
	// role); in serve, answering calls never depends on ClickHouse.
	ArchiveRequired bool
}

// TLSFiles names a listener's certificate and key files; both empty serves
// plain TCP.
type TLSFiles struct{ Cert, Key string }

// Config is everything a node runs with. Each part's settings are that
// package's own Config; Logger, Metrics and TLS fields inside them are
// filled in by the node.
type Config struct {
	Roles   Roles
	Version string
	Logger  *slog.Logger

	Embedded broker.EmbeddedConfig // when Roles.Embedded
	Conn     broker.ConnConfig
	Stream   broker.StreamConfig // when Roles.Ingest or Roles.Archiver
	Sessions session.Config      // when Roles.Ingest or Roles.Deciders > 0
	Decider  decider.Config      // when Roles.Deciders > 0
	Ingest   ingest.Config       // when Roles.Ingest; Addr is the webhook listener's
	Archiver archiver.Config     // when Roles.Archiver
	PoolFeed poolfeed.Config     // when Roles.Ingest; Stream and Instance come from Stream and Admin
	Admin    admin.Config
	// History, when Roles.Ingest, is the ClickHouse the session API reads
	// a session's interactions from; nil: GET /v1/sessions/{id}/interactions
	// answers 503.
	History *archiver.ClickHouseConfig

	AdminTLS, WebhookTLS TLSFiles

	// ShutdownTimeout bounds a graceful stop in Run.
	ShutdownTimeout time.Duration
}

// Validate checks what the parts' own configs do not: the roles and the
// process settings.
func (c *Config) Validate() error {
	switch {
	case c.Roles.Deciders < 0:
		return fmt.Errorf("%w: deciders must be >= 0, got %d", ErrInvalidConfig, c.Roles.Deciders)
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("%w: shutdown timeout must be > 0", ErrInvalidConfig)
	case c.Roles.Embedded && c.Embedded.DataDir == "":
		return fmt.Errorf("%w: the embedded NATS server needs a data directory", ErrInvalidConfig)
	}
	if err := c.Admin.Validate(); err != nil {
		return err
	}
	if c.Roles.Ingest || c.Roles.Archiver {
		if err := c.Stream.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Node is one running process. Its methods are not safe for concurrent use,
// except ReloadCerts, SetAdminTokens, SetWebhookAuth, Ready and the address
// getters.
type Node struct {
	cfg Config
	log *slog.Logger
	reg *prometheus.Registry

	ns       *server.Server
	nc       *nats.Conn
	store    *session.Store
	deciders []*decider.Service
	ingest   *ingest.Server
	admin    *admin.Server
	archiver *archiver.Archiver
	archStop context.CancelFunc
	archDone chan struct{}
	history  *archiver.History
	feed     *poolfeed.Feed
	feedStop context.CancelFunc
	feedDone chan struct{}

	// liveAdmin and liveIngest are admin and ingest for SetAdminTokens
	// and SetWebhookAuth, which may run beside Start and Shutdown.
	liveAdmin  atomic.Pointer[admin.Server]
	liveIngest atomic.Pointer[ingest.Server]

	adminTLS, webhookTLS *certs.Reloader
	adminLn, webhookLn   net.Listener
	errc                 chan error // listener failures
	serving              sync.WaitGroup
	ready                chan struct{}
}

// New checks cfg and loads the listeners' certificates; nothing is started.
func New(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:   cfg,
		log:   cfg.Logger,
		reg:   newRegistry(cfg.Version),
		errc:  make(chan error, 2),
		ready: make(chan struct{}),
	}
	var err error
	if n.adminTLS, err = certs.New(cfg.AdminTLS.Cert, cfg.AdminTLS.Key); err != nil {
		return nil, fmt.Errorf("admin listener TLS: %w", err)
	}
	if cfg.Roles.Ingest {
		if n.webhookTLS, err = certs.New(cfg.WebhookTLS.Cert, cfg.WebhookTLS.Key); err != nil {
			return nil, fmt.Errorf("webhook listener TLS: %w", err)
		}
	}
	return n, nil
}

// Registry is the node's metrics registry, served on /metrics.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// Ready is closed once Start has returned without error: every part runs
// and the listeners accept connections.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// AdminAddr is the admin listener's address once started.
func (n *Node) AdminAddr() string { return addr(n.adminLn) }

// WebhookAddr is the webhook listener's address once started, or "" when
// the node runs no ingestor.
func (n *Node) WebhookAddr() string { return addr(n.webhookLn) }

// NATSURL is the embedded NATS server's client URL, or "" without one.
func (n *Node) NATSURL() string {
	if n.ns == nil {
		return ""
	}
	return n.ns.ClientURL()
}

func addr(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// ReloadCerts reads the listeners' certificate files again; a pair that
// fails to load leaves the one in use, and the error says which.
func (n *Node) ReloadCerts() error {
	var errs []error
	for _, c := range []*certs.Reloader{n.adminTLS, n.webhookTLS} {
		if c == nil {
			continue
		}
		cert, _ := c.Files()
		if err := c.Reload(); err != nil {
			n.log.Error("TLS certificate not reloaded; the previous one stays in use", "cert", cert, "error", err)
			errs = append(errs, err)
			continue
		}
		n.log.Info("TLS certificate reloaded", "cert", cert)
	}
	return errors.Join(errs...)
}

// ErrNotRunning is returned by SetAdminTokens and SetWebhookAuth before
// Start has made the listener they change.
var ErrNotRunning = errors.New("node not running")

// SetAdminTokens replaces the bearer tokens the session API accepts, for
// the requests from then on (admin.Server.SetTokens); on error the tokens
// in use stay.
func (n *Node) SetAdminTokens(values []string) error {
	a := n.liveAdmin.Load()
	if a == nil {
		return fmt.Errorf("%w: no admin listener yet", ErrNotRunning)
	}
	return a.SetTokens(values)
}

// SetWebhookAuth replaces the Authorization values the webhook accepts,
// for the requests from then on (ingest.Server.SetAuth); on error the
// values in use stay.
func (n *Node) SetWebhookAuth(values []string) error {
	in := n.liveIngest.Load()
	if in == nil {
		return fmt.Errorf("%w: no webhook listener", ErrNotRunning)
	}
	return in.SetAuth(values)
}

// Run starts the node, serves until ctx ends or a listener fails, then
// stops it gracefully within Config.ShutdownTimeout.
func (n *Node) Run(ctx context.Context) error {
	if err := n.Start(ctx); err != nil {
		n.close()
		return err
	}
	var failed error
	select {
	case <-ctx.Done():
		n.log.Info("stopping: draining in-flight calls", "timeout", n.cfg.ShutdownTimeout)
	case failed = <-n.errc:
		n.log.Error("listener failed; stopping", "error", failed)
	}
	sctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
	defer cancel()
	if err := errors.Join(failed, n.Shutdown(sctx)); err != nil {
		return err
	}
	n.log.Info("stopped")
	return nil
}

// Start starts every part the roles name and the listeners. On error what
// was started is left for Shutdown to stop.
func (n *Node) Start(ctx context.Context) error {
	r := n.cfg.Roles
	if err := n.connect(); err != nil {
		return err
	}
	js, err := jetstream.New(n.nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	acfg := n.cfg.Admin
	acfg.Logger, acfg.Registerer, acfg.TLS = n.log.With("component", "admin"), n.reg, n.adminTLS
	if n.admin, err = admin.New(acfg); err != nil {
		return err
	}
	n.liveAdmin.Store(n.admin)
	n.admin.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	// An ingestor answers calls without NATS (the fallback, records
	// spooled): its readiness reports NATS without failing on it, or every
	// ingestor would leave the load balancer together.
	nc := n.nc // checks run until the admin listener stops; Shutdown clears the fields
	n.admin.AddCheck("nats", r.Ingest, func(context.Context) error { return connected(nc) })
	if r.Ingest || r.Archiver {
		stream, err := broker.EnsureStream(setup, js, n.cfg.Stream, n.log)
		if err != nil {
			return err
		}
		n.admin.AddCheck("stream", r.Ingest, n.overNATS(func(ctx context.Context) error {
			_, err := stream.Info(ctx)
			return err
		}))
		n.reg.MustRegister(broker.StreamCollector(n.nc, stream))
	}
	if r.Archiver {
		if err := n.startArchiver(js); err != nil {
			return err
		}
	}
	if r.Ingest || r.Deciders > 0 {
		if err := n.startDeciders(setup, js); err != nil {
			return err
		}
	}
	if r.Ingest {
		if err := n.startIngest(); err != nil {
			return err
		}
	}
	if r.Ingest {
		if err := n.startPoolFeed(js); err != nil {
			return err
		}
	}
	if err := n.listen(); err != nil {
		return err
	}
	n.log.Info("callflow running", "role", r.Name, "version", n.cfg.Version, "deciders", len(n.deciders),
		"ingest", n.ingest != nil, "archiver", n.archiver != nil, "admin_addr", n.AdminAddr(), "webhook_addr", n.WebhookAddr())
	close(n.ready)
	return nil
}

// connected reports whether a NATS connection is up.
func connected(nc *nats.Conn) error {
	if !nc.IsConnected() {
		return fmt.Errorf("not connected (%s)", nc.Status())
	}
	return nil
}

// overNATS makes a check that asks JetStream fail at once while NATS is
// disconnected, instead of waiting out its timeout: a probe wants its
// answer within seconds.
func (n *Node) overNATS(check func(context.Context) error) func(context.Context) error {
	nc := n.nc
	return func(ctx context.Context) error {
		if err := connected(nc); err != nil {
			return err
		}
		return check(ctx)
	}
}

// connect starts the embedded server when there is one and connects.
func (n *Node) connect() error {
	conn := n.cfg.Conn
	if conn.Name == "" {
		conn.Name = "callflow-" + n.cfg.Roles.Name
	}
	conn.Logger = n.log.With("component", "nats")
	if n.cfg.Roles.Embedded {
		ecfg := n.cfg.Embedded
		ecfg.Logger = n.log // its lines carry component=nats-server already
		if err := canListen(ecfg.Listen); err != nil {
			return fmt.Errorf("embedded NATS server: %w", err)
		}
		var err error
		if n.ns, err = broker.StartEmbedded(ecfg); err != nil {
			return err
		}
		conn.Embedded = n.ns
		n.log.Info("embedded NATS server started", "url", n.ns.ClientURL(), "store", ecfg.DataDir)
	}
	var err error
	n.nc, err = broker.Connect(conn)
	return err
}

// canListen reports why addr cannot be listened on, if it cannot: the
// embedded server only logs that and would be waited for in vain.
func canListen(addr string) error {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
		return nil // StartEmbedded reports a malformed address; port 0 is always free
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

// startDeciders opens the sessions bucket and starts the deciders.
func (n *Node) startDeciders(ctx context.Context, js jetstream.JetStream) error {
	scfg := n.cfg.Sessions
	scfg.Logger = n.log.With("component", "sessions")
	var err error
	if n.store, err = session.Open(ctx, js, scfg); err != nil {
		return err
	}
	n.admin.AddCheck("sessions_bucket", n.cfg.Roles.Ingest, n.overNATS(n.store.Check))
	n.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "callflow_sessions",
		Help: "Open masking sessions in this process's in-memory index.",
	}, func() float64 { return float64(n.store.Len()) }))

	dcfg := n.cfg.Decider
	dcfg.Logger = n.log.With("component", "decider")
	if dcfg.Version == "" {
		dcfg.Version = n.cfg.Version
	}
	dcfg.Metrics = decider.NewMetrics(n.reg)
	for range n.cfg.Roles.Deciders {
		d, err := decider.Start(n.nc, n.store, dcfg)
		if err != nil {
			return err
		}
		n.deciders = append(n.deciders, d)
	}
	if len(n.deciders) > 0 {
		// Beside an ingestor, a stopped decider only means fewer
		// deciders: the ingestor still answers.
		deciders := n.deciders
		n.admin.AddCheck("deciders", n.cfg.Roles.Ingest, func(context.Context) error {
			for _, d := range deciders {
				if d.Stopped() {
					return errors.New("a decider service stopped")
				}
			}
			return nil
		})
	}
	return nil
}

// startIngest builds the ingestor and mounts the session API.
func (n *Node) startIngest() error {
	icfg := n.cfg.Ingest
	icfg.Logger = n.log.With("component", "ingest")
	icfg.Metrics = ingest.NewMetrics(n.reg)
	icfg.TLS = n.webhookTLS
	if len(n.deciders) > 0 {
		icfg.Local = n.deciders[0]
	}
	var err error
	if n.ingest, err = ingest.New(n.nc, icfg); err != nil {
		return err
	}
	n.liveIngest.Store(n.ingest)
	n.admin.MountSessions(n.store, n.ingest)
	if n.cfg.History != nil {
		// Connects when first asked: a ClickHouse down at start only
		// makes interactions answer 503 until it is back.
		if n.history, err = archiver.OpenHistory(*n.cfg.History); err != nil {
			return fmt.Errorf("interactions: %w", err)
		}
		n.admin.UseInteractions(interactions{n.history})
		if !n.cfg.Roles.Archiver {
			n.admin.AddCheck("clickhouse", true, n.history.Check)
		}
	}
	// Ready means calls are answered and their records kept: in the
	// stream, or in the spool while it has room.
	n.admin.AddCheck("records", false, n.ingest.CheckRecords)
	in := n.ingest
	n.admin.AddCheck("breaker", true, func(context.Context) error {
		if in.BreakerOpen() {
			return errors.New("open: calls get the fallback answer")
		}
		return nil
	})
	return nil
}

// startArchiver runs the archiver in the background until shutdown.
func (n *Node) startArchiver(js jetstream.JetStream) error {
	acfg := n.cfg.Archiver
	acfg.Logger = n.log.With("component", "archiver")
	acfg.Metrics = archiver.NewMetrics(n.reg)
	a, err := archiver.Open(js, acfg)
	if err != nil {
		return err
	}
	n.archiver = a
	n.admin.AddCheck("clickhouse", !n.cfg.Roles.ArchiveRequired, a.Check)
	ctx, cancel := context.WithCancel(context.Background())
	n.archStop, n.archDone = cancel, make(chan struct{})
	go func() {
		defer close(n.archDone)
		if err := a.Run(ctx, n.cfg.ShutdownTimeout/2); err != nil {
			n.log.Error("archiver stopped", "error", err)
		}
	}()
	return nil
}

// startPoolFeed runs the pool feed in the background until shutdown: it
// applies the VIRTUAL_NUMBER_UPDATE records to the number pool, with its
// audit records kept through the ingestor's record path. Its readiness
// check is advisory: the pool waiting for an update never stops calls.
func (n *Node) startPoolFeed(js jetstream.JetStream) error {
	fcfg := n.cfg.PoolFeed
	fcfg.Stream = n.cfg.Stream.Name
	fcfg.Logger = n.log.With("component", "poolfeed")
	fcfg.Metrics = poolfeed.NewMetrics(n.reg)
	if fcfg.Instance = n.cfg.Admin.Instance; fcfg.Instance == "" {
		fcfg.Instance = n.cfg.Ingest.Instance
	}
	f, err := poolfeed.New(js, n.store, n.ingest, fcfg)
	if err != nil {
		return err
	}
	n.reg.MustRegister(poolfeed.NumbersCollector(n.store.PoolStats))
	n.admin.AddCheck("pool_feed", true, n.overNATS(f.Check))
	ctx, cancel := context.WithCancel(context.Background())
	n.feed, n.feedStop, n.feedDone = f, cancel, make(chan struct{})
	go func() {
		defer close(n.feedDone)
		f.Run(ctx)
	}()
	return nil
}

// stopPoolFeed lets the feed finish the record in hand, then stops it;
// it runs before the ingestor closes its record path, which the feed's
// audit records take.
func (n *Node) stopPoolFeed(ctx context.Context) error {
	if n.feed == nil {
		return nil
	}
	n.feedStop()
	var err error
	select {
	case <-n.feedDone:
	case <-ctx.Done():
		err = fmt.Errorf("pool feed did not finish its update in hand: %w", ctx.Err())
	}
	st := n.feed.Stats()
	n.log.Info("pool feed stopped", "applied", st.Applied, "refused", st.Refused, "retried", st.Retried, "changed", st.Changed)
	n.feed = nil
	return err
}

// listen binds the admin and webhook listeners and serves them.
func (n *Node) listen() error {
	var err error
	if n.adminLn, err = n.admin.Listen(); err != nil {
		return err
	}
	// The goroutines get their own references: a failed start clears the
	// fields while they may not have run yet.
	adm, adminLn := n.admin, n.adminLn
	n.serve(func() error { return adm.Serve(adminLn) })
	if n.ingest == nil {
		return nil
	}
	if n.webhookLn, err = net.Listen("tcp", n.cfg.Ingest.Addr); err != nil {
		return fmt.Errorf("webhook listener: %w", err)
	}
	in, webhookLn := n.ingest, n.webhookLn
	n.serve(func() error { return in.Serve(webhookLn) })
	return nil
}

func (n *Node) serve(f func() error) {
	n.serving.Add(1)
	go func() {
		defer n.serving.Done()
		if err := f(); err != nil {
			n.errc <- err
		}
	}()
}

// Failed delivers the error of a listener that stopped serving.
func (n *Node) Failed() <-chan error { return n.errc }

// stopArchiver lets the archiver send the batch in hand, then closes it.
func (n *Node) stopArchiver(ctx context.Context) error {
	if n.archiver == nil {
		return nil
	}
	n.archStop()
	var err error
	select {
	case <-n.archDone:
	case <-ctx.Done():
		err = fmt.Errorf("archiver did not finish its last batch: %w", ctx.Err())
	}
	st := n.archiver.Stats()
	n.log.Info("archiver stopped", "rows", st.Rows, "batches", st.Batches, "rejected", st.Rejected)
	_ = n.archiver.Close()
	n.archiver = nil
	return err
}

// Shutdown stops the node in dependency order (see the package comment)
// within ctx, except that calls already in flight are always answered and
// their records kept before the ingestor's records are closed.
func (n *Node) Shutdown(ctx context.Context) error {
	var errs []error
	if err := n.stopPoolFeed(ctx); err != nil {
		errs = append(errs, err)
	}
	if n.ingest != nil {
		if err := n.ingest.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("ingest: %w", err))
		}
		st := n.ingest.Stats()
		n.log.Info("ingest drained", "requests", st.Requests, "decided", st.Decided, "fallbacks", st.Fallbacks,
			"recorded", st.Recorded, "spooled", st.Spooled, "spool_waiting", st.SpoolWaiting, "lost", st.Lost)
		n.ingest = nil
	}
	for _, d := range n.deciders {
		if err := d.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("decider: %w", err))
		}
	}
	n.deciders = nil
	if err := n.stopArchiver(ctx); err != nil {
		errs = append(errs, err)
	}
	if n.admin != nil {
		if err := n.admin.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("admin: %w", err))
		}
		n.admin = nil
	}
	n.close()
	return errors.Join(errs...)
}

// close releases what is still held; after Shutdown it only closes NATS.
func (n *Node) close() {
	if n.feed != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = n.stopPoolFeed(ctx)
		cancel()
	}
	if n.ingest != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = n.ingest.Shutdown(ctx)
		cancel()
		n.ingest = nil
	}
	if n.archiver != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = n.stopArchiver(ctx)
		cancel()
	}
	if n.admin != nil {
		_ = n.admin.Shutdown(context.Background())
		n.admin = nil
	}
	if n.history != nil {
		_ = n.history.Close()
		n.history = nil
	}
	if n.store != nil {
		n.store.Close()
		n.store = nil
	}
	if n.nc != nil {
		if err := broker.Drain(n.nc, 5*time.Second); err != nil {
			n.log.Warn("nats drain incomplete", "error", err)
		}
		n.nc = nil
	}
	if n.ns != nil {
		n.ns.Shutdown()
		n.ns.WaitForShutdown()
		n.ns = nil
	}
}

// newRegistry returns a metrics registry with the Go runtime, process and
// build-info collectors.
func newRegistry(version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "callflow_build_info",
			Help:        "Always 1; the labels say which build is running.",
			ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
		}, func() float64 { return 1 }),
	)
	return reg
}

// interactions serves the session API's interactions from the archive.
type interactions struct{ h *archiver.History }

// Interactions implements admin.InteractionReader.
func (i interactions) Interactions(ctx context.Context, id string, limit int, cursor string) (admin.InteractionPage, error) {
	p, err := i.h.Interactions(ctx, id, limit, cursor)
	switch {
	case errors.Is(err, archiver.ErrInvalidQuery):
		return admin.InteractionPage{}, fmt.Errorf("%w: %w", admin.ErrInvalidQuery, err)
	case err != nil:
		return admin.InteractionPage{}, err
	}
	page := admin.InteractionPage{Items: p.Interactions}
	if p.NextCursor != nil {
		page.NextCursor = *p.NextCursor
	}
	return page, nil
}
