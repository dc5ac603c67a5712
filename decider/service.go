package decider

import (
	"fmt"
	"sync"
	"time"

	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Service is one decider: a micro service instance whose endpoint is in
// the deciders' queue group. A micro endpoint handles its requests one at a
// time, so a process that wants more parallelism runs several instances.
//
// A connected call is counted in its session (see Sessions.RecordCall)
// after the answer, by workers of the service: the answer never waits on
// storage.
type Service struct {
	svc         micro.Service
	policy      *Policy
	bufs        sync.Pool
	metrics     *Metrics
	calls       *callCounter
	stopTimeout time.Duration
}

// Start registers a decider on nc. The session store behind sessions must
// hold its initial snapshot already (session.Open guarantees it), or the
// first calls would wrongly be out of session.
func Start(nc *nats.Conn, sessions Sessions, cfg Config) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{policy: newPolicy(sessions, cfg.OutOfSession, cfg.FlowEnd, cfg.Metrics), metrics: cfg.Metrics, stopTimeout: cfg.StopTimeout}
	s.calls = newCallCounter(sessions, &cfg)
	s.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	svc, err := micro.AddService(nc, micro.Config{
		Name:        cfg.ServiceName,
		Version:     cfg.Version,
		Description: "callflow IVR flow and number-masking decisions for 8x8 call actions",
		QueueGroup:  cfg.QueueGroup,
		Endpoint: &micro.EndpointConfig{
			Subject: cfg.Subject,
			Handler: micro.HandlerFunc(s.handle),
		},
		ErrorHandler: func(_ micro.Service, err *micro.NATSError) {
			cfg.Logger.Error("decider service error", "subject", err.Subject, "error", err.Description)
		},
	})
	if err != nil {
		s.calls.stop(0)
		return nil, fmt.Errorf("register decider service: %w", err)
	}
	s.svc = svc
	// The subscription must be on the server before callers are told the
	// decider is up, or their first requests find no responders.
	if err := nc.Flush(); err != nil {
		_ = svc.Stop()
		s.calls.stop(0)
		return nil, fmt.Errorf("register decider service: %w", err)
	}
	cfg.Logger.Info("decider started", "service", cfg.ServiceName, "id", svc.Info().ID, "subject", cfg.Subject, "queue_group", cfg.QueueGroup)
	return s, nil
}

func (s *Service) handle(req micro.Request) {
	dr, err := wire.ParseDecideRequest(req.Data())
	if err != nil {
		s.metrics.requests.WithLabelValues("error").Inc()
		_ = req.Error("400", "bad decide request", nil)
		return
	}
	bp := s.bufs.Get().(*[]byte)
	now := time.Now()
	body, v := s.decide((*bp)[:0], &dr, now)
	// Respond copies body into the connection's buffer before returning.
	_ = req.Respond(body)
	*bp = body
	s.bufs.Put(bp)
	s.count(v, now) // after the answer
}

// decide is the decision and its counter.
func (s *Service) decide(dst []byte, req *wire.DecideRequest, now time.Time) ([]byte, wire.Verdict) {
	body, v := s.policy.Decide(dst, req, now)
	s.metrics.requests.WithLabelValues(v.Outcome).Inc()
	if v.FlowID != "" {
		s.metrics.flowSteps.inc(v.FlowID, v.FlowStep)
	}
	return body, v
}

// count queues a connected call to be counted in its session.
func (s *Service) count(v wire.Verdict, at time.Time) {
	if v.Outcome == wire.OutcomeConnect && v.MaskingSessionID != "" {
		s.calls.add(v.MaskingSessionID, at)
	}
}

// Decide answers req in this process, with the policy and the counters of
// the service's endpoint but without the NATS round trip: what an ingestor
// sharing the process (serve) asks instead of the pool, as NATS itself
// prefers a queue subscriber on the local server. The callflow is appended
// to dst. A connected call is queued to be counted in its session as
// Decide returns: the write runs on the service's workers, so the answer
// never waits on it (though it may land before the caller has sent the
// answer on).
func (s *Service) Decide(dst []byte, req *wire.DecideRequest, now time.Time) ([]byte, wire.Verdict) {
	body, v := s.decide(dst, req, now)
	s.count(v, now)
	return body, v
}

// ID is the service instance id, as `nats micro info` shows it.
func (s *Service) ID() string { return s.svc.Info().ID }

// Stop unregisters the decider (requests in flight are answered first),
// then writes the call counts still queued, for at most
// Config.StopTimeout: those left then are dropped (and counted so). A
// call answered once Stop has begun (by the draining subscription, or by
// Decide) is not counted either: a drop.
func (s *Service) Stop() error {
	err := s.svc.Stop()
	s.calls.stop(s.stopTimeout)
	if err != nil {
		return fmt.Errorf("stop decider service: %w", err)
	}
	return nil
}

// Stopped reports whether the service has stopped (also when its
// connection closed).
func (s *Service) Stopped() bool { return s.svc.Stopped() }
