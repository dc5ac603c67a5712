package archiver

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/wire"
)

// flowMaskingSession is the session the fixture's PIN step connects to.
const flowMaskingSession = "0000000000000000000000000000f10e"

// flowDecision is a decider's answer at step of the main-menu flow
// (version), after the caller pressed digits, as the ingestor records it.
func flowDecision(version uint64, step string, tries int, digits string, actions ...wire.Action) *wire.Decision {
	st := wire.FlowState{Flow: "main-menu", Version: version, Step: step, Tries: tries}
	outcome := wire.OutcomeFlow
	for _, a := range actions {
		if a.Action == wire.ActionMakeCall {
			outcome = wire.OutcomeConnect
			if step == "driver" {
				st.Session = flowMaskingSession
			}
		}
	}
	r := wire.Response{ClientActionID: st.ClientActionID(), Callflow: actions}
	return &wire.Decision{Source: wire.SourceDecider, Outcome: outcome, LatencyMicros: 120, VirtualNumber: fxFlowNumber,
		MaskingSessionID: st.Session, Flow: "main-menu", FlowVersion: version, FlowStep: step, Digits: digits, Callflow: r.JSON()}
}

// fxFlowNumber is the number the fixture's flow is attached to.
const fxFlowNumber = "+6590000009"

// flowAction is a CALL_ACTION of call: CALL_RECEIVED when after is "",
// else ACTION_COMPLETED echoing after (the previous answer's
// clientActionId) with the digits pressed.
func flowAction(id, call string, t time.Time, caller, after, digits string, dec *wire.Decision) pub {
	p := map[string]any{"callId": call, "sessionId": "x8-" + call, "subAccountId": fxAccount,
		"callStatus": "CALL_RECEIVED", "source": caller, "destination": fxFlowNumber, "callDirection": "INBOUND"}
	if after != "" {
		p["callStatus"], p["clientActionId"] = "ACTION_COMPLETED", after
		if digits != "" {
			p["eventData"] = map[string]any{"dtmf": digits}
		}
	}
	return eventPub(wire.EventCallAction, id, t, p, dec)
}

// flowFixture is four callers through the main-menu flow from
// t0: one presses 2 and a PIN and is connected to their driver; one
// presses a wrong key, then nothing, and is told goodbye; one presses 1
// and is transferred to sales; one, on the previous version, hangs up at
// the menu.
func flowFixture(t0 time.Time) []pub {
	s := func(d time.Duration) time.Time { return t0.Add(d) }
	menu := func() wire.Action {
		return wire.SayAndCaptureAction(wire.Capture{Say: wire.Say{Text: "For sales press 1. For your driver press 2."}, MaxDigits: 1, OverallTimeout: 5000, CompleteOnHash: true})
	}
	pin := wire.SayAndCaptureAction(wire.Capture{Say: wire.Say{Text: "Enter your order PIN, then hash."}, MinDigits: 4, MaxDigits: 8, OverallTimeout: 10000, CompleteOnHash: true})
	sorry := wire.SayAction(wire.Say{Text: "Sorry, that is not an option."})
	id := func(step string, tries int) string {
		return wire.FlowState{Flow: "main-menu", Version: 3, Step: step, Tries: tries}.ClientActionID()
	}
	return []pub{
		flowAction("f1-1", "c-f1", s(0), "+6581000001", "", "", flowDecision(3, "welcome", 0, "", menu())),
		flowAction("f1-2", "c-f1", s(6*time.Second), "+6581000001", id("welcome", 0), "2", flowDecision(3, "driver", 0, "2", pin)),
		flowAction("f1-3", "c-f1", s(15*time.Second), "+6581000001", id("driver", 0), "1234#", flowDecision(3, "driver", 0, "1234#",
			wire.MakeCall(fxFlowNumber, "+6582000001", false))),

		flowAction("f2-1", "c-f2", s(time.Minute), "+6581000002", "", "", flowDecision(3, "welcome", 0, "", menu())),
		flowAction("f2-2", "c-f2", s(time.Minute+5*time.Second), "+6581000002", id("welcome", 0), "9", flowDecision(3, "welcome", 1, "9", sorry, menu())),
		flowAction("f2-3", "c-f2", s(time.Minute+12*time.Second), "+6581000002", id("welcome", 1), "", flowDecision(3, "welcome", 2, "", menu())),
		flowAction("f2-4", "c-f2", s(time.Minute+19*time.Second), "+6581000002", id("welcome", 2), "", flowDecision(3, "bye", 0, "",
			wire.SayAction(wire.Say{Text: "Goodbye."}), wire.Hangup())),

		flowAction("f3-1", "c-f3", s(2*time.Minute), "+6581000003", "", "", flowDecision(3, "welcome", 0, "", menu())),
		flowAction("f3-2", "c-f3", s(2*time.Minute+4*time.Second), "+6581000003", id("welcome", 0), "1", flowDecision(3, "sales", 0, "1",
			wire.SayAction(wire.Say{Text: "Connecting you to sales."}), wire.MakeCall(fxFlowNumber, "+6560000001", false))),

		flowAction("f4-1", "c-f4", s(3*time.Minute), "+6581000004", "", "", flowDecision(2, "welcome", 0, "", menu())),
	}
}

// TestFlowColumns: a flow step's record fills flow_id, flow_version,
// flow_step and digits from the decision; a masking answer leaves them
// empty and 0.
func TestFlowColumns(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	pubs := append(flowFixture(time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)),
		callAction("m-1", "x8-m1", "c-m1", time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), fxCaller, fxNumber,
			connectDecision(exampleMaskingSession, fxNumber, fxCallee)))
	e.publishAll(t, pubs)
	e.run(t, e.config(t))
	e.waitRows(t, "SELECT count() FROM DB.call_events", uint64(len(pubs)))
	tests := []struct {
		id, flow   string
		version    uint64
		step       string
		digits     string
		dtmf       string
		connectsTo string
	}{
		{"f1-1", "main-menu", 3, "welcome", "", "", ""},
		{"f1-2", "main-menu", 3, "driver", "2", "2", ""},
		{"f1-3", "main-menu", 3, "driver", "1234#", "1234#", "+6582000001"},
		{"f2-4", "main-menu", 3, "bye", "", "", ""},
		{"f4-1", "main-menu", 2, "welcome", "", "", ""},
		{"m-1", "", 0, "", "", "", fxCallee},
	}
	for _, tt := range tests {
		var flow, step, digits, dtmf, connected string
		var version uint64
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := e.ch.QueryRow(ctx, "SELECT flow_id, flow_version, flow_step, digits, event_dtmf, connected_to FROM "+e.db+".call_events FINAL WHERE event_id = ?", tt.id).
			Scan(&flow, &version, &step, &digits, &dtmf, &connected)
		cancel()
		if err != nil {
			t.Fatalf("row %s: %v", tt.id, err)
		}
		if flow != tt.flow || version != tt.version || step != tt.step || digits != tt.digits || dtmf != tt.dtmf || connected != tt.connectsTo {
			t.Errorf("%s: flow %q v%d step %q digits %q dtmf %q connected_to %q; want %q v%d %q %q %q %q",
				tt.id, flow, version, step, digits, dtmf, connected, tt.flow, tt.version, tt.step, tt.digits, tt.dtmf, tt.connectsTo)
		}
	}
}

// TestFlowQueries runs the flow queries of deploy/clickhouse/queries.sql
// (the funnel, where callers leave, the digits chosen) over the fixture
// and checks what they say about it.
func TestFlowQueries(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	pubs := flowFixture(time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC))
	e.publishAll(t, pubs)
	e.run(t, e.config(t))
	e.waitRows(t, "SELECT count() FROM DB.call_events", uint64(len(pubs)))
	b, err := os.ReadFile("../deploy/clickhouse/queries.sql")
	if err != nil {
		t.Fatal(err)
	}
	find := func(marker string) string {
		for _, q := range SplitSQL(string(b)) {
			if strings.Contains(q, marker) {
				return strings.ReplaceAll(q, "callflow.", e.db+".")
			}
		}
		t.Fatalf("no query with %q in queries.sql", marker)
		return ""
	}
	// rows runs q and returns its rows, the columns of each joined by |.
	rows := func(q string, columns int) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := e.ch.Query(ctx, q)
		if err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
		defer r.Close()
		var out []string
		types := r.ColumnTypes()
		for r.Next() {
			vals := make([]any, len(types))
			for i, ct := range types {
				vals[i] = reflect.New(ct.ScanType()).Interface()
			}
			if err := r.Scan(vals...); err != nil {
				t.Fatal(err)
			}
			var cols []string
			for _, v := range vals[:columns] {
				cols = append(cols, fmt.Sprint(reflect.ValueOf(v).Elem().Interface()))
			}
			out = append(out, strings.Join(cols, "|"))
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	check := func(name string, got, want []string) {
		t.Helper()
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\n%s\nwant\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	// flow, version, step, calls, callers, answers, percent of calls
	check("funnel", rows(find("AS percent_of_calls"), 7), []string{
		"main-menu|3|welcome|3|3|5|100",
		"main-menu|3|bye|1|1|1|33.3",
		"main-menu|3|driver|1|1|2|33.3",
		"main-menu|3|sales|1|1|1|33.3",
		"main-menu|2|welcome|1|1|1|100",
	})
	// flow, version, last step, left by, calls, answers, seconds
	check("where callers leave", rows(find("AS left_by"), 7), []string{
		"main-menu|3|bye|ended by the flow|1|4|19",
		"main-menu|3|driver|connected|1|3|15",
		"main-menu|3|sales|connected|1|2|4",
		"main-menu|2|welcome|left at the prompt|1|1|0",
	})
	// flow, version, asked at, pressed, led to, times, calls
	check("digits", rows(find("AS asked_at"), 7), []string{
		"main-menu|3|driver|1234#|driver|1|1",
		"main-menu|3|welcome|(none)|bye|1|1",
		"main-menu|3|welcome|(none)|welcome|1|1",
		"main-menu|3|welcome|1|sales|1|1",
		"main-menu|3|welcome|2|driver|1|1",
		"main-menu|3|welcome|9|welcome|1|1",
	})
}
