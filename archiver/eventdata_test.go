package archiver

import (
	"context"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/wire"
)

// TestEventDataColumns: a CALL_ACTION's eventData lands in event_dtmf and
// event_asr; an older 8x8's string eventData, a null one, or none leaves
// them empty.
func TestEventDataColumns(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	dec := func() *wire.Decision {
		r := wire.Response{ClientActionID: "flow:main-menu:3:driver:0", Callflow: []wire.Action{
			wire.SayAndCaptureAction(wire.Capture{Say: wire.Say{Text: "Enter your PIN"}, MinDigits: 4, MaxDigits: 8})}}
		return &wire.Decision{Source: wire.SourceDecider, Outcome: wire.OutcomeFlow, LatencyMicros: 90,
			Flow: "main-menu", FlowVersion: 3, FlowStep: "driver", Callflow: r.JSON()}
	}
	action := func(id string, eventData any) pub {
		p := map[string]any{"callId": "c-" + id, "sessionId": "x8-" + id, "subAccountId": fxAccount,
			"callStatus": "ACTION_COMPLETED", "source": fxCaller, "destination": fxNumber, "clientActionId": "flow:main-menu:3:welcome:0"}
		if eventData != nil {
			p["eventData"] = eventData
		}
		return eventPub(wire.EventCallAction, id, t0, p, dec())
	}
	tests := []struct {
		id        string
		eventData any
		dtmf, asr string
	}{
		{"ed-dtmf", map[string]any{"dtmf": "2", "asrCaptured": nil}, "2", ""},
		{"ed-both", map[string]any{"dtmf": "1234#", "asrCaptured": "one two three four"}, "1234#", "one two three four"},
		{"ed-string", `{"dtmf":"9"}`, "", ""},
		{"ed-null", map[string]any{"dtmf": nil}, "", ""},
		{"ed-none", nil, "", ""},
	}
	var pubs []pub
	for _, tt := range tests {
		pubs = append(pubs, action(tt.id, tt.eventData))
	}
	e.publishAll(t, pubs)
	e.run(t, e.config(t))
	e.waitRows(t, "SELECT count() FROM DB.call_events", uint64(len(pubs)))
	for _, tt := range tests {
		var dtmf, asr string
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := e.ch.QueryRow(ctx, "SELECT event_dtmf, event_asr FROM "+e.db+".call_events FINAL WHERE event_id = ?", tt.id).Scan(&dtmf, &asr)
		cancel()
		if err != nil {
			t.Fatalf("row %s: %v", tt.id, err)
		}
		if dtmf != tt.dtmf || asr != tt.asr {
			t.Errorf("%s: event_dtmf %q, event_asr %q; want %q, %q", tt.id, dtmf, asr, tt.dtmf, tt.asr)
		}
	}
}
