package wire

// The clientActionId values of the answers callflow writes itself, so that
// whoever reads an answer (the ingestor's tests, the load generator's
// report) can tell them from a decider's connecting callflow.
const (
	// ClientActionOutOfSession is the clientActionId of the answer a
	// decider gives a caller who is in no session on the dialled number:
	// a say, then a hangup.
	ClientActionOutOfSession = "out-of-session"
	// ClientActionFallback is the clientActionId of the answer the
	// ingestor gives when no decider answered in time (or the breaker in
	// front of the deciders is open): a say, then a hangup.
	ClientActionFallback = "fallback"
)
