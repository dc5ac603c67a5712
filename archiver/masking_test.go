package archiver

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// exampleMaskingSession is the masking session the example queries of
// deploy/clickhouse/queries.sql name; the fixtures route calls to it.
const exampleMaskingSession = "5f1d0c6a2b7e4c1d9a8b3e2f4d6c8a10"

// otherMaskingSession is a second session on the same number.
const otherMaskingSession = "0000000000000000000000000000beef"

// pub is one record to publish, as the ingestor would.
type pub struct {
	subject, id string
	data        []byte
}

// eventPub builds a record of an 8x8 event: payload gets the eventId (when
// id is given and the type carries one) and the timestamp t.
func eventPub(eventType, id string, t time.Time, payload map[string]any, dec *wire.Decision) pub {
	p := map[string]any{}
	for k, v := range payload {
		p[k] = v
	}
	if eventType == wire.EventCallAction || eventType == wire.EventCallStatus {
		p["eventId"] = id
	}
	if !t.IsZero() {
		p["timestamp"] = t.UTC().Format(time.RFC3339Nano)
	}
	body, err := json.Marshal(map[string]any{"namespace": "VOICE", "eventType": eventType, "payload": p})
	if err != nil {
		panic(err)
	}
	rec := wire.Record{Version: wire.RecordVersion, ID: id, EventType: eventType, ReceivedAt: time.Now(), Instance: "test", Decision: dec, Event: body}
	sub, _ := p["subAccountId"].(string)
	return pub{subject: wire.Subject(eventType, sub), id: id, data: rec.AppendJSON(nil)}
}

func (e *env) publishAll(t *testing.T, pubs []pub) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range pubs {
		if _, err := e.js.Publish(ctx, p.subject, p.data, jetstream.WithMsgID(p.id)); err != nil {
			t.Fatalf("publish %s: %v", p.id, err)
		}
	}
}

// Decisions as the deciders and the ingestor record them.
func connectDecision(masking, vn, callee string) *wire.Decision {
	r := wire.Response{ClientActionID: masking, Callflow: []wire.Action{wire.MakeCall(vn, callee, false)}}
	return &wire.Decision{Source: wire.SourceDecider, Outcome: wire.OutcomeConnect, LatencyMicros: 250,
		MaskingSessionID: masking, VirtualNumber: vn, Callflow: r.JSON()}
}

func forwardDecision(policy, vn, to string) *wire.Decision {
	r := wire.Response{ClientActionID: wire.OutOfSessionActionID(true, policy), Callflow: []wire.Action{wire.MakeCall(vn, to, false)}}
	return &wire.Decision{Source: wire.SourceDecider, Outcome: wire.OutcomeForward, LatencyMicros: 300,
		VirtualNumber: vn, Policy: policy, Callflow: r.JSON()}
}

func outOfSessionDecision(policy, vn string) *wire.Decision {
	r := wire.SayThenHangup(wire.OutOfSessionActionID(false, policy), wire.Say{Text: "This number is not in service."})
	return &wire.Decision{Source: wire.SourceDecider, Outcome: wire.OutcomeOutOfSession, LatencyMicros: 200,
		VirtualNumber: vn, Policy: policy, Callflow: r.JSON()}
}

func followUpDecision(vn string) *wire.Decision {
	r := wire.Response{ClientActionID: wire.ClientActionFollowUp, Callflow: []wire.Action{wire.Hangup()}}
	return &wire.Decision{Source: wire.SourceDecider, Outcome: wire.OutcomeFollowUp, LatencyMicros: 100,
		VirtualNumber: vn, Callflow: r.JSON()}
}

func fallbackDecision() *wire.Decision {
	r := wire.SayThenHangup(wire.ClientActionFallback, wire.Say{Text: "Please try again later."})
	return &wire.Decision{Source: wire.SourceFallback, Outcome: wire.OutcomeFallback, FallbackReason: "timeout",
		LatencyMicros: 2000000, Callflow: r.JSON()}
}

// The fixture's numbers and sub-account.
const (
	fxAccount = "acct-m"
	fxNumber  = "+6590000001"
	fxCaller  = "6511111111" // as 8x8 may send it: without '+'
	fxCallee  = "+6522222222"
)

func callAction(id, session, call string, t time.Time, caller, dialled string, dec *wire.Decision) pub {
	return eventPub(wire.EventCallAction, id, t, map[string]any{"callId": call, "sessionId": session, "subAccountId": fxAccount,
		"callStatus": "CALL_RECEIVED", "source": caller, "destination": dialled, "callDirection": "INBOUND"}, dec)
}

func callStatus(id, session, call, status, direction string, t time.Time, duration int) pub {
	return eventPub(wire.EventCallStatus, id, t, map[string]any{"callId": call, "sessionId": session, "subAccountId": fxAccount,
		"callStatus": status, "callDirection": direction, "callDuration": duration}, nil)
}

func sessionSummary(id, session, status string, start, end time.Time) pub {
	return eventPub(wire.EventSessionSummary, id, time.Time{}, map[string]any{"sessionId": session, "subAccountId": fxAccount,
		"sessionStatus": status, "startTime": start.UTC().Format(time.RFC3339), "endTime": end.UTC().Format(time.RFC3339),
		"callCount": 2, "lastAction": "makeCall"}, nil)
}

// maskingFixture is a realistic day of the example masking session from
// t0: four 8x8 call sessions routed to it (answered with call statuses;
// not answered; still ringing, no summary yet; answered where only the
// session summary tells), and around them what must not count: a
// follow-up call action, a call of another masking session on the same
// number, an out-of-session call, a forwarded one, 8x8 sending a call
// status twice under two event ids, the session's audit record, and
// virtual number updates.
func maskingFixture(t0 time.Time) []pub {
	s := func(d time.Duration) time.Time { return t0.Add(d) }
	dec := func() *wire.Decision { return connectDecision(exampleMaskingSession, fxNumber, fxCallee) }
	audit := wire.Audit{ID: "audit-create-1", Timestamp: s(-time.Minute), Operation: wire.AuditCreate, SessionID: exampleMaskingSession,
		VirtualNumber: fxNumber, Participants: []string{"+6511111111", fxCallee}, Actor: wire.Actor{Token: "sha256:abc", Address: "10.0.0.1"}}
	auditRec := wire.Record{Version: wire.RecordVersion, ID: audit.ID, EventType: wire.EventSessionAudit, ReceivedAt: time.Now(), Instance: "test", Event: audit.Event()}
	return []pub{
		{subject: wire.AuditSubject(wire.AuditCreate), id: audit.ID, data: auditRec.AppendJSON(nil)},

		// s1: answered; the callee talked 95 s. The caller's leg is
		// connected first and runs longer: neither counts.
		callAction("a1", "x8-s1", "c-a1", s(0), fxCaller, fxNumber, dec()),
		callStatus("st1-1", "x8-s1", "c-a1", "CALL_RECEIVED", "INBOUND", s(0), 0),
		callStatus("st1-2", "x8-s1", "c-a1", "CALL_CONNECTED", "INBOUND", s(time.Second), 0),
		callStatus("st1-3", "x8-s1", "c-b1", "CALL_INITIATED", "OUTBOUND", s(2*time.Second), 0),
		callStatus("st1-4", "x8-s1", "c-b1", "CALL_CONNECTED", "OUTBOUND", s(10*time.Second), 0),
		callStatus("st1-5", "x8-s1", "c-b1", "CALL_DISCONNECTED", "OUTBOUND", s(105*time.Second), 95),
		callStatus("st1-5-again", "x8-s1", "c-b1", "CALL_DISCONNECTED", "OUTBOUND", s(105*time.Second), 95),
		callStatus("st1-6", "x8-s1", "c-a1", "CALL_DISCONNECTED", "INBOUND", s(105*time.Second), 104),
		callAction("a1-follow", "x8-s1", "c-a1", s(106*time.Second), fxCaller, fxNumber, followUpDecision(fxNumber)),
		sessionSummary("sum-s1", "x8-s1", "COMPLETED", s(0), s(106*time.Second)),

		// s5: another masking session on the same number.
		callAction("a5", "x8-s5", "c-a5", s(30*time.Minute), "+6544444444", fxNumber, connectDecision(otherMaskingSession, fxNumber, "+6555555555")),
		callStatus("st5-1", "x8-s5", "c-b5", "CALL_CONNECTED", "OUTBOUND", s(30*time.Minute+5*time.Second), 0),

		// s6, s7: callers in no session, by two policies.
		callAction("a6", "x8-s6", "c-a6", s(45*time.Minute), "+6566666666", fxNumber, outOfSessionDecision(wire.PolicyNumber, fxNumber)),
		callAction("a7", "x8-s7", "c-a7", s(50*time.Minute), "+6577777777", fxNumber, forwardDecision(wire.PolicySubAccount, fxNumber, "+6533333333")),
		callStatus("st7-1", "x8-s7", "c-b7", "CALL_CONNECTED", "OUTBOUND", s(50*time.Minute+4*time.Second), 0),
		callStatus("st7-2", "x8-s7", "c-b7", "CALL_DISCONNECTED", "OUTBOUND", s(50*time.Minute+34*time.Second), 30),

		// s2: not answered. 8x8 connects the caller's leg (ringback).
		callAction("a2", "x8-s2", "c-a2", s(time.Hour), fxCaller, fxNumber, dec()),
		callStatus("st2-1", "x8-s2", "c-a2", "CALL_CONNECTED", "INBOUND", s(time.Hour+time.Second), 0),
		callStatus("st2-2", "x8-s2", "c-b2", "CALL_INITIATED", "OUTBOUND", s(time.Hour+2*time.Second), 0),
		callStatus("st2-3", "x8-s2", "c-b2", "CALL_DISCONNECTED", "OUTBOUND", s(time.Hour+40*time.Second), 0),
		callStatus("st2-4", "x8-s2", "c-a2", "CALL_DISCONNECTED", "INBOUND", s(time.Hour+40*time.Second), 39),
		sessionSummary("sum-s2", "x8-s2", "NO_ANSWER", s(time.Hour), s(time.Hour+40*time.Second)),

		// s3: still under way: no status, no summary yet.
		callAction("a3", "x8-s3", "c-a3", s(90*time.Minute), fxCaller, fxNumber, dec()),

		// s4: 8x8 sends no call statuses here (VCS not configured): the
		// summary says COMPLETED, 61 s from start to end.
		callAction("a4", "x8-s4", "c-a4", s(2*time.Hour), fxCaller, fxNumber, dec()),
		sessionSummary("sum-s4", "x8-s4", "COMPLETED", s(2*time.Hour), s(2*time.Hour+61*time.Second)),

		// The pool: a snapshot, then the number going unhealthy.
		eventPub(wire.EventVirtualNumberUpdate, "vnu-1", time.Time{}, map[string]any{"subAccountId": fxAccount, "totalNumbers": 2,
			"updateEventType": "SNAPSHOT", "virtualNumbers": []any{
				map[string]any{"msisdn": fxNumber, "updatedTimestamp": s(-24 * time.Hour).Format(time.RFC3339), "countryCode": "SG", "operationalStatus": "Active", "referenceId": "range-1"},
				map[string]any{"msisdn": "+6590000002", "updatedTimestamp": s(-24 * time.Hour).Format(time.RFC3339), "countryCode": "SG", "operationalStatus": "Active", "referenceId": "range-1"},
			}}, nil),
		eventPub(wire.EventVirtualNumberUpdate, "vnu-2", time.Time{}, map[string]any{"subAccountId": fxAccount, "totalNumbers": 2,
			"updateEventType": "UPDATES", "virtualNumbers": []any{
				map[string]any{"msisdn": fxNumber, "updatedTimestamp": s(3 * time.Hour).Format(time.RFC3339), "countryCode": "SG", "operationalStatus": "Unhealthy", "referenceId": "range-1"},
			}}, nil),
	}
}

// archiveTwice publishes pubs and archives each of them twice, in separate
// inserts (a replay, then the durable consumer), as a redelivery would:
// every read must give the same answer as with one copy.
func (e *env) archiveTwice(t *testing.T, pubs []pub) *Archiver {
	t.Helper()
	e.publishAll(t, pubs)
	a, err := Open(e.js, e.config(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n, err := a.Replay(ctx, ReplayConfig{StartSeq: 1}); err != nil || n != uint64(len(pubs)) {
		t.Fatalf("replay: %d of %d, %v", n, len(pubs), err)
	}
	e.run(t, e.config(t))
	e.waitRows(t, "SELECT count() FROM DB.call_events", uint64(2*len(pubs)))
	return a
}

// callEventColumns reads the number-masking columns of one call_events row.
func (e *env) maskingColumns(t *testing.T, eventID string) (masking, vn, policy, connectedTo, outcome string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := e.ch.QueryRow(ctx, "SELECT masking_session_id, virtual_number, out_of_session_policy, connected_to, decision_outcome FROM "+
		e.db+".call_events FINAL WHERE event_id = ?", eventID).Scan(&masking, &vn, &policy, &connectedTo, &outcome)
	if err != nil {
		t.Fatalf("row %s: %v", eventID, err)
	}
	return
}
