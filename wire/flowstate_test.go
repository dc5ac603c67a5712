package wire

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

const flowSession = "0123456789abcdef0123456789abcdef"

func TestFlowStateClientActionID(t *testing.T) {
	long := strings.Repeat("a", MaxFlowNameLength)
	tests := []struct {
		state FlowState
		want  string
	}{
		{FlowState{Flow: "main-menu", Version: 3, Step: "welcome"}, "flow:main-menu:3:welcome:0"},
		{FlowState{Flow: "main-menu", Version: 3, Step: "welcome", Tries: 2}, "flow:main-menu:3:welcome:2"},
		{FlowState{Flow: "m", Version: 1, Step: "s", Restarted: true}, "flow:m:1:s:0:r"},
		{FlowState{Flow: "m", Version: 1, Step: "driver", Session: flowSession}, "flow:m:1:driver:0:" + flowSession},
		{FlowState{Flow: "m", Version: 1, Step: "driver", Tries: 1, Restarted: true, Session: flowSession}, "flow:m:1:driver:1:r:" + flowSession},
		{FlowState{Flow: "A_b-9", Version: MaxFlowVersion, Step: "Z_0-z", Tries: MaxFlowTries}, "flow:A_b-9:9007199254740991:Z_0-z:99"},
		{FlowState{Flow: long, Version: 1, Step: long}, "flow:" + long + ":1:" + long + ":0"},
		// Not valid: no id, so that the call restarts its flow.
		{FlowState{Version: 1, Step: "s"}, ""},
		{FlowState{Flow: "m", Version: 1}, ""},
		{FlowState{Flow: "m", Step: "s"}, ""},
		{FlowState{Flow: "m", Version: MaxFlowVersion + 1, Step: "s"}, ""},
		{FlowState{Flow: "m", Version: 1, Step: "s", Tries: -1}, ""},
		{FlowState{Flow: "m", Version: 1, Step: "s", Tries: MaxFlowTries + 1}, ""},
		{FlowState{Flow: "m:1", Version: 1, Step: "s"}, ""},
		{FlowState{Flow: "m", Version: 1, Step: "s:0:r"}, ""},
		{FlowState{Flow: long + "a", Version: 1, Step: "s"}, ""},
		{FlowState{Flow: "m", Version: 1, Step: "s", Session: "r"}, ""},
		{FlowState{Flow: "m", Version: 1, Step: "s", Session: strings.ToUpper(flowSession)}, ""},
	}
	for _, tt := range tests {
		got := tt.state.ClientActionID()
		if got != tt.want {
			t.Errorf("%+v.ClientActionID() = %q, want %q", tt.state, got, tt.want)
		}
		if app := tt.state.AppendClientActionID([]byte("x")); string(app) != "x"+tt.want {
			t.Errorf("%+v.AppendClientActionID = %q", tt.state, app)
		}
		if tt.state.Valid() != (tt.want != "") {
			t.Errorf("%+v.Valid() = %v", tt.state, tt.state.Valid())
		}
		if tt.want == "" {
			continue
		}
		back, ok := ParseFlowState(got)
		if !ok || back != tt.state {
			t.Errorf("ParseFlowState(%q) = %+v, %v; want %+v", got, back, ok, tt.state)
		}
	}
}

func TestParseFlowStateRefuses(t *testing.T) {
	long := strings.Repeat("a", MaxFlowNameLength+1)
	for _, id := range []string{
		"", "flow", "flow:", "flow:m", "flow:m:1", "flow:m:1:s", "flow:m:1:s:",
		"FLOW:m:1:s:0", "flows:m:1:s:0", " flow:m:1:s:0", "flow:m:1:s:0 ", "flow:m:1:s:0\n",
		"flow::1:s:0", "flow:m:1::0", "flow:m::s:0", "flow:m:1:s:",
		"flow:m:0:s:0",                                    // versions start at 1
		"flow:m:01:s:0", "flow:m:1:s:00", "flow:m:1:s:01", // not canonical
		"flow:m:+1:s:0", "flow:m:-1:s:0", "flow:m:1:s:-1", "flow:m:1:s:+0", "flow:m:1e3:s:0", "flow:m:0x1:s:0", "flow:m:1.0:s:0",
		"flow:m:" + strconv.FormatUint(MaxFlowVersion+1, 10) + ":s:0",
		"flow:m:" + strconv.FormatUint(math.MaxUint64, 10) + ":s:0",
		"flow:m:18446744073709551616:s:0",
		"flow:m:99999999999999999999999999:s:0",
		"flow:m:1:s:100", "flow:m:1:s:999999999999999999999",
		"flow:" + long + ":1:s:0", "flow:m:1:" + long + ":0",
		"flow:m.n:1:s:0", "flow:m:1:s t:0", "flow:m/1:1:s:0", "flow:é:1:s:0", "flow:m:1:s\x00:0",
		"flow:m:1:s:0:x", "flow:m:1:s:0:R", "flow:m:1:s:0:r:r", "flow:m:1:s:0::", "flow:m:1:s:0:",
		"flow:m:1:s:0:" + flowSession + ":r",                       // canonical order: r first
		"flow:m:1:s:0:" + flowSession + ":" + flowSession,          // extra field
		"flow:m:1:s:0:" + strings.ToUpper(flowSession),             // not our session id's shape
		"flow:m:1:s:0:" + flowSession[:31],                         // too short
		"flow:m:1:s:0:r:" + flowSession + ":x",                     // extra field
		"flow:m:1:s:0:r:" + flowSession + strings.Repeat("a", 200), // too long
		flowSession, "out-of-session", "forward:number", "follow-up", "fallback", "NumberMaskingId1",
	} {
		if s, ok := ParseFlowState(id); ok {
			t.Errorf("ParseFlowState(%q) = %+v, want not ok", id, s)
		}
	}
}

func TestValidFlowName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"main-menu", true}, {"a", true}, {"A_Z-0_9", true}, {"-", true}, {"_", true}, {"123", true},
		{strings.Repeat("x", MaxFlowNameLength), true},
		{"", false}, {strings.Repeat("x", MaxFlowNameLength+1), false},
		{"a:b", false}, {"a b", false}, {"a.b", false}, {"a/b", false}, {"é", false}, {"a\x00", false}, {"a\n", false},
	} {
		if got := ValidFlowName(tt.name); got != tt.ok {
			t.Errorf("ValidFlowName(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

// TestFlowStateAllocations: decoding a flow state, and classifying a
// reply by it, allocate nothing (both run on every decision).
func TestFlowStateAllocations(t *testing.T) {
	id := "flow:main-menu:12:driver:1:r:" + flowSession
	if n := testing.AllocsPerRun(100, func() {
		if _, ok := ParseFlowState(id); !ok {
			t.Fatal("does not decode")
		}
		if v := ClassifyClientAction(id, true); v.FlowStep != "driver" {
			t.Fatal(v)
		}
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// FuzzFlowState: ParseFlowState never panics; what it decodes is a valid
// state that encodes back to the same id exactly (one encoding per
// state), which ClassifyClientAction reads as a flow step; and a valid
// state built from any fields encodes to an id that decodes to it.
func FuzzFlowState(f *testing.F) {
	f.Add("flow:main-menu:3:welcome:0", "main-menu", uint64(3), "welcome", 0, false, "")
	f.Add("flow:m:1:driver:1:r:"+flowSession, "m", uint64(1), "driver", 1, true, flowSession)
	f.Add("flow:m:01:s:0", "m:1", uint64(0), "s", -1, false, "r")
	f.Add("flow:m:9007199254740992:s:0", "m", uint64(MaxFlowVersion+1), "s", 100, true, strings.ToUpper(flowSession))
	f.Add("flow:m:1:s:0:", "", uint64(math.MaxUint64), "", math.MaxInt, false, "x")
	f.Add(flowSession, "a", uint64(1), "b", 99, false, flowSession)
	f.Fuzz(func(t *testing.T, id, flow string, version uint64, step string, tries int, restarted bool, session string) {
		if s, ok := ParseFlowState(id); ok {
			if !s.Valid() {
				t.Fatalf("ParseFlowState(%q) = %+v, not Valid", id, s)
			}
			if got := s.ClientActionID(); got != id {
				t.Fatalf("ParseFlowState(%q) = %+v, which encodes as %q", id, s, got)
			}
			for _, connects := range []bool{false, true} {
				v := ClassifyClientAction(id, connects)
				want := Verdict{Outcome: OutcomeFlow, FlowID: s.Flow, FlowVersion: s.Version, FlowStep: s.Step}
				if connects {
					want.Outcome, want.MaskingSessionID = OutcomeConnect, s.Session
				}
				if v != want {
					t.Fatalf("ClassifyClientAction(%q, %v) = %+v, want %+v", id, connects, v, want)
				}
			}
		}
		s := FlowState{Flow: flow, Version: version, Step: step, Tries: tries, Restarted: restarted, Session: session}
		id = s.ClientActionID()
		if !s.Valid() {
			if id != "" {
				t.Fatalf("%+v is not valid, encodes as %q", s, id)
			}
			return
		}
		back, ok := ParseFlowState(id)
		if !ok || back != s {
			t.Fatalf("%+v encodes as %q, which decodes to %+v, %v", s, id, back, ok)
		}
	})
}

func BenchmarkParseFlowState(b *testing.B) {
	id := FlowState{Flow: "main-menu", Version: 12, Step: "welcome", Tries: 1}.ClientActionID()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ParseFlowState(id); !ok {
			b.Fatal("does not decode")
		}
	}
}
