package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/wire"
)

var testStart = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func validNumber(t *testing.T, s string) {
	t.Helper()
	if n, err := wire.NormalizeNumber(s); err != nil || n != s || len(s) < 9 || len(s) > 16 || s[1] == '0' {
		t.Fatalf("%q is not a valid +digits number (8 to 15 digits, first not 0)", s)
	}
}

func TestMakeSessionsNumbers(t *testing.T) {
	a, b := MakeSessions("1700000000000", 1000), MakeSessions("1700000000001", 1000)
	seen := map[string]bool{}
	for _, set := range [][]Session{a, b} {
		for _, s := range set {
			for _, n := range []string{s.VirtualNumber, s.Participants[0], s.Participants[1]} {
				validNumber(t, n)
				if seen[n] {
					t.Fatalf("number %s used twice (within a run or across two runs)", n)
				}
				seen[n] = true
			}
		}
	}
	// Deterministic: the same run gets the same numbers.
	if again := MakeSessions("1700000000000", 3); again[2] != a[2] {
		t.Errorf("sessions differ between two calls: %v %v", again[2], a[2])
	}
}

type event struct {
	EventType string
	Payload   map[string]any
}

func TestTrafficMix(t *testing.T) {
	sessions := MakeSessions("mix", 50)
	tr, err := NewTraffic("mix", testStart, sessions, DefaultMix)
	if err != nil {
		t.Fatal(err)
	}
	participant := map[string]Session{}
	for _, s := range sessions {
		participant[s.Participants[0]] = s
		participant[s.Participants[1]] = s
	}
	const n = 100000
	var counts [numKinds]int
	usedSessions := map[string]bool{}
	var buf []byte
	for i := range uint64(n) {
		var kind Kind
		buf, kind = tr.Append(buf[:0], i)
		counts[kind]++
		if kind != tr.Kind(i) {
			t.Fatalf("Append says %v, Kind says %v", kind, tr.Kind(i))
		}
		if i%20 != 0 && kind != KindSummary {
			continue // parse a sample (and every summary)
		}
		ev, err := wire.ParseEvent(buf)
		if err != nil {
			t.Fatalf("body %d (%v) is not a valid event: %v\n%s", i, kind, err, buf)
		}
		if !json.Valid(buf) {
			t.Fatalf("body %d is not strict JSON", i)
		}
		p := ev.Payload
		id := string(tr.AppendID(nil, i))
		switch kind {
		case KindInSession:
			s, ok := participant[p.Source]
			if ev.EventType != wire.EventCallAction || p.EventID != id || !ok || s.VirtualNumber != p.Destination {
				t.Fatalf("in-session body %d: %s", i, buf)
			}
			usedSessions[s.VirtualNumber] = true
		case KindOutOfSession:
			if _, ok := participant[p.Source]; ev.EventType != wire.EventCallAction || p.EventID != id || ok {
				t.Fatalf("out-of-session body %d: %s", i, buf)
			}
			validNumber(t, p.Source)
			validNumber(t, p.Destination)
		case KindStatus:
			if ev.EventType != wire.EventCallStatus || p.EventID != id {
				t.Fatalf("status body %d: %s", i, buf)
			}
		case KindSummary:
			// As 8x8 sends them: no eventId; the run's id is the sessionId.
			if ev.EventType != wire.EventSessionSummary || p.EventID != "" || p.SessionID != id {
				t.Fatalf("summary body %d: %s", i, buf)
			}
		}
		if ts := ev.Time(); !ts.Equal(testStart) {
			t.Fatalf("body %d time %v, want the run start", i, ts)
		}
	}
	want := [numKinds]float64{0.8, 0.1, 0.05, 0.05}
	for k := range numKinds {
		got := float64(counts[k]) / n
		if math.Abs(got-want[k]) > 0.01 {
			t.Errorf("%v: %.3f of the requests, want %.2f", k, got, want[k])
		}
	}
	if len(usedSessions) != len(sessions) {
		t.Errorf("in-session calls used %d of %d sessions", len(usedSessions), len(sessions))
	}
}

func TestTrafficDeterministicAndCheap(t *testing.T) {
	tr, _ := NewTraffic("det", testStart, MakeSessions("det", 10), DefaultMix)
	a, _ := tr.Append(nil, 12345)
	b, _ := tr.Append(make([]byte, 0, 4096), 12345)
	if !bytes.Equal(a, b) {
		t.Fatal("the same index gave two bodies")
	}
	other, _ := tr.Append(nil, 12346)
	if bytes.Equal(a, other) {
		t.Fatal("two indexes gave the same body")
	}
	buf := make([]byte, 0, 4096)
	var i uint64
	if allocs := testing.AllocsPerRun(1000, func() { buf, _ = tr.Append(buf[:0], i); i++ }); allocs != 0 {
		t.Errorf("Append allocates %v times per body, want 0", allocs)
	}
}

func TestTrafficWithoutSessions(t *testing.T) {
	tr, err := NewTraffic("nosess", testStart, nil, DefaultMix)
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	for i := range uint64(10000) {
		body, kind := tr.Append(nil, i)
		if kind == KindInSession {
			t.Fatalf("in-session call with no sessions")
		}
		if kind == KindOutOfSession {
			calls++
		}
		if _, err := wire.ParseEvent(body); err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
	}
	// The in-session share went to strangers: 0.9 of the requests.
	if f := float64(calls) / 10000; math.Abs(f-0.9) > 0.02 {
		t.Errorf("out-of-session share %.3f, want 0.9", f)
	}
	only, err := NewTraffic("x", testStart, nil, Mix{InSession: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(1000) {
		if k := only.Kind(i); k != KindOutOfSession {
			t.Fatalf("only in-session calls and no sessions: request %d is %v, want out_of_session", i, k)
		}
	}
}

func TestTrafficCustomMix(t *testing.T) {
	// Weights need not add up to 1; a zero weight is never sent.
	tr, err := NewTraffic("custom", testStart, MakeSessions("custom", 3), Mix{InSession: 3, Status: 1})
	if err != nil {
		t.Fatal(err)
	}
	var counts [numKinds]int
	for i := range uint64(20000) {
		counts[tr.Kind(i)]++
	}
	if counts[KindOutOfSession] != 0 || counts[KindSummary] != 0 {
		t.Errorf("zero-weight kinds sent: %v", counts)
	}
	if f := float64(counts[KindInSession]) / 20000; math.Abs(f-0.75) > 0.015 {
		t.Errorf("in-session share %.3f, want 0.75", f)
	}
	if !strings.HasPrefix(tr.IDPrefix(), "bench-custom-") {
		t.Errorf("id prefix %q", tr.IDPrefix())
	}
}
