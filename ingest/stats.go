package ingest

import "sync/atomic"

// Stats counts what the ingestor did since it started.
type Stats struct {
	// Requests is every webhook request answered, whatever the status.
	Requests uint64
	// Rejected is requests answered with an error status (4xx, or 503 when
	// an event could not be stored).
	Rejected uint64
	// Decided is CALL_ACTIONs answered by a decider.
	Decided uint64
	// Fallbacks is CALL_ACTIONs answered with the fallback.
	Fallbacks uint64
	// Recorded is records acknowledged by JetStream.
	Recorded uint64
	// Spooled is records JetStream did not acknowledge in time, kept in
	// the spool instead; SpoolWaiting is how many of those (and of an
	// earlier run's) are still waiting to be republished.
	Spooled      uint64
	SpoolWaiting int64
	// Lost is records neither JetStream nor the spool could keep.
	Lost uint64
}

type stats struct {
	requests, rejected, decided, fallbacks, recorded atomic.Uint64
}

func (s *stats) snapshot() Stats {
	return Stats{
		Requests:  s.requests.Load(),
		Rejected:  s.rejected.Load(),
		Decided:   s.decided.Load(),
		Fallbacks: s.fallbacks.Load(),
		Recorded:  s.recorded.Load(),
	}
}
