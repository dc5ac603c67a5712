package decider

import (
	"context"
	"strings"
	"time"

	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
)

// Sessions is what the deciders need of the masking state and the flows:
// the in-memory index for the decision (sessions, policies, flows, pins),
// and the bucket for counting a connected call after the answer.
// *session.Store satisfies it.
type Sessions interface {
	// Lookup returns the open session on virtual (as +digits) with caller
	// (as +digits) as a participant that admits calls of subAccount.
	Lookup(virtual, caller, subAccount string, now time.Time) (*session.Session, bool)
	// OutOfSession returns the policy for a caller in no open session on
	// virtual, and whose it is (wire.PolicyNumber, wire.PolicySubAccount),
	// or nil and wire.PolicyDefault for the deciders' own answer. The
	// policy is never changed in place.
	OutOfSession(virtual, subAccount string) (*session.Policy, string)
	// RecordCalls counts n calls connected in session id, the last at
	// `at` (call count, last call, idle expiry, closing at maxCalls), in
	// one write.
	RecordCalls(ctx context.Context, id string, n int64, at time.Time) (session.Session, error)
	// CountsMatter reports whether session id's lifecycle turns on its
	// calls (session.Session.CountsMatter), from the index; true for a
	// session it does not hold.
	CountsMatter(id string) bool

	// FlowFor returns the flow a call to virtual (as +digits) of
	// subAccount starts in (the number's, else its sub-account's
	// default), from the index; false for none: number masking.
	FlowFor(virtual, subAccount string) (*session.Flow, bool)
	// FlowVersion returns version of flow id from the index (the current
	// one or an earlier one still kept); false once it is not kept.
	FlowVersion(id string, version uint64) (*session.Flow, bool)
	// LookupPIN returns the open session on virtual whose pin is pin and
	// that admits calls of subAccount, from the index.
	LookupPIN(virtual, pin, subAccount string, now time.Time) (*session.Session, bool)
}

// callReceived is the callStatus of a VCA for a call that just reached a
// virtual number; any other is a follow-up of an earlier action.
const callReceived = "CALL_RECEIVED"

// Policy decides calls by their number's flow, else by number masking.
type Policy struct {
	sessions Sessions
	// Pre-encoded: the same bytes for every such call.
	outOfSession []byte
	followUp     []byte
	// policies caches the encoded answers of out-of-session policies.
	policies answerCache

	// flows caches the compiled flow versions.
	flows flowCache
	// flowEndSay is the goodbye of a flow that cannot go on (an action
	// fragment); flowEnded the whole answer, as a follow-up.
	flowEndSay []byte
	flowEnded  []byte
	restarts   *restartCounters
}

// NewPolicy returns a policy over sessions that answers outOfSession
// (then a hangup) to callers who are in no session, on numbers and
// sub-accounts without a policy of their own. A flow that cannot go on
// ends with DefaultFlowEnd; its restarts are counted in collectors of
// its own (Start shares the service's).
func NewPolicy(sessions Sessions, outOfSession wire.Say) *Policy {
	return newPolicy(sessions, outOfSession, DefaultFlowEnd, nil)
}

// newPolicy is NewPolicy with the flows' goodbye and the metrics (nil:
// unregistered collectors of its own).
func newPolicy(sessions Sessions, outOfSession, flowEnd wire.Say, m *Metrics) *Policy {
	if m == nil {
		m = NewMetrics(nil)
	}
	r := wire.SayThenHangup(wire.ClientActionOutOfSession, outOfSession)
	f := wire.Response{ClientActionID: wire.ClientActionFollowUp, Callflow: []wire.Action{wire.Hangup()}}
	end := wire.SayThenHangup(wire.ClientActionFollowUp, flowEnd)
	say, _ := fragment(wire.SayAction(flowEnd))
	return &Policy{sessions: sessions, outOfSession: r.JSON(), followUp: f.JSON(),
		flowEndSay: say, flowEnded: end.JSON(), restarts: newRestartCounters(m.flowRestarts)}
}

// Verdicts of the pre-encoded answers.
var (
	defaultVerdict  = wire.Verdict{Outcome: wire.OutcomeOutOfSession, Policy: wire.PolicyDefault}
	followUpVerdict = wire.Verdict{Outcome: wire.OutcomeFollowUp}
)

// Decide appends the callflow for req to dst and returns it with what it
// means (the verdict wire.ClassifyClientAction reads back from it).
//
//   - A VCA whose clientActionId carries a flow state (wire.FlowState;
//     any callStatus, typically ACTION_COMPLETED with the keys pressed)
//     continues that flow on the state's version; a state that cannot be
//     continued restarts the number's flow once, then ends the call
//     politely (see the package doc, "Flows").
//   - A VCA whose callStatus is set and is not CALL_RECEIVED follows an
//     earlier action of the call (8x8's ACTION_COMPLETED): it is never
//     answered as a new call, but with a hangup (wire.ClientActionFollowUp);
//     one whose clientActionId has the flow prefix but does not decode
//     restarts the number's flow.
//   - A call to a number with a flow (its own, else its sub-account's
//     default) starts at the flow's start step.
//   - A caller who is a participant of an open session on the number
//     dialled, that admits the call's sub-account, is connected to the
//     other participant (after the session's greeting, if any).
//   - Any other caller (a stranger, a participant of a closed session or
//     of another sub-account's, a caller whose number is withheld or not
//     usable) is out of session: the dialled number's policy answers, else
//     its sub-account's, else the deciders' default (a say, then a hangup).
//     A dialled number that is not usable gets the default.
func (p *Policy) Decide(dst []byte, req *wire.DecideRequest, now time.Time) ([]byte, wire.Verdict) {
	flowID := strings.HasPrefix(req.ClientActionID, flowPrefix)
	if flowID {
		if st, ok := wire.ParseFlowState(req.ClientActionID); ok {
			return p.continueFlow(dst, req, st, now)
		}
	}
	if req.CallStatus != "" && !strings.EqualFold(req.CallStatus, callReceived) {
		if flowID {
			return p.undecodable(dst, req, now)
		}
		return append(dst, p.followUp...), followUpVerdict
	}
	virtual, err := wire.NormalizeNumber(req.Destination)
	if err != nil {
		return append(dst, p.outOfSession...), defaultVerdict
	}
	if f, ok := p.sessions.FlowFor(virtual, req.SubAccountID); ok {
		return p.startFlow(dst, req, virtual, f, now)
	}
	if caller, err := wire.NormalizeNumber(req.Source); err == nil {
		if s, ok := p.sessions.Lookup(virtual, caller, req.SubAccountID, now); ok {
			other, _ := s.Other(caller)
			resp := wire.Response{ClientActionID: s.ID, Callflow: make([]wire.Action, 0, 2)}
			if s.Greeting != nil {
				resp.Callflow = append(resp.Callflow, wire.SayAction(*s.Greeting))
			}
			resp.Callflow = append(resp.Callflow, wire.MakeCall(s.VirtualNumber, other, s.CallRecording))
			return resp.AppendJSON(dst), wire.Verdict{Outcome: wire.OutcomeConnect, MaskingSessionID: s.ID}
		}
	}
	pol, source := p.sessions.OutOfSession(virtual, req.SubAccountID)
	if pol == nil {
		return append(dst, p.outOfSession...), defaultVerdict
	}
	return p.policies.append(dst, pol, source, virtual, p.outOfSession)
}
