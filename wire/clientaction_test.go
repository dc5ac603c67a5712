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
