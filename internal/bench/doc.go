// Package bench is the load tool behind `callflow bench`: it sends
// realistic 8x8 webhooks to a callflow ingestor and reports latency,
// throughput, errors and the answers it got.
//
// Load is open loop at a fixed rate (latency counted from each request's
// scheduled send time, so a stall of the system under test shows in the
// percentiles instead of slowing the load down: no coordinated omission)
// or closed loop (a fixed number of connections, each sending as soon as
// its previous answer came back). Traffic comes from masking sessions the
// tool creates first through the admin API: calls from their participants
// to their virtual numbers, strangers calling those numbers, call-status
// events and session summaries, each body a prebuilt template with a
// run-unique event id. The sessions are deleted when the run ends,
// however it ends (bounded in time; what a failed removal leaves expires
// with the sessions' TTL).
//
// --baseline measures a bare fasthttp responder in the same process with
// the same load first, so that the real figures come with the machine's
// ceiling beside them; --audit checks afterwards that every answered event
// is in the JetStream stream, and in ClickHouse through FINAL, exactly once.
//
// Load only ever goes to loopback addresses unless AllowRemote is set, so
// that a benchmark is never aimed at a production system by mistake.
package bench
