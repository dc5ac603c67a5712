package ingest

import (
	"testing"

	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
)

// TestWebhookRecordsFlowStep: a CALL_ACTION that answers a sayAndCapture
// passes the digits (eventData.dtmf) to the decider, and its record's
// decision says where in the flow the decider's answer puts the caller
// (from the answer's clientActionId) and what they pressed; a PIN step
// that connects is a connect with its masking session. Digits are
// recorded for a fallback too: the caller pressed them either way.
func TestWebhookRecordsFlowStep(t *testing.T) {
	const sid = "0123456789abcdef0123456789abcdef"
	menu := wire.Response{
		ClientActionID: wire.FlowState{Flow: "main-menu", Version: 3, Step: "driver"}.ClientActionID(),
		Callflow: []wire.Action{wire.SayAndCaptureAction(wire.Capture{
			Say: wire.Say{Text: "Enter your order PIN, then hash."}, MinDigits: 4, MaxDigits: 8, CompleteOnHash: true,
		})},
	}
	connect := wire.Response{
		ClientActionID: wire.FlowState{Flow: "main-menu", Version: 3, Step: "driver", Tries: 1, Session: sid}.ClientActionID(),
		Callflow:       []wire.Action{wire.MakeCall(seedDestination, otherParty, false)},
	}
	tests := []struct {
		name    string
		dtmf    any // payload.eventData.dtmf
		reply   wire.Response
		want    wire.Decision
		decider bool
	}{
		{"menu choice", "2", menu, wire.Decision{Source: wire.SourceDecider, Outcome: wire.OutcomeFlow,
			Flow: "main-menu", FlowVersion: 3, FlowStep: "driver", Digits: "2"}, true},
		{"no input", nil, menu, wire.Decision{Source: wire.SourceDecider, Outcome: wire.OutcomeFlow,
			Flow: "main-menu", FlowVersion: 3, FlowStep: "driver"}, true},
		{"PIN connect", "1234#", connect, wire.Decision{Source: wire.SourceDecider, Outcome: wire.OutcomeConnect,
			MaskingSessionID: sid, Flow: "main-menu", FlowVersion: 3, FlowStep: "driver", Digits: "1234#"}, true},
		{"fallback", "7", menu, wire.Decision{Source: wire.SourceFallback, Outcome: wire.OutcomeFallback,
			FallbackReason: ReasonDeciderError, Digits: "7"}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			got := make(chan wire.DecideRequest, 1)
			if tt.decider {
				fakeDecider(t, e.ns, 0, func(m *nats.Msg) {
					req, err := wire.ParseDecideRequest(m.Data)
					if err != nil {
						t.Errorf("decide request: %v", err)
					}
					got <- req
					_ = m.Respond(tt.reply.JSON())
				})
			} else {
				errorDecider(t, e.ns)
			}
			id := "ev-flow-" + string(rune('a'+i))
			body := event(t, "", map[string]any{
				"eventId": id, "callStatus": "ACTION_COMPLETED", "clientActionId": "flow:main-menu:3:welcome:0",
				"eventData": map[string]any{"dtmf": tt.dtmf, "asrCaptured": nil},
			})
			a := e.post(body)
			wantCallflow(t, a)
			if tt.decider {
				if req := <-got; req.DTMF != tt.want.Digits || req.ClientActionID != "flow:main-menu:3:welcome:0" {
					t.Errorf("decide request %+v, want dtmf %q", req, tt.want.Digits)
				}
			}
			d := e.recordOf(id).rec.Decision
			if d == nil {
				t.Fatal("no decision recorded")
			}
			g := *d
			g.LatencyMicros, g.Callflow, g.VirtualNumber = 0, nil, ""
			if g.Source != tt.want.Source || g.Outcome != tt.want.Outcome || g.FallbackReason != tt.want.FallbackReason ||
				g.MaskingSessionID != tt.want.MaskingSessionID || g.Flow != tt.want.Flow || g.FlowVersion != tt.want.FlowVersion ||
				g.FlowStep != tt.want.FlowStep || g.Digits != tt.want.Digits || g.Policy != "" {
				t.Errorf("decision = %+v, want %+v", g, tt.want)
			}
		})
	}
}
