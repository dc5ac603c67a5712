package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/callflow/callflow/admin"
	"github.com/callflow/callflow/archiver"
	"github.com/callflow/callflow/broker"
	"github.com/callflow/callflow/certs"
	"github.com/callflow/callflow/decider"
	"github.com/callflow/callflow/ingest"
	"github.com/callflow/callflow/session"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// nodeRoles says which parts a process runs.
type nodeRoles struct {
	name     string
	embedded bool // start an embedded NATS server
	ingest   bool // run the webhook listener and the session API
	archiver bool // archive the records stream into ClickHouse
	// archiveRequired makes ClickHouse part of readiness (the archiver
	// role); in serve, answering calls never depends on ClickHouse.
	archiveRequired bool
}

// node is a running process: whatever its roles, it is started and stopped
// in the same order.
type node struct {
	log      *slog.Logger
	reg      *prometheus.Registry
	archiver *archiver.Archiver
	archStop context.CancelFunc
	archDone chan struct{}
	ns       *server.Server
	nc       *nats.Conn
	store    *session.Store
	deciders []*decider.Service
	ingest   *ingest.Server
	admin    *admin.Server
	httpTLS  *certs.Reloader
	certs    []*certs.Reloader // may hold nils: listeners without TLS
}

// reloadCertsOnSIGHUP reads the listeners' certificate files again on each
// SIGHUP; a pair that fails to load leaves the one in use. It returns the
// function that stops listening for the signal.
func (n *node) reloadCertsOnSIGHUP() func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				for _, c := range n.certs {
					if c == nil {
						continue
					}
					cert, key := c.Files()
					if err := c.Reload(); err != nil {
						n.log.Error("TLS certificate not reloaded; the previous one stays in use", "cert", cert, "key", key, "error", err)
						continue
					}
					n.log.Info("TLS certificate reloaded", "cert", cert)
				}
			}
		}
	}()
	return func() { signal.Stop(hup); close(done) }
}

// runNode starts the parts r names, serves until ctx ends or a listener
// fails, then stops gracefully within --shutdown-timeout.
func runNode(ctx context.Context, o *options, r nodeRoles, stderr io.Writer) error {
	if err := o.validate(r); err != nil {
		return err
	}
	log, err := o.logger(stderr)
	if err != nil {
		return err
	}
	adminCfg := o.adminConfig(r.ingest, log.With("component", "admin"))
	if err := adminCfg.Validate(); err != nil {
		return err
	}
	if err := o.streamConfig().Validate(); (r.ingest || r.archiver) && err != nil {
		return err
	}

	if o.pprofAddr != "" {
		servePprof(o.pprofAddr, log)
	}
	n := &node{log: log, reg: newRegistry()}
	defer n.close()
	adminCfg.Registerer = n.reg
	if adminCfg.TLS, err = certs.New(o.adminTLSCert, o.adminTLSKey); err != nil {
		return fmt.Errorf("--admin-tls-cert/--admin-tls-key: %w", err)
	}
	n.certs = append(n.certs, adminCfg.TLS)
	if r.ingest {
		if n.httpTLS, err = certs.New(o.httpTLSCert, o.httpTLSKey); err != nil {
			return fmt.Errorf("--http-tls-cert/--http-tls-key: %w", err)
		}
		n.certs = append(n.certs, n.httpTLS)
	}
	stopReload := n.reloadCertsOnSIGHUP()
	defer stopReload()
	if err := n.start(ctx, o, r, adminCfg); err != nil {
		return err
	}

	errc := make(chan error, 2)
	adminLn, err := n.admin.Listen()
	if err != nil {
		return err
	}
	go func() { errc <- n.admin.Serve(adminLn) }()
	if n.ingest != nil {
		ln, err := net.Listen("tcp", o.httpAddr)
		if err != nil {
			return fmt.Errorf("webhook listener: %w", err)
		}
		go func() { errc <- n.ingest.Serve(ln) }()
	}
	log.Info("callflow running", "role", r.name, "version", buildVersion(), "deciders", len(n.deciders), "ingest", n.ingest != nil, "archiver", n.archiver != nil)

	var failed error
	select {
	case <-ctx.Done():
		log.Info("stopping: draining in-flight calls", "timeout", o.shutdownTimeout)
	case failed = <-errc:
		log.Error("listener failed; stopping", "error", failed)
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := errors.Join(failed, n.shutdown(sctx)); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

func (n *node) start(ctx context.Context, o *options, r nodeRoles, adminCfg admin.Config) error {
	log := n.log
	var err error
	conn := o.connConfig("callflow-"+r.name, log.With("component", "nats"))
	if r.embedded {
		n.ns, err = broker.StartEmbedded(broker.EmbeddedConfig{Listen: o.natsListen, DataDir: o.dataDir, Logger: log.With("component", "nats-server")})
		if err != nil {
			return err
		}
		conn.Embedded = n.ns
		log.Info("embedded NATS server started", "url", n.ns.ClientURL(), "store", o.dataDir)
	}
	if n.nc, err = broker.Connect(conn); err != nil {
		return err
	}
	js, err := jetstream.New(n.nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	if n.admin, err = admin.New(adminCfg); err != nil {
		return err
	}
	n.admin.Handle("GET /metrics", metricsHandler(n.reg))
	n.admin.AddCheck("nats", false, func(context.Context) error {
		if !n.nc.IsConnected() {
			return fmt.Errorf("not connected (%s)", n.nc.Status())
		}
		return nil
	})
	if r.ingest || r.archiver {
		stream, err := broker.EnsureStream(setup, js, o.streamConfig(), log)
		if err != nil {
			return err
		}
		n.admin.AddCheck("stream", false, func(ctx context.Context) error {
			_, err := stream.Info(ctx)
			return err
		})
	}
	if r.archiver {
		if err := n.startArchiver(js, o, r); err != nil {
			return err
		}
	}
	if !r.ingest && o.deciders == 0 {
		return nil // the archiver role needs no sessions
	}
	if n.store, err = session.Open(setup, js, o.sessionConfig(log.With("component", "sessions"))); err != nil {
		return err
	}
	n.admin.AddCheck("sessions_bucket", false, n.store.Check)
	n.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "callflow_sessions",
		Help: "Open masking sessions in this process's in-memory index.",
	}, func() float64 { return float64(n.store.Len()) }))

	dcfg := o.deciderConfig(log.With("component", "decider"))
	dcfg.Metrics = decider.NewMetrics(n.reg)
	for range o.deciders {
		d, err := decider.Start(n.nc, n.store, dcfg)
		if err != nil {
			return err
		}
		n.deciders = append(n.deciders, d)
	}
	if len(n.deciders) > 0 {
		n.admin.AddCheck("deciders", r.ingest, func(context.Context) error {
			for _, d := range n.deciders {
				if d.Stopped() {
					return errors.New("a decider service stopped")
				}
			}
			return nil
		})
	}
	if r.ingest {
		icfg := o.ingestConfig(log.With("component", "ingest"))
		icfg.Metrics = ingest.NewMetrics(n.reg)
		icfg.TLS = n.httpTLS
		if len(n.deciders) > 0 {
			icfg.Local = n.deciders[0]
		}
		if n.ingest, err = ingest.New(n.nc, icfg); err != nil {
			return err
		}
		n.admin.MountSessions(n.store, n.ingest)
		n.admin.AddCheck("breaker", true, func(context.Context) error {
			if n.ingest.BreakerOpen() {
				return errors.New("open: calls get the fallback answer")
			}
			return nil
		})
	}
	return nil
}

// startArchiver runs the archiver in the background until shutdown.
func (n *node) startArchiver(js jetstream.JetStream, o *options, r nodeRoles) error {
	acfg, err := o.archiverConfig(n.log.With("component", "archiver"))
	if err != nil {
		return err
	}
	acfg.Metrics = archiver.NewMetrics(n.reg)
	a, err := archiver.Open(js, acfg)
	if err != nil {
		return err
	}
	n.archiver = a
	n.admin.AddCheck("clickhouse", !r.archiveRequired, a.Check)
	ctx, cancel := context.WithCancel(context.Background())
	n.archStop, n.archDone = cancel, make(chan struct{})
	go func() {
		defer close(n.archDone)
		if err := a.Run(ctx, o.shutdownTimeout/2); err != nil {
			n.log.Error("archiver stopped", "error", err)
		}
	}()
	return nil
}

// stopArchiver lets the archiver send the batch in hand, then closes it.
func (n *node) stopArchiver(ctx context.Context) error {
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

// shutdown stops in dependency order: stop taking webhooks and answer the
// calls in flight (their deciders still serve), wait for their records'
// acks, then the deciders, the admin listener, the session watch, NATS.
func (n *node) shutdown(ctx context.Context) error {
	var errs []error
	if n.ingest != nil {
		if err := n.ingest.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("ingest: %w", err))
		}
		st := n.ingest.Stats()
		n.log.Info("ingest drained", "requests", st.Requests, "decided", st.Decided, "fallbacks", st.Fallbacks, "recorded", st.Recorded, "spooled", st.Spooled, "spool_waiting", st.SpoolWaiting, "lost", st.Lost)
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
	}
	n.close()
	return errors.Join(errs...)
}

// close releases what is still held; after shutdown it only closes NATS.
func (n *node) close() {
	if n.archiver != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = n.stopArchiver(ctx)
		cancel()
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
