package decider

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/callflow/callflow/wire"
)

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("invalid decider config")

// Defaults for Config.
const (
	DefaultServiceName = "callflow-decider"
	DefaultSubject     = wire.DecideSubject
	DefaultQueueGroup  = "callflow-deciders"
)

// DefaultOutOfSession is what a caller outside any session hears.
var DefaultOutOfSession = wire.Say{
	Text:         "Sorry, this number cannot connect your call. Goodbye.",
	VoiceProfile: "en-US-ZiraRUS",
}

// Config configures one decider instance.
type Config struct {
	// ServiceName is the micro service name, as `nats micro ls` shows it.
	ServiceName string
	// Version is the service version (SemVer).
	Version string
	// Subject is the request subject ingestors send to.
	Subject string
	// QueueGroup balances requests across every decider.
	QueueGroup string
	// OutOfSession is said before hanging up on callers outside a session.
	OutOfSession wire.Say
	// Logger receives notable events; never one line per call.
	Logger *slog.Logger
	// Metrics receives the measurements (see NewMetrics); share one among
	// the instances of a process. Nil keeps them unregistered.
	Metrics *Metrics
}

func (c *Config) setDefaults() {
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	if c.Version == "" {
		c.Version = "0.0.0"
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.QueueGroup == "" {
		c.QueueGroup = DefaultQueueGroup
	}
	if c.OutOfSession.Text == "" {
		c.OutOfSession = DefaultOutOfSession
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
	if err := c.OutOfSession.Validate(); err != nil {
		return fmt.Errorf("%w: out-of-session say: %v", ErrInvalidConfig, err)
	}
	return nil
}
