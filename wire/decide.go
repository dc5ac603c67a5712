package wire

import "fmt"

// DecideSubject is the default subject on which deciders take requests
// and ingestors send them.
const DecideSubject = "callflow.decide"

// DecideRequest is what the ingestor asks a decider about a CALL_ACTION.
// Numbers are passed as 8x8 sent them; the decider normalizes them.
type DecideRequest struct {
	EventID        string `json:"eventId"`
	CallID         string `json:"callId"`
	SessionID      string `json:"sessionId"`
	SubAccountID   string `json:"subAccountId"`
	CallStatus     string `json:"callStatus,omitempty"`
	Source         string `json:"source"`
	Destination    string `json:"destination"`
	ClientActionID string `json:"clientActionId,omitempty"`
	// DTMF is the digits the caller pressed in answer to a sayAndCapture
	// (the event's eventData.dtmf, see Payload.DTMF).
	DTMF string `json:"dtmf,omitempty"`
}

// AppendJSON appends the request as JSON.
func (r *DecideRequest) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	dst = appendField(dst, true, "eventId", r.EventID)
	dst = appendField(dst, false, "callId", r.CallID)
	dst = appendField(dst, false, "sessionId", r.SessionID)
	dst = appendField(dst, false, "subAccountId", r.SubAccountID)
	if r.CallStatus != "" {
		dst = appendField(dst, false, "callStatus", r.CallStatus)
	}
	dst = appendField(dst, false, "source", r.Source)
	dst = appendField(dst, false, "destination", r.Destination)
	if r.ClientActionID != "" {
		dst = appendField(dst, false, "clientActionId", r.ClientActionID)
	}
	if r.DTMF != "" {
		dst = appendField(dst, false, "dtmf", r.DTMF)
	}
	return append(dst, '}')
}

// ParseDecideRequest decodes a request sent by AppendJSON. Unknown keys
// are ignored, so that an older decider reads a newer ingestor's request.
func ParseDecideRequest(b []byte) (DecideRequest, error) {
	var r DecideRequest
	d := scanner{s: string(b)}
	if d.peek() != '{' {
		return r, fmt.Errorf("decide request: not a JSON object")
	}
	err := d.object("", func(key string) (err error) {
		var dst *string
		switch key {
		case "eventId":
			dst = &r.EventID
		case "callId":
			dst = &r.CallID
		case "sessionId":
			dst = &r.SessionID
		case "subAccountId":
			dst = &r.SubAccountID
		case "callStatus":
			dst = &r.CallStatus
		case "source":
			dst = &r.Source
		case "destination":
			dst = &r.Destination
		case "clientActionId":
			dst = &r.ClientActionID
		case "dtmf":
			dst = &r.DTMF
		default:
			return d.skip()
		}
		*dst, err = d.str("", key)
		return err
	})
	if err == nil {
		err = d.end()
	}
	if err != nil {
		return r, fmt.Errorf("decide request: %w", err)
	}
	return r, nil
}

// Outcomes of a decision, recorded with every CALL_ACTION.
const (
	// OutcomeConnect: the caller is connected to the other participant.
	OutcomeConnect = "connect"
	// OutcomeOutOfSession: the caller is not a participant of an open
	// session on the number dialled.
	OutcomeOutOfSession = "out_of_session"
	// OutcomeForward: a caller out of session was forwarded by an
	// out-of-session policy (makeCall to the policy's destination).
	OutcomeForward = "forward"
	// OutcomeFollowUp: a VCA that follows an earlier action of the call
	// (callStatus other than CALL_RECEIVED) was answered with a hangup.
	OutcomeFollowUp = "follow_up"
	// OutcomeFallback: no decider answered; the fallback was played.
	OutcomeFallback = "fallback"
	// OutcomeFlow: a step of a flow was answered without a makeCall (a
	// menu or PIN prompt, a message, a flow's hangup); the decision says
	// where in the flow (a flow step that connects is OutcomeConnect).
	OutcomeFlow = "flow"
)

// Outcome is the outcome of a decider's callflow, read from its
// clientActionId and whether it has a makeCall (see ClassifyClientAction).
// Deciders reply with the callflow alone (no headers, which would cost the
// ingestor a header parse a call).
func Outcome(callflow []byte) (string, error) {
	v, err := CheckCallflow(callflow)
	return v.Outcome, err
}
