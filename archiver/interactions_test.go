package archiver

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/wire"
)

// TestMaskingColumns: every CALL_ACTION outcome is archived with the
// masking session it was routed to, the number dialled, the policy that
// answered and the callee of its makeCall; an audit record with its
// session and number; other events with none of them.
func TestMaskingColumns(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	// A record written before decisions carried the masking session: its
	// answer's clientActionId named the session, as it still does.
	old := connectDecision(exampleMaskingSession, fxNumber, fxCallee)
	old.MaskingSessionID, old.VirtualNumber = "", ""
	noVN := outOfSessionDecision(wire.PolicyDefault, "")
	audit := wire.Audit{ID: "audit-1", Timestamp: t0, Operation: wire.AuditDelete, SessionID: exampleMaskingSession, VirtualNumber: fxNumber,
		Actor: wire.Actor{Address: "10.0.0.1"}}
	auditRec := wire.Record{Version: wire.RecordVersion, ID: audit.ID, EventType: wire.EventSessionAudit, ReceivedAt: time.Now(), Instance: "t", Event: audit.Event()}

	type want struct{ masking, vn, policy, connectedTo, outcome string }
	cases := []struct {
		name string
		pub  pub
		want want
	}{
		{"connect", callAction("m-connect", "x1", "c1", t0, fxCaller, fxNumber, connectDecision(exampleMaskingSession, fxNumber, fxCallee)),
			want{exampleMaskingSession, fxNumber, "", fxCallee, "connect"}},
		{"forward by the sub-account's policy, destination without +", callAction("m-forward", "x2", "c2", t0, fxCaller, fxNumber, forwardDecision(wire.PolicySubAccount, fxNumber, "6533333333")),
			want{"", fxNumber, "subaccount", "+6533333333", "forward"}},
		{"out of session by the number's policy", callAction("m-oos", "x3", "c3", t0, fxCaller, fxNumber, outOfSessionDecision(wire.PolicyNumber, fxNumber)),
			want{"", fxNumber, "number", "", "out_of_session"}},
		{"follow-up", callAction("m-follow", "x4", "c4", t0, fxCaller, fxNumber, followUpDecision(fxNumber)),
			want{"", fxNumber, "", "", "follow_up"}},
		{"fallback: the number from the destination", callAction("m-fallback", "x5", "c5", t0, fxCaller, "6590000001", fallbackDecision()),
			want{"", fxNumber, "", "", "fallback"}},
		{"record older than the masking fields", callAction("m-old", "x6", "c6", t0, fxCaller, fxNumber, old),
			want{exampleMaskingSession, fxNumber, "", fxCallee, "connect"}},
		{"destination that is not a number", callAction("m-anon", "x7", "c7", t0, fxCaller, "anonymous", noVN),
			want{"", "", "default", "", "out_of_session"}},
		{"call status", callStatus("m-status", "x1", "c1", "CALL_CONNECTED", "INBOUND", t0, 0), want{}},
		{"audit", pub{subject: wire.AuditSubject(wire.AuditDelete), id: audit.ID, data: auditRec.AppendJSON(nil)},
			want{exampleMaskingSession, fxNumber, "", "", ""}},
	}
	pubs := make([]pub, len(cases))
	for i, c := range cases {
		pubs[i] = c.pub
	}
	e.publishAll(t, pubs)
	e.run(t, e.config(t))
	e.waitRows(t, "SELECT count() FROM DB.call_events", uint64(len(cases)))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got want
			got.masking, got.vn, got.policy, got.connectedTo, got.outcome = e.maskingColumns(t, c.pub.id)
			if got != c.want {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
	if n := e.count(t, "SELECT count() FROM DB.rejected_records"); n != 0 {
		t.Errorf("%d records set aside, want none", n)
	}
	// Only the calls answered with a makeCall are in interaction_calls.
	if n := e.count(t, "SELECT count() FROM DB.interaction_calls"); n != 3 {
		t.Errorf("interaction_calls has %d rows, want 3 (connect, forward, old connect)", n)
	}
}

// TestNumberStatus: each number of a VIRTUAL_NUMBER_UPDATE is a
// number_status row, exactly once through FINAL when archived twice;
// updates that do not read as numbers are archived in call_events alone.
func TestNumberStatus(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	pubs := maskingFixture(t0)
	var vnus []pub
	for _, p := range pubs {
		if strings.HasPrefix(p.id, "vnu-") {
			vnus = append(vnus, p)
		}
	}
	vnus = append(vnus,
		// 8x8 adds fields and may send numbers this reader does not
		// expect: a number without msisdn is skipped, a time in epoch
		// milliseconds is read, a number without one takes the event's.
		eventPub(wire.EventVirtualNumberUpdate, "vnu-3", t0.Add(5*time.Hour), map[string]any{"subAccountId": fxAccount, "updateEventType": "UPDATES",
			"virtualNumbers": []any{
				map[string]any{"countryCode": "SG", "operationalStatus": "Active"},
				map[string]any{"msisdn": "6590000003", "updatedTimestamp": t0.Add(4 * time.Hour).UnixMilli(), "operationalStatus": "Expiring", "countryCode": 65, "rentalPrice": 1.5},
				map[string]any{"msisdn": "+6590000004", "operationalStatus": "Inactive"},
			}}, nil),
		eventPub(wire.EventVirtualNumberUpdate, "vnu-4", time.Time{}, map[string]any{"subAccountId": fxAccount, "virtualNumbers": "none"}, nil),
	)
	e.archiveTwice(t, vnus)

	type status struct {
		Sub, Msisdn string
		Updated     time.Time
		Event       string
		Status      string
		Country     string
		Ref, Kind   string
	}
	want := []status{
		{fxAccount, fxNumber, t0.Add(-24 * time.Hour), "vnu-1", "Active", "SG", "range-1", "SNAPSHOT"},
		{fxAccount, fxNumber, t0.Add(3 * time.Hour), "vnu-2", "Unhealthy", "SG", "range-1", "UPDATES"},
		{fxAccount, "+6590000002", t0.Add(-24 * time.Hour), "vnu-1", "Active", "SG", "range-1", "SNAPSHOT"},
		{fxAccount, "+6590000003", t0.Add(4 * time.Hour), "vnu-3", "Expiring", "65", "", "UPDATES"},
		{fxAccount, "+6590000004", t0.Add(5 * time.Hour), "vnu-3", "Inactive", "", "", "UPDATES"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := e.ch.Query(ctx, "SELECT sub_account_id, msisdn, updated_at, event_id, operational_status, country_code, reference_id, update_event_type FROM "+
		e.db+".number_status FINAL ORDER BY msisdn, updated_at")
	if err != nil {
		t.Fatal(err)
	}
	var got []status
	for rows.Next() {
		var s status
		if err := rows.Scan(&s.Sub, &s.Msisdn, &s.Updated, &s.Event, &s.Status, &s.Country, &s.Ref, &s.Kind); err != nil {
			t.Fatal(err)
		}
		s.Updated = s.Updated.UTC()
		got = append(got, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("number_status FINAL:\n got %+v\nwant %+v", got, want)
	}
	// Each update was archived twice; ClickHouse may have merged the
	// copies already (a background merge, at a time of its choosing), so
	// the table holds from one to two rows of each, and FINAL above one.
	if n := e.count(t, "SELECT count() FROM DB.number_status"); n < uint64(len(want)) || n > 2*uint64(len(want)) {
		t.Errorf("number_status holds %d rows, want one or two (before a merge) of each of %d", n, len(want))
	}
	if n := e.count(t, "SELECT count() FROM DB.call_events FINAL WHERE event_type = 'VIRTUAL_NUMBER_UPDATE'"); n != 4 {
		t.Errorf("%d number updates in call_events, want 4", n)
	}
	if n := e.count(t, "SELECT count() FROM DB.rejected_records"); n != 0 {
		t.Errorf("%d records set aside, want none", n)
	}
}

// TestInteractions: the reader's answer on a realistic masking session,
// archived twice, is exact: before and after ClickHouse merges the copies.
func TestInteractions(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	e.archiveTwice(t, maskingFixture(t0))
	h, err := OpenHistory(ClickHouseConfig{Addrs: []string{e.addr}, Database: e.db})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.Check(ctx); err != nil {
		t.Fatal(err)
	}

	at := func(d time.Duration) *time.Time { v := t0.Add(d); return &v }
	in := func(session, call string, start time.Duration) Interaction {
		return Interaction{MaskingSessionID: exampleMaskingSession, SessionID: session, CallID: call, SubAccountID: fxAccount,
			Caller: "+6511111111", Callee: fxCallee, VirtualNumber: fxNumber, StartedAt: t0.Add(start), Decision: "connect"}
	}
	s4 := in("x8-s4", "c-a4", 2*time.Hour)
	s4.EndedAt, s4.Answered, s4.TalkSeconds, s4.Outcome = at(2*time.Hour+61*time.Second), true, 61, "COMPLETED"
	s3 := in("x8-s3", "c-a3", 90*time.Minute)
	s3.Outcome = "connect"
	s2 := in("x8-s2", "c-a2", time.Hour)
	s2.EndedAt, s2.Outcome = at(time.Hour+40*time.Second), "NO_ANSWER"
	s1 := in("x8-s1", "c-a1", 0)
	s1.EndedAt, s1.Answered, s1.TalkSeconds, s1.Outcome = at(106*time.Second), true, 95, "COMPLETED"
	want := []Interaction{s4, s3, s2, s1}

	check := func(t *testing.T) {
		page, err := h.Interactions(ctx, exampleMaskingSession, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(page.Interactions, want) || page.NextCursor != nil {
			t.Fatalf("interactions:\n got %+v\nwant %+v\nnext %v", page.Interactions, want, page.NextCursor)
		}
		// Pages of any size walk the same list, newest first.
		for _, limit := range []int{1, 2, 3, 4} {
			var all []Interaction
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > len(want) {
					t.Fatalf("limit %d: more pages than interactions", limit)
				}
				p, err := h.Interactions(ctx, exampleMaskingSession, limit, cursor)
				if err != nil {
					t.Fatalf("limit %d: %v", limit, err)
				}
				if len(p.Interactions) > limit {
					t.Fatalf("limit %d: page of %d", limit, len(p.Interactions))
				}
				all = append(all, p.Interactions...)
				if p.NextCursor == nil {
					break
				}
				cursor = *p.NextCursor
			}
			if !reflect.DeepEqual(all, want) {
				t.Errorf("limit %d: pages give\n %+v\nwant %+v", limit, all, want)
			}
		}
		other, err := h.Interactions(ctx, otherMaskingSession, 0, "")
		if err != nil || len(other.Interactions) != 1 || other.Interactions[0].SessionID != "x8-s5" || !other.Interactions[0].Answered {
			t.Errorf("the other session's interactions: %+v, %v", other.Interactions, err)
		}
	}
	t.Run("copies unmerged", check)
	for _, table := range []string{"call_events", "interaction_calls"} {
		if err := e.ch.Exec(ctx, "OPTIMIZE TABLE "+e.db+"."+table+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("copies merged", check)

	// Every table the query reads, it reads by its primary key: a change
	// that makes it scan whole tables fails here.
	forced := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"force_primary_key": 1}))
	rows, err := e.ch.Query(forced, InteractionsSQL(e.db), clickhouse.Named("masking_session", exampleMaskingSession))
	if err != nil {
		t.Fatalf("the interactions query does not use the primary keys: %v", err)
	}
	rows.Close()

	// The JSON the admin API returns.
	page, err := h.Interactions(ctx, exampleMaskingSession, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(page)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"interactions":[` +
		`{"maskingSessionId":"` + exampleMaskingSession + `","sessionId":"x8-s4","callId":"c-a4","subAccountId":"acct-m","caller":"+6511111111","callee":"+6522222222","virtualNumber":"+6590000001","startedAt":"2026-11-25T10:00:00Z","endedAt":"2026-11-25T10:01:01Z","answered":true,"talkSeconds":61,"outcome":"COMPLETED","decision":"connect"},` +
		`{"maskingSessionId":"` + exampleMaskingSession + `","sessionId":"x8-s3","callId":"c-a3","subAccountId":"acct-m","caller":"+6511111111","callee":"+6522222222","virtualNumber":"+6590000001","startedAt":"2026-11-25T09:30:00Z","endedAt":null,"answered":false,"talkSeconds":0,"outcome":"connect","decision":"connect"}` +
		`],"nextCursor":"` + *page.NextCursor + `"}`
	if string(b) != wantJSON {
		t.Errorf("JSON:\n got %s\nwant %s", b, wantJSON)
	}

	// Nothing to show is an empty list, never null; a hostile id is a value.
	for _, id := range []string{"ffffffffffffffffffffffffffffffff", `'; DROP TABLE call_events; --`, `\' OR 1=1 --`} {
		p, err := h.Interactions(ctx, id, 0, "")
		if err != nil || p.Interactions == nil || len(p.Interactions) != 0 || p.NextCursor != nil {
			t.Errorf("interactions of %q: %+v, %v", id, p, err)
		}
	}
	if n := e.count(t, "SELECT count() FROM DB.call_events FINAL"); n != uint64(len(maskingFixture(t0))) {
		t.Errorf("call_events FINAL holds %d rows after the hostile ids", n)
	}
}

// TestInteractionsInvalid: what the caller got wrong wraps ErrInvalidQuery
// (the API's 400); ClickHouse not answering does not (the API's 503).
func TestInteractionsInvalid(t *testing.T) {
	if _, err := OpenHistory(ClickHouseConfig{Database: "no-such db"}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad database name: %v, want ErrInvalidConfig", err)
	}
	srv := chtest.StartServer(t)
	h, err := OpenHistory(ClickHouseConfig{Addrs: []string{srv.Addr}, Database: chtest.Database(t, srv.Addr), QueryTimeout: 5 * time.Second, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct {
		name   string
		id     string
		limit  int
		cursor string
	}{
		{"no session id", "", 0, ""},
		{"id too long", strings.Repeat("a", 129), 0, ""},
		{"negative limit", exampleMaskingSession, -1, ""},
		{"limit above the maximum", exampleMaskingSession, MaxInteractionsLimit + 1, ""},
		{"cursor not base64", exampleMaskingSession, 0, "%%%"},
		{"cursor of another kind", exampleMaskingSession, 0, encodeCursor(time.Now(), "x")[1:]},
		{"cursor with a bad time", exampleMaskingSession, 0, "aTE6eDp5"}, // "i1:x:y"
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := h.Interactions(ctx, c.id, c.limit, c.cursor); !errors.Is(err, ErrInvalidQuery) {
				t.Errorf("got %v, want ErrInvalidQuery", err)
			}
		})
	}
	// Before any archiver ran, the tables are missing: an error, not an
	// empty page, and not the caller's fault.
	if _, err := h.Interactions(ctx, exampleMaskingSession, 0, ""); err == nil || errors.Is(err, ErrInvalidQuery) {
		t.Errorf("no tables: %v, want an error that is not ErrInvalidQuery", err)
	}
	srv.Stop(t)
	if err := h.Check(ctx); err == nil {
		t.Error("Check passes with ClickHouse stopped")
	}
	if _, err := h.Interactions(ctx, exampleMaskingSession, 0, ""); err == nil || errors.Is(err, ErrInvalidQuery) {
		t.Errorf("ClickHouse down: %v, want an error that is not ErrInvalidQuery", err)
	}
}

// TestInteractionsQueryInSync: the interactions query of
// deploy/clickhouse/queries.sql is the one the reader runs.
func TestInteractionsQueryInSync(t *testing.T) {
	b, err := os.ReadFile("../deploy/clickhouse/queries.sql")
	if err != nil {
		t.Fatal(err)
	}
	flat := func(s string) string { return strings.Join(strings.Fields(strings.Join(SplitSQL(s), ";")), " ") }
	want := flat(strings.ReplaceAll(InteractionsSQL(DefaultDatabase), "@masking_session", "'"+exampleMaskingSession+"'"))
	if !strings.Contains(flat(string(b)), want) {
		t.Fatalf("deploy/clickhouse/queries.sql has no copy of the reader's interactions query (archiver/history.go), with the session '%s':\n%s", exampleMaskingSession, want)
	}
}
