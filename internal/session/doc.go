// Package session keeps number-masking sessions: two participants bound to
// one virtual number, optionally for a limited time.
//
// Sessions live in a JetStream key-value bucket, so that every decider and
// every admin API on every machine sees the same ones and they survive
// restarts. A Store watches the bucket and keeps an in-memory index, so a
// routing decision never waits on storage.
//
// Keys (KV keys allow only [-/_=.a-zA-Z0-9], so numbers are keyed by their
// digits, never with '+'):
//
//	s.<id>                               the session, as JSON
//	p.<virtual digits>.<participant digits>   the id of the session that
//	                                     holds this participant on this number
//
// The p. keys are created with the KV Create operation, which fails when the
// key exists: that is what makes "one open session per participant and
// virtual number" hold across concurrent admin API instances. Both kinds of
// key carry the session's TTL (JetStream per-key TTL), so an expired session
// disappears with no sweeper of ours. Keys are never rewritten, since a Put
// or Update would drop the TTL.
package session
