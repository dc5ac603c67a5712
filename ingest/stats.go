package ingest

import "sync/atomic"

// Stats counts what the ingestor did since it started.
type Stats struct {
	// Requests is every webhook request answered, whatever the status.
	Requests uint64
	// Rejected is requests answered with a 4xx.
	Rejected uint64
	// Decided is CALL_ACTIONs answered by a decider.
	Decided uint64
	// Fallbacks is CALL_ACTIONs answered with the fallback.
	Fallbacks uint64
	// Recorded is records acknowledged by JetStream.
	Recorded uint64
	// Unacked is records JetStream did not acknowledge in time, kept in the
	// unacked file instead.
	Unacked uint64
}

type stats struct {
	requests, rejected, decided, fallbacks, recorded atomic.Uint64
}

func (s *stats) snapshot(unacked uint64) Stats {
	return Stats{
		Requests:  s.requests.Load(),
		Rejected:  s.rejected.Load(),
		Decided:   s.decided.Load(),
		Fallbacks: s.fallbacks.Load(),
		Recorded:  s.recorded.Load(),
		Unacked:   unacked,
	}
}
