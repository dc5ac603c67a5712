package broker

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ConnConfig says how a role connects to NATS.
type ConnConfig struct {
	// URLs is a comma-separated list of server URLs (several for a cluster).
	URLs string
	// Name is the connection name servers show for this client.
	Name string
	// Embedded, when set, is used instead of URLs through an in-process
	// connection that bypasses the network stack.
	Embedded *server.Server
	// Logger receives connection state changes.
	Logger *slog.Logger

	// Credentials, at most one kind: User and Password, Token, NKeyFile
	// (a file holding an NKey seed), or CredsFile (a .creds file with a
	// user JWT and its seed, as nsc writes it).
	User, Password, Token, NKeyFile, CredsFile string
	// PasswordFunc and TokenFunc, when set, are asked for the password
	// (of User) and the token at each connect and reconnect, instead of
	// Password and Token (which still say which kind is configured): a
	// rotated secret then applies without a restart. A .creds file is
	// read again at each connect anyway.
	PasswordFunc, TokenFunc func() string
	// TLS: CAFile verifies the servers (instead of the system roots);
	// CertFile and KeyFile present a client certificate. Any of them, or
	// a tls:// URL, makes the connection require TLS.
	TLSCAFile, TLSCertFile, TLSKeyFile string
}

// Validate checks that at most one kind of credentials is given and that a
// client certificate comes with its key.
func (c *ConnConfig) Validate() error {
	kinds := 0
	for _, set := range []bool{c.User != "" || c.Password != "", c.Token != "", c.NKeyFile != "", c.CredsFile != ""} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds > 1:
		return fmt.Errorf("%w: give one kind of NATS credentials: user and password, token, nkey or creds", ErrInvalidConfig)
	case c.Password != "" && c.User == "":
		return fmt.Errorf("%w: a NATS password needs its user", ErrInvalidConfig)
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return fmt.Errorf("%w: a NATS client certificate needs both its certificate and key files", ErrInvalidConfig)
	}
	return nil
}

// authOptions turns the credentials and TLS settings into nats options.
func (c *ConnConfig) authOptions() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.User != "" && c.PasswordFunc != nil:
		user, password := c.User, c.PasswordFunc
		opts = append(opts, nats.UserInfoHandler(func() (string, string) { return user, password() }))
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "" && c.TokenFunc != nil:
		opts = append(opts, nats.TokenHandler(c.TokenFunc))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey: %w", err)
		}
		opts = append(opts, o)
	case c.CredsFile != "":
		if _, err := os.Stat(c.CredsFile); err != nil {
			return nil, fmt.Errorf("nats creds: %w", err)
		}
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(c.TLSCAFile))
	}
	if c.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(c.TLSCertFile, c.TLSKeyFile))
	}
	return opts, nil
}

// Connect opens a connection that reconnects forever with backoff: a NATS
// restart is ridden through, never a reason for the role to exit.
func Connect(cfg ConnConfig) (*nats.Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	auth, err := cfg.authOptions()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ReconnectBufSize(32 << 20),
		// A server that vanishes without closing the connection (power
		// loss, a partition) is noticed within about 15s, not nats.go's
		// default of minutes, and the client moves to another node.
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil && !nc.IsClosed() && !nc.IsDraining() {
				log.Warn("nats disconnected; reconnecting", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("nats async error", "subject", subject, "error", err)
		}),
	}
	opts = append(opts, auth...)
	url := cfg.URLs
	if cfg.Embedded != nil {
		opts = append(opts, nats.InProcessServer(cfg.Embedded))
		url = cfg.Embedded.ClientURL()
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", redactURLs(url), err)
	}
	return nc, nil
}

// Drain drains nc (subscriptions finish their pending messages, publishes
// are flushed) and waits up to timeout for it to close; then it is closed
// regardless.
func Drain(nc *nats.Conn, timeout time.Duration) error {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if nc.IsClosed() {
		return nil
	}
	defer nc.Close()
	if err := nc.Drain(); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("drain: not closed after %s", timeout)
	}
}

// redactURLs hides the passwords of comma-separated server URLs.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}
