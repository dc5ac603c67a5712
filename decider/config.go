package decider

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/callflow/callflow/wire"
)

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("invalid decider config")

// Defaults for Config.
const (
	DefaultServiceName = "callflow-decider"
	DefaultSubject     = wire.DecideSubject
	DefaultQueueGroup  = "callflow-deciders"

	DefaultCallQueue        = 4096
	DefaultCallWriters      = 2
	DefaultCallWriteTimeout = 3 * time.Second
	DefaultStopTimeout      = 3 * time.Second
	DefaultCountDelay       = 5 * time.Second
)

// DefaultOutOfSession is what a caller outside any session hears.
var DefaultOutOfSession = wire.Say{
	Text:         "Sorry, this number cannot connect your call. Goodbye.",
	VoiceProfile: "en-US-ZiraRUS",
}

// DefaultFlowEnd is what a caller hears when a flow cannot go on (tries
// used up without an onFailure step, a flow state that cannot be
// continued after a restart) before the call is hung up.
var DefaultFlowEnd = wire.Say{
	Text:         "Sorry, we could not complete your call. Goodbye.",
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
	// OutOfSession is said before hanging up on callers outside a session,
	// on numbers and sub-accounts without an out-of-session policy.
	OutOfSession wire.Say
	// FlowEnd is said before hanging up on a caller whose flow cannot go
	// on. Default DefaultFlowEnd.
	FlowEnd wire.Say
	// CallQueue bounds the connected calls waiting to be counted in their
	// session (call count, last call, idle expiry, maxCalls), shared
	// evenly among the writers; a call that finds its writer's queue full
	// is not counted (callflow_session_updates_total{result="dropped"}).
	// Default DefaultCallQueue.
	CallQueue int
	// CallWriters is the number of workers writing those counts to the
	// session store; a session's calls always go to the same one.
	// Default DefaultCallWriters.
	CallWriters int
	// CallWriteTimeout bounds one count's write. Default
	// DefaultCallWriteTimeout.
	CallWriteTimeout time.Duration
	// CountDelay is how long the calls of a session whose lifecycle does
	// not turn on them (no maxCalls, an absolute expiry) may wait to be
	// counted, merged with the session's later calls meanwhile: its
	// callCount and lastCallAt lag by up to that much, and a session
	// called again within it costs one write. The calls of sessions with
	// maxCalls or an idle expiry are written at once. Negative: every call
	// at once. Default DefaultCountDelay.
	CountDelay time.Duration
	// StopTimeout bounds how long Stop keeps writing the counts still
	// queued; those left are dropped. Default DefaultStopTimeout.
	StopTimeout time.Duration
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
	if c.FlowEnd.Text == "" {
		c.FlowEnd = DefaultFlowEnd
	}
	if c.CallQueue == 0 {
		c.CallQueue = DefaultCallQueue
	}
	if c.CallWriters == 0 {
		c.CallWriters = DefaultCallWriters
	}
	if c.CallWriteTimeout == 0 {
		c.CallWriteTimeout = DefaultCallWriteTimeout
	}
	if c.CountDelay == 0 {
		c.CountDelay = DefaultCountDelay
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = DefaultStopTimeout
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
	if err := c.FlowEnd.Validate(); err != nil {
		return fmt.Errorf("%w: flow end say: %v", ErrInvalidConfig, err)
	}
	switch {
	case c.CallQueue < 1:
		return fmt.Errorf("%w: call queue must be >= 1, got %d", ErrInvalidConfig, c.CallQueue)
	case c.CallWriters < 1 || c.CallWriters > 64:
		return fmt.Errorf("%w: call writers must be 1 to 64, got %d", ErrInvalidConfig, c.CallWriters)
	case c.CallWriteTimeout <= 0:
		return fmt.Errorf("%w: call write timeout must be > 0, got %s", ErrInvalidConfig, c.CallWriteTimeout)
	case c.StopTimeout <= 0:
		return fmt.Errorf("%w: stop timeout must be > 0, got %s", ErrInvalidConfig, c.StopTimeout)
	}
	return nil
}
