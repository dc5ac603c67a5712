package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig configures the NATS server that `callflow serve` runs
// in-process when no external server is given.
type EmbeddedConfig struct {
	// Listen is the host:port other processes (more deciders, the nats CLI)
	// connect to.
	Listen string
	// DataDir holds JetStream's store, under DataDir/jetstream.
	DataDir string
	// Name is the server name.
	Name string
	// Logger receives the server's warnings and errors.
	Logger *slog.Logger
}

// StartEmbedded starts a NATS server with JetStream and waits until it
// accepts connections.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	name := cfg.Name
	if name == "" {
		name = "callflow"
	}
	opts := &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "jetstream"),
		// The stream's own bounds (max bytes, max age) limit what it
		// keeps; creating it must not fail because the disk had less
		// free space at start than the bound (the server reserves it
		// against 75% of the free disk by default).
		JetStreamMaxStore: server.JetStreamMaxStoreDefault,
		NoSigs:            true,
		// A call-centre peak must not trip the default 1MB pending limit on
		// the in-process connections.
		MaxPending: 64 << 20,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(&slogAdapter{cfg.Logger}, false, false, false)
	}
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats: not ready for connections after 15s")
	}
	return ns, nil
}

// slogAdapter routes the server's log lines to slog; notices are debug
// lines so that a start is not a page of server banner at info level.
type slogAdapter struct{ log *slog.Logger }

func (a *slogAdapter) Noticef(format string, v ...any) {
	a.log.Debug(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (a *slogAdapter) Warnf(format string, v ...any) {
	a.log.Warn(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (a *slogAdapter) Fatalf(format string, v ...any) {
	a.log.Error(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (a *slogAdapter) Errorf(format string, v ...any) {
	a.log.Error(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (a *slogAdapter) Debugf(format string, v ...any) {
	a.log.Debug(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (a *slogAdapter) Tracef(format string, v ...any) {}
