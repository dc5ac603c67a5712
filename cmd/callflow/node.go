package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/node"
)

// runNode builds the node the options describe and runs it until ctx ends,
// holding its data directory (lockDataDir). SIGHUP reloads the listeners'
// certificates and the secrets given as files (reloadSecrets).
func runNode(ctx context.Context, o *options, r node.Roles, stderr io.Writer) error {
	if err := o.validate(r); err != nil {
		return err
	}
	log, err := o.logger(stderr)
	if err != nil {
		return err
	}
	o.logIgnoredKeys(log)
	o.gc.apply(log)
	cfg, err := o.nodeConfig(r)
	if err != nil {
		return err
	}
	cfg.Logger = log
	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	// Once the configuration is known good, before anything is written.
	if usesDataDir(r) {
		release, err := lockDataDir(o.dataDir)
		if err != nil {
			return err
		}
		defer release()
	}
	if o.pprofAddr != "" {
		servePprof(o.pprofAddr, log)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	defer func() { signal.Stop(hup); close(done) }()
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				select { // the listeners the secrets go to exist once ready
				case <-n.Ready():
				case <-done:
					return
				}
				_ = n.ReloadCerts()         // each failure is logged by the node
				_ = o.reloadSecrets(n, log) // and each of these here
			}
		}
	}()
	return n.Run(ctx)
}

// usesDataDir reports whether the roles keep files in --data-dir: the
// embedded server's JetStream store, the ingestor's spool.
func usesDataDir(r node.Roles) bool { return r.Embedded || r.Ingest }

// nodeConfig turns the options into the node's configuration.
func (o *options) nodeConfig(r node.Roles) (node.Config, error) {
	cfg := node.Config{
		Roles:           r,
		Version:         buildVersion(),
		Embedded:        broker.EmbeddedConfig{Listen: o.natsListen, DataDir: o.dataDir},
		Conn:            o.connConfig(),
		Stream:          o.streamConfig(),
		Sessions:        o.sessionConfig(),
		Decider:         o.deciderConfig(),
		Admin:           o.adminConfig(r.Ingest),
		AdminTLS:        node.TLSFiles{Cert: o.adminTLSCert, Key: o.adminTLSKey},
		WebhookTLS:      node.TLSFiles{Cert: o.httpTLSCert, Key: o.httpTLSKey},
		ShutdownTimeout: o.shutdownTimeout,
	}
	if r.Ingest {
		cfg.Ingest = o.ingestConfig()
	}
	if r.Archiver {
		var err error
		if cfg.Archiver, err = o.archiverConfig(); err != nil {
			return node.Config{}, err
		}
	}
	if r.Ingest && o.clickhouseAddr != "" {
		ch, err := o.clickhouseConfig()
		if err != nil {
			return node.Config{}, err
		}
		cfg.History = &ch
	}
	o.liveSecrets(&cfg)
	return cfg, nil
}
