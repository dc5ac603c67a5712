// Package decider is the call policy: it answers "what do we do with this
// call?" for the ingestors, as a NATS micro service in a queue group, so
// that any number of deciders on any number of machines share the work and
// `nats micro ls` shows them.
//
// The policy is number masking, decided from the session store's
// in-memory index alone (a decision never waits on storage):
//
//   - A VCA that follows an earlier action of the call (callStatus set
//     and not CALL_RECEIVED, such as ACTION_COMPLETED) is answered with a
//     hangup ("follow-up"), never as a new call.
//   - A caller who is a participant of an open session on the virtual
//     number dialled is connected to the other participant, when the
//     session admits the call's sub-account (a session without one admits
//     any).
//   - Anyone else is out of session: the dialled number's out-of-session
//     policy answers, else its sub-account's, else the deciders' default
//     (Config.OutOfSession, then a hangup). A policy hangs up (after its
//     say, if any) or forwards: its say, then a makeCall from the virtual
//     number to the policy's destination.
//
// The answer's clientActionId says which (wire.ClassifyClientAction), and
// Policy.Decide returns the same wire.Verdict, so that the ingestor
// records a local and a remote decision alike.
//
// # Call counting
//
// A connected call is counted in its session (call count, last call, the
// expiry of an idle session, closing at maxCalls: session.Store.RecordCalls)
// after the answer is sent: the call goes into a bounded queue, written by
// a few writers per decider (Config.CallWriters; a session's calls always
// go to the same one), each write bounded by Config.CallWriteTimeout. The
// calls of a session that queued up while a write was under way are
// written together, in one write. A call that finds the queue full is not
// counted. callflow_session_updates_total counts the calls by result
// (recorded, not_found, failed, dropped). Stop writes what is still queued,
// for at most Config.StopTimeout.
//
// # How far maxCalls can be overrun
//
// A session closes at maxCalls when the write of its maxCalls-th call
// lands, and each decider routes by its own index, which learns of the
// closing through the bucket's watch. Until then the session is open
// there: a call decided in that window, on any decider, connects, and is
// counted (callCount may then exceed maxCalls). The window is the time
// the maxCalls-th call waits in its decider's queue (nothing, unless the
// store is slow), its write (a read and a conditional write of the
// session key, retried on a conflict), and the watch's propagation to each
// index (typically milliseconds). For a session of two participants, who
// call one at a time, that makes an overrun rare and small: calls placed
// within milliseconds of each other.
// A count that is dropped or fails does not close the session: it closes
// one call later.
package decider
