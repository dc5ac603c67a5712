package wire

import (
	"bytes"
	"testing"
	"time"
)

func TestClassifyClientAction(t *testing.T) {
	const sid = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		id       string
		connects bool
		want     Verdict
	}{
		{sid, true, Verdict{Outcome: OutcomeConnect, MaskingSessionID: sid}},
		{sid, false, Verdict{Outcome: OutcomeOutOfSession}},                          // a session id without makeCall is no connect
		{"0123456789ABCDEF0123456789abcdef", true, Verdict{Outcome: OutcomeConnect}}, // not our id's shape
		{ClientActionOutOfSession, false, Verdict{Outcome: OutcomeOutOfSession, Policy: PolicyDefault}},
		{OutOfSessionActionID(false, PolicyNumber), false, Verdict{Outcome: OutcomeOutOfSession, Policy: PolicyNumber}},
		{OutOfSessionActionID(false, PolicySubAccount), false, Verdict{Outcome: OutcomeOutOfSession, Policy: PolicySubAccount}},
		{OutOfSessionActionID(true, PolicyDefault), true, Verdict{Outcome: OutcomeForward, Policy: PolicyDefault}},
		{OutOfSessionActionID(true, PolicyNumber), true, Verdict{Outcome: OutcomeForward, Policy: PolicyNumber}},
		{ClientActionForward, false, Verdict{Outcome: OutcomeOutOfSession}}, // a forward without makeCall is not one
		{ClientActionFollowUp, false, Verdict{Outcome: OutcomeFollowUp}},
		{"NumberMaskingId1", true, Verdict{Outcome: OutcomeConnect}},
		{"anything", false, Verdict{Outcome: OutcomeOutOfSession}},

		// Flow steps: where the caller is travels in the id.
		{"flow:main-menu:3:welcome:0", false, Verdict{Outcome: OutcomeFlow, FlowID: "main-menu", FlowVersion: 3, FlowStep: "welcome"}},
		{"flow:main-menu:3:welcome:2:r", false, Verdict{Outcome: OutcomeFlow, FlowID: "main-menu", FlowVersion: 3, FlowStep: "welcome"}},
		{"flow:main-menu:3:sales:0", true, Verdict{Outcome: OutcomeConnect, FlowID: "main-menu", FlowVersion: 3, FlowStep: "sales"}},                                 // a transfer
		{"flow:main-menu:3:driver:1:" + sid, true, Verdict{Outcome: OutcomeConnect, MaskingSessionID: sid, FlowID: "main-menu", FlowVersion: 3, FlowStep: "driver"}}, // a PIN connect
		{"flow:main-menu:3:driver:1:" + sid, false, Verdict{Outcome: OutcomeFlow, FlowID: "main-menu", FlowVersion: 3, FlowStep: "driver"}},
		// Not a flow state: judged by the callflow alone.
		{"flow:main-menu:03:welcome:0", false, Verdict{Outcome: OutcomeOutOfSession}},
		{"flow:main-menu:3", true, Verdict{Outcome: OutcomeConnect}},
	}
	for _, tt := range tests {
		if got := ClassifyClientAction(tt.id, tt.connects); got != tt.want {
			t.Errorf("ClassifyClientAction(%q, %v) = %+v, want %+v", tt.id, tt.connects, got, tt.want)
		}
	}
	if OutOfSessionActionID(false, "") != ClientActionOutOfSession || OutOfSessionActionID(true, PolicyDefault) != ClientActionForward {
		t.Error("the default policy's ids are not the bare kinds")
	}
}

// The decision's masking fields survive a record round trip.
func TestRecordMaskingFields(t *testing.T) {
	r := Record{
		Version: RecordVersion, ID: "e1", EventType: EventCallAction, ReceivedAt: time.Unix(1700000000, 0).UTC(),
		Event: []byte(`{"payload":{}}`),
		Decision: &Decision{Source: SourceDecider, Outcome: OutcomeForward, LatencyMicros: 12,
			MaskingSessionID: "s1", VirtualNumber: "+6568330001", Policy: PolicySubAccount, Callflow: []byte(`{}`)},
	}
	b := r.AppendJSON(nil)
	got, err := ParseRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Decision; d.MaskingSessionID != "s1" || d.VirtualNumber != "+6568330001" || d.Policy != PolicySubAccount || d.Outcome != OutcomeForward {
		t.Errorf("decision read back %+v", d)
	}
	if !bytes.Contains(b, []byte(`"maskingSessionId":"s1","virtualNumber":"+6568330001","policy":"subaccount"`)) {
		t.Errorf("record %s", b)
	}
}

// The decision's flow fields survive a record round trip, and are left
// out when empty.
func TestRecordFlowFields(t *testing.T) {
	r := Record{
		Version: RecordVersion, ID: "e1", EventType: EventCallAction, ReceivedAt: time.Unix(1700000000, 0).UTC(),
		Event: []byte(`{"payload":{}}`),
		Decision: &Decision{Source: SourceDecider, Outcome: OutcomeFlow, LatencyMicros: 12, VirtualNumber: "+6568330001",
			Flow: "main-menu", FlowVersion: MaxFlowVersion, FlowStep: "driver", Digits: "12#", Callflow: []byte(`{}`)},
	}
	b := r.AppendJSON(nil)
	if !bytes.Contains(b, []byte(`"virtualNumber":"+6568330001","flow":"main-menu","flowVersion":9007199254740991,"flowStep":"driver","digits":"12#","callflow":{}`)) {
		t.Errorf("record %s", b)
	}
	got, err := ParseRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Decision; d.Flow != "main-menu" || d.FlowVersion != MaxFlowVersion || d.FlowStep != "driver" || d.Digits != "12#" || d.Outcome != OutcomeFlow {
		t.Errorf("decision read back %+v", d)
	}
	r.Decision.Flow, r.Decision.FlowVersion, r.Decision.FlowStep, r.Decision.Digits = "", 0, "", ""
	for _, key := range []string{"flow", "flowVersion", "flowStep", "digits"} {
		if b := r.AppendJSON(nil); bytes.Contains(b, []byte(`"`+key+`":`)) {
			t.Errorf("empty %s encoded: %s", key, b)
		}
	}
	for _, bad := range []string{`"flowVersion":-1`, `"flowVersion":1.5`, `"flowVersion":"1"`, `"flow":1`, `"digits":12`} {
		body := `{"v":1,"id":"x","event":{},"decision":{"source":"decider",` + bad + `,"callflow":{}}}`
		if _, err := ParseRecord([]byte(body)); err == nil {
			t.Errorf("ParseRecord accepted %s", body)
		}
	}
}
