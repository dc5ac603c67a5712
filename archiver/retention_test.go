package archiver

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/wire"
)

func TestRetentionCutoff(t *testing.T) {
	for _, tc := range []struct {
		now    string
		months int
		want   int
	}{
		{"2026-12-05T10:00:00Z", 1, 202612},
		{"2026-12-05T10:00:00Z", 3, 202610},
		{"2026-12-05T10:00:00Z", 12, 202601},
		{"2026-12-05T10:00:00Z", 13, 202512},
		{"2026-03-31T23:59:59Z", 2, 202602},
		{"2027-01-01T00:00:00Z", 25, 202501},
	} {
		now, _ := time.Parse(time.RFC3339, tc.now)
		if got := RetentionCutoff(now, tc.months); got != tc.want {
			t.Errorf("RetentionCutoff(%s, %d) = %d, want %d", tc.now, tc.months, got, tc.want)
		}
	}
}

// monthsFixture is calls of one caller in four months, besides the other
// tables' rows, for the retention and erasure tests.
func monthsFixture(caller string) []pub {
	var pubs []pub
	for i, month := range []time.Month{8, 9, 10, 11} {
		at := time.Date(2026, month, 10, 9, 0, 0, 0, time.UTC)
		id := "ret-" + month.String()
		pubs = append(pubs, callAction(id, "s-"+id, "c-"+id, at, caller, "+6568330001", connectDecision("m-"+id, "+6568330001", "+6591110000")))
		if i == 3 { // another caller, who must keep their history
			pubs = append(pubs, callAction("other", "s-other", "c-other", at, "+6592220000", "+6568330001", connectDecision("m-other", "+6568330001", "+6591110000")))
		}
	}
	return pubs
}

func TestDropPartitionsBefore(t *testing.T) {
	// History older than the months kept goes by whole monthly
	// partitions, in every table (the materialized views' included); the
	// months kept are untouched; dropping again drops nothing.
	e := newEnv(t, chtest.Addr(t))
	pubs := monthsFixture("+6590001111")
	e.publishAll(t, pubs)
	e.run(t, e.config(t))
	e.waitRows(t, "SELECT count() FROM DB.call_events", uint64(len(pubs)))
	e.waitRows(t, "SELECT count() FROM DB.interaction_calls", uint64(len(pubs)))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dropped, err := DropPartitionsBefore(ctx, e.ch, e.db, "", 202610)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for _, p := range dropped {
		if p.Month >= 202610 {
			t.Errorf("dropped %+v, a month kept", p)
		}
		tables = append(tables, p.Table)
	}
	for _, want := range []string{"call_events", "interaction_calls", ".inner.calls_per_minute"} {
		if !slices.Contains(tables, want) {
			t.Errorf("dropped %v: nothing of %s", dropped, want)
		}
	}
	if n := e.count(t, "SELECT count() FROM DB.call_events WHERE toYYYYMM(event_time) < 202610"); n != 0 {
		t.Errorf("%d rows older than the cutoff left", n)
	}
	if n := e.count(t, "SELECT count() FROM DB.call_events"); n != 3 {
		t.Errorf("%d rows kept, want 3 (October, and November's two)", n)
	}
	if n := e.count(t, "SELECT count() FROM DB.interaction_calls"); n != 3 {
		t.Errorf("interaction_calls: %d rows kept, want 3", n)
	}
	if again, err := DropPartitionsBefore(ctx, e.ch, e.db, "", 202610); err != nil || len(again) != 0 {
		t.Errorf("dropping again: %v, %v; want nothing", again, err)
	}
}

func TestRetentionInTheArchiver(t *testing.T) {
	// An archiver with a retention drops what aged out as it starts.
	e := newEnv(t, chtest.Addr(t))
	old := callAction("old", "s-old", "c-old", time.Now().AddDate(0, -4, 0), "+6590002222", "+6568330001", connectDecision("m-old", "+6568330001", "+6591110000"))
	recent := callAction("new", "s-new", "c-new", time.Now(), "+6590002222", "+6568330001", connectDecision("m-new", "+6568330001", "+6591110000"))
	e.publishAll(t, []pub{old, recent})
	_, stop := e.run(t, e.config(t))
	e.waitRows(t, "SELECT count() FROM DB.call_events", 2)
	stop()
	cfg := e.config(t)
	cfg.RetentionMonths = 2
	e.run(t, cfg)
	e.waitRows(t, "SELECT count() FROM DB.call_events", 1)
	if n := e.count(t, "SELECT count() FROM DB.call_events WHERE event_id = 'new'"); n != 1 {
		t.Errorf("the recent call is gone")
	}
}

func TestErase(t *testing.T) {
	// Every row carrying a caller's number goes, in every table that has
	// them, with or without the +; another caller's rows, and a number
	// that merely contains the digits, stay; a virtual number of the pool
	// is refused.
	e := newEnv(t, chtest.Addr(t))
	const caller = "+6590003333"
	pubs := monthsFixture(caller)
	// A longer number that contains the caller's digits.
	pubs = append(pubs, callAction("longer", "s-l", "c-l", time.Date(2026, 11, 11, 9, 0, 0, 0, time.UTC), "+16590003333", "+6568330001", nil))
	pubs = append(pubs, eventPub(wire.EventVirtualNumberUpdate, "vnu-1", time.Time{}, map[string]any{
		"subAccountId": "acme", "updateEventType": "SNAPSHOT", "updatedTimestamp": time.Now().UTC().Format(time.RFC3339),
		"virtualNumbers": []map[string]any{{"msisdn": "+6568330001", "countryCode": "SG", "operationalStatus": "Active"}}}, nil))
	e.publishAll(t, pubs)
	e.run(t, e.config(t))
	e.waitRows(t, "SELECT count() FROM DB.call_events", uint64(len(pubs)))
	e.waitRows(t, "SELECT count() FROM DB.number_status", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	erased, err := Erase(ctx, e.ch, e.db, "", "6590003333", nil)
	if err != nil {
		t.Fatal(err)
	}
	if erased["call_events"] != 4 || erased["interaction_calls"] != 4 {
		t.Errorf("erased %v, want 4 rows of call_events and of interaction_calls", erased)
	}
	if n := e.count(t, "SELECT count() FROM DB.call_events WHERE source = '"+caller+"' OR position(raw, '6590003333') > 0 AND event_id != 'longer'"); n != 0 {
		t.Errorf("%d rows still carry the number", n)
	}
	for _, id := range []string{"other", "longer"} {
		if n := e.count(t, "SELECT count() FROM DB.call_events WHERE event_id = '"+id+"'"); n != 1 {
			t.Errorf("row %s erased with the number", id)
		}
	}
	if again, err := Erase(ctx, e.ch, e.db, "", caller, nil); err != nil || again["call_events"] != 0 {
		t.Errorf("erasing again: %v, %v; want nothing", again, err)
	}
	if _, err := Erase(ctx, e.ch, e.db, "", "+6568330001", nil); !errors.Is(err, ErrVirtualNumber) {
		t.Errorf("erasing a pool number: %v, want ErrVirtualNumber", err)
	}
	if _, err := Erase(ctx, e.ch, e.db, "", "12ab", nil); !errors.Is(err, wire.ErrInvalidNumber) {
		t.Errorf("erasing a malformed number: %v, want ErrInvalidNumber", err)
	}
}
