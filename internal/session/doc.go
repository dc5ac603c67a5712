// Package session keeps the number-masking state: sessions (two
// participants bound to one virtual number, with a lifecycle), the pool of
// virtual numbers that 8x8's number-health webhooks keep current, each
// sub-account's settings (its out-of-session policy and default flow), and
// the IVR flows that numbers and sub-accounts attach (Flow).
//
// All of it lives in one JetStream key-value bucket, so that every decider
// and every admin API on every machine sees the same state and it survives
// restarts. A Store watches the bucket and keeps an in-memory index, so a
// routing decision, an allocation or a list never waits on storage.
//
// Keys (KV keys allow only [-/_=.a-zA-Z0-9], so numbers are keyed by their
// digits, never with '+'):
//
//	s.<id>                                    a session, as JSON
//	p.<virtual digits>.<participant digits>   the id of the session that holds
//	                                          this participant on this number
//	k.<virtual digits>.<pin>                  the id of the open session that
//	                                          has this pin on this number
//	n.<digits>                                a number of the pool
//	a.<base64url of the sub-account id>       a sub-account's settings
//	f.<flow id>                               a flow's current version (or,
//	                                          for FlowRetention, the
//	                                          tombstone of a deleted one)
//	fv.<flow id>.<version>                    an earlier version of a flow,
//	                                          kept for FlowRetention
//	i.<sha256 of scope and key>               an Idempotency-Key of the
//	                                          session API: the request's
//	                                          fingerprint and, once served,
//	                                          its result, for IdempotencyTTL
//
// The p. keys are created with the KV Create operation, which fails when the
// key exists: that is what makes "one open session per participant and
// virtual number" hold across concurrent admin API instances, and what
// arbitrates two machines allocating the same pool number at once (the
// loser tries the next number). A route key whose session is no longer
// open (closed, expired) is taken over by the next create.
//
// A session with a pin claims no p. keys but one k. key, the same way, so
// that a pin is unique among the open sessions of its number while
// sessions with pins share numbers and participants freely: callers reach
// them through a flow's pin step (LookupPIN), never by their number
// alone. The k. key carries the session's TTL, is rewritten with it, and
// is released when the session closes, like a route key.
//
// Flows are versioned: every change is a new version, and the version
// replaced is kept (fv.) for FlowRetention so that a call already in a
// flow finishes on the version it started with (see flow_store.go).
//
// Sessions change (calls counted, expiry moved, closed) by read, modify
// and write over the revision read, retried when another writer came
// first. Every write of a session's keys carries its own TTL (JetStream
// per-message TTL on a bucket with limit markers): its expiry, or its
// closing, plus the history retention (Config.History). So an expired or
// closed session stays readable, with its status and reason, for the
// history, and then JetStream removes it, with no sweeper of ours. Route
// keys carry the session's TTL too and are rewritten before the session
// when its expiry moves later (a route must outlive its open session) and
// after it when the expiry moves earlier; they are released when the
// session closes.
//
// Pool numbers carry 8x8's updatedTimestamp of their status, so that
// updates applied late or twice never undo a newer one.
package session
