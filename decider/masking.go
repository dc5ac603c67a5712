package decider

import (
	"time"

	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
)

// Sessions is what the policy needs of the session store.
type Sessions interface {
	Lookup(virtual, caller, subAccount string, now time.Time) (*session.Session, bool)
}

// Policy decides calls by number masking.
type Policy struct {
	sessions     Sessions
	outOfSession []byte // pre-encoded: the same bytes for every such call
}

// NewPolicy returns a policy over sessions that answers outOfSession to
// callers who are not in one.
func NewPolicy(sessions Sessions, outOfSession wire.Say) *Policy {
	r := wire.SayThenHangup(wire.ClientActionOutOfSession, outOfSession)
	return &Policy{sessions: sessions, outOfSession: r.JSON()}
}

// Decide appends the callflow for req to dst and returns it with the
// outcome. A caller who is a participant of an open session on the number
// dialled is connected to the other participant (after the session's
// greeting, if any); every other call, including one from a number that is
// not usable, gets the out-of-session answer.
func (p *Policy) Decide(dst []byte, req *wire.DecideRequest, now time.Time) ([]byte, wire.Verdict) {
	oos := wire.Verdict{Outcome: wire.OutcomeOutOfSession, Policy: wire.PolicyDefault}
	virtual, err := wire.NormalizeNumber(req.Destination)
	if err != nil {
		return append(dst, p.outOfSession...), oos
	}
	caller, err := wire.NormalizeNumber(req.Source)
	if err != nil {
		return append(dst, p.outOfSession...), oos
	}
	s, ok := p.sessions.Lookup(virtual, caller, req.SubAccountID, now)
	if !ok {
		return append(dst, p.outOfSession...), oos
	}
	other, _ := s.Other(caller)
	resp := wire.Response{ClientActionID: s.ID, Callflow: make([]wire.Action, 0, 2)}
	if s.Greeting != nil {
		resp.Callflow = append(resp.Callflow, wire.SayAction(*s.Greeting))
	}
	resp.Callflow = append(resp.Callflow, wire.MakeCall(s.VirtualNumber, other, s.CallRecording))
	return resp.AppendJSON(dst), wire.Verdict{Outcome: wire.OutcomeConnect, MaskingSessionID: s.ID}
}
