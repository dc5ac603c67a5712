// Package decider is the call policy: it answers "what do we do with this
// call?" for the ingestors, as a NATS micro service in a queue group, so
// that any number of deciders on any number of machines share the work and
// `nats micro ls` shows them.
//
// The policy is the number's IVR flow when it has one (see "Flows"),
// else number masking, decided from the session store's in-memory index
// alone (a decision never waits on storage):
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
// # Flows
//
// A call to a number with a flow (session.Store.FlowFor: the number's
// own, else its sub-account's default) starts at the flow's start step,
// and each answer that waits for the caller carries where the caller is
// (wire.FlowState: flow, version, step, failed tries) in its
// clientActionId. 8x8 echoes it in the call's next VCA (ACTION_COMPLETED,
// with the keys pressed), and whichever decider gets it continues the
// flow on that version: deciders keep no per-call state, and a call
// finishes on the version it started in while the store keeps it. Each
// flow version is compiled once per process into the encoded fragments
// of its answers, so a step costs about what a masking decision costs.
//
//   - menu: its playFile (if any), then a sayAndCapture of its say
//     (noOfTries 1, completeOnHash, overallTimeout from timeoutSeconds);
//     the keys pressed (a trailing '#' dropped) pick an option's step; an
//     invalid choice or no input asks again (after the retry say, if any)
//     until tries have failed, then onFailure, or a goodbye and a hangup.
//   - transfer: the announcement (if any), then a makeCall from the number
//     called to the destination (a connect, with the flow state).
//   - pin: as a menu, but the keys are a pin: the open session on the
//     number whose pin they are (session.Store.LookupPIN) connects a
//     caller who is one of its participants to the other one (the
//     session's greeting, a makeCall; the state names the session, so the
//     call is recorded and counted as a masking connect); anything else
//     is a failed try.
//   - masking: number masking on the number called (sessions without a
//     pin); no session: onFailure, else the out-of-session policy.
//   - play: its say or playFile, then next in the same answer (a
//     hangup without next); hangup: its message, if any, then a hangup.
//
// Play steps, and masking steps that fall through to onFailure, chain
// into the next step in the same answer, at most 32 steps. A flow state
// that cannot be continued (it does not decode, its flow is not the
// number's, its version is no longer kept, its step does not exist)
// restarts the number's flow from its start, once (the state is marked
// restarted from then on), then ends the call politely; a step 8x8 could
// not carry out ends the call politely. callflow_flow_restarts_total
// counts both. A VCA that follows a flow's connect, transfer or hangup,
// or a non-flow answer, is answered with a hangup, as before.
//
// # Call counting
//
// A connected call is counted in its session (call count, last call, the
// expiry of an idle session, closing at maxCalls: session.Store.RecordCalls)
// after the answer is sent: the call goes into a bounded queue, written by
// a few writers per decider (Config.CallWriters; a session's calls always
// go to the same one), each write bounded by Config.CallWriteTimeout. The
// calls of a session that queued up while a write was under way are
// written together, in one write. The calls of a session whose lifecycle
// does not turn on them (no maxCalls, an absolute expiry: most sessions)
// wait up to Config.CountDelay, merged with the session's later calls,
// so that callCount and lastCallAt lag by at most that much and a session
// called again and again costs one write per delay, not one a call;
// those of sessions with maxCalls or an idle expiry are written at once.
// A call that finds the queue full is not counted. callflow_session_updates_total counts the calls by result
// (recorded, not_found, failed, dropped). Stop writes what is still queued,
// for at most Config.StopTimeout, the deferred counts included; a process
// that dies loses the counts it held (at most CountDelay of them).
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
