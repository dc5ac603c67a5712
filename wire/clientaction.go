package wire

import "strings"

// The clientActionId of an answer says what the answer is: 8x8 echoes it
// in the next VCA of the call, and the ingestor reads it from a decider's
// reply to record the decision (a reply carries the callflow alone).
//
//   - a masking session's id (32 hex digits): the caller is connected to
//     the other participant of that session;
//   - "out-of-session" or "out-of-session:<policy>": a say, then a hangup,
//     for a caller in no open session on the dialled number;
//   - "forward" or "forward:<policy>": such a caller forwarded (an optional
//     announcement, then makeCall to the policy's destination);
//   - "follow-up": the answer to a VCA that follows an earlier action of
//     the call (callStatus other than CALL_RECEIVED): a hangup;
//   - "fallback": the ingestor's own answer when no decider answered;
//   - "flow:..." (see FlowState): a step of a flow, where the caller is in
//     it; with a makeCall (a transfer, or a PIN connect that may name its
//     masking session), a connect.
//
// <policy> names whose out-of-session policy answered: PolicyNumber,
// PolicySubAccount or PolicyDefault (the default when absent).
const (
	ClientActionOutOfSession = "out-of-session"
	ClientActionForward      = "forward"
	ClientActionFollowUp     = "follow-up"
	ClientActionFallback     = "fallback"
)

// Where an out-of-session policy came from.
const (
	PolicyNumber     = "number"     // the dialled number's own policy
	PolicySubAccount = "subaccount" // the number's sub-account's policy
	PolicyDefault    = "default"    // the deciders' flags
)

// Verdict is what a decision means, beside the callflow that carries it.
type Verdict struct {
	// Outcome is one of the Outcome constants.
	Outcome string
	// MaskingSessionID is the session a connected call was routed to.
	MaskingSessionID string
	// Policy is where the out-of-session policy came from (PolicyNumber,
	// PolicySubAccount or PolicyDefault) when one answered.
	Policy string
	// FlowID, FlowVersion and FlowStep say where in a flow the caller is
	// (OutcomeFlow, or OutcomeConnect from a flow step): the flow state of
	// the answer's clientActionId (see FlowState). Empty and 0 otherwise.
	FlowID      string
	FlowVersion uint64
	FlowStep    string
}

// Connects reports whether the verdict's callflow places a call (makeCall):
// a masking connect or a forward.
func (v Verdict) Connects() bool { return v.Outcome == OutcomeConnect || v.Outcome == OutcomeForward }

// OutOfSessionActionID is the clientActionId of an out-of-session answer
// given by policy: forwarded or not.
func OutOfSessionActionID(forward bool, policy string) string {
	base := ClientActionOutOfSession
	if forward {
		base = ClientActionForward
	}
	if policy == "" || policy == PolicyDefault {
		return base
	}
	return base + ":" + policy
}

// ClassifyClientAction returns the verdict a callflow with clientActionId
// id stands for; connects says whether the callflow has a makeCall. An id
// this package does not know (a decider of another kind) is judged by the
// callflow alone: connect with a makeCall, out of session without.
//
// A flow state id (see ParseFlowState) is OutcomeFlow, or OutcomeConnect
// with a makeCall (with the state's masking session, if any), and carries
// the state's flow, version and step. It allocates nothing.
func ClassifyClientAction(id string, connects bool) Verdict {
	if connects && isSessionID(id) {
		return Verdict{Outcome: OutcomeConnect, MaskingSessionID: id}
	}
	if fs, ok := ParseFlowState(id); ok {
		v := Verdict{Outcome: OutcomeFlow, FlowID: fs.Flow, FlowVersion: fs.Version, FlowStep: fs.Step}
		if connects {
			v.Outcome, v.MaskingSessionID = OutcomeConnect, fs.Session
		}
		return v
	}
	kind, policy, _ := strings.Cut(id, ":")
	if policy == "" {
		policy = PolicyDefault
	}
	switch {
	case kind == ClientActionForward && connects:
		return Verdict{Outcome: OutcomeForward, Policy: policy}
	case kind == ClientActionOutOfSession && !connects:
		return Verdict{Outcome: OutcomeOutOfSession, Policy: policy}
	case id == ClientActionFollowUp && !connects:
		return Verdict{Outcome: OutcomeFollowUp}
	case connects:
		return Verdict{Outcome: OutcomeConnect}
	default:
		return Verdict{Outcome: OutcomeOutOfSession}
	}
}

// isSessionID reports whether id has the shape of a masking session id:
// 32 lowercase hex digits.
func isSessionID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
