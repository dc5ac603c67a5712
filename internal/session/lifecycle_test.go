package session_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
)

func ptr[T any](v T) *T { return &v }

// Every create field is validated and named when wrong.
func TestCreateValidation(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	future := time.Now().Add(time.Hour)
	past := time.Now().Add(-time.Minute)
	tests := []struct {
		name string
		req  session.Request
		want string // the field named; "" accepts
	}{
		{"no number and no sub-account", session.Request{Participants: []string{pA, pB}}, "virtualNumber"},
		{"ttl and expiresAt", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLSeconds: 60, ExpiresAt: &future}, "expiresAt"},
		{"expiresAt in the past", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, ExpiresAt: &past}, "expiresAt"},
		{"bad ttl mode", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLMode: "sliding"}, "ttlMode"},
		{"idle without ttl", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLMode: session.TTLIdle}, "ttlMode"},
		{"idle with expiresAt", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLMode: session.TTLIdle, ExpiresAt: &future}, "expiresAt"},
		{"negative maxCalls", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, MaxCalls: -1}, "maxCalls"},
		{"ref too long", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, Ref: strings.Repeat("r", 129)}, "ref"},
		{"ref with a newline", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, Ref: "a\nb"}, "ref"},
		{"bad sub-account", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, SubAccountID: "has space"}, "subAccountId"},
		{"country with a number", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, CountryCode: "SG"}, "countryCode"},
		{"bad country", session.Request{SubAccountID: "acme", Participants: []string{pA, pB}, CountryCode: "sgp"}, "countryCode"},
		{"all good", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLMode: session.TTLIdle, TTLSeconds: 60, MaxCalls: 2, Ref: "order-7", SubAccountID: "acme"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := st.Create(testCtx(t), tt.req)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				if s.Status != session.StatusOpen || s.ClosedReason != nil || s.CallCount != 0 || s.Ref != tt.req.Ref || s.TTLMode != session.TTLIdle {
					t.Errorf("created %+v", s)
				}
				return
			}
			if !errors.Is(err, session.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Create = %v, want ErrInvalid naming %s", err, tt.want)
			}
		})
	}
}

// A session's expiry can be extended and shortened, its settings changed,
// and it can be closed; a closed session never reopens and no longer
// routes, while staying readable.
func TestUpdateLifecycle(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	other := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	s := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLSeconds: 60,
		Greeting: &wire.Say{Text: "Hello"}})

	// Extend: from creation, 2 hours.
	up, err := st.Update(ctx, s.ID, session.Patch{TTLSeconds: ptr(int64(7200))})
	if err != nil {
		t.Fatal(err)
	}
	if want := s.CreatedAt.Add(2 * time.Hour); up.ExpiresAt == nil || !up.ExpiresAt.Equal(want) || up.TTLSeconds != 7200 {
		t.Errorf("extended: expiresAt %v ttl %d, want %v", up.ExpiresAt, up.TTLSeconds, want)
	}
	// A fixed expiry instead, and other fields.
	at := time.Now().Add(30 * time.Minute).Truncate(time.Second).UTC()
	up, err = st.Update(ctx, s.ID, session.Patch{ExpiresAt: &at, ClearGreeting: true, CallRecording: ptr(true), Ref: ptr("ticket-9"), MaxCalls: ptr(int64(5))})
	if err != nil {
		t.Fatal(err)
	}
	if !up.ExpiresAt.Equal(at) || up.TTLSeconds != 0 || up.Greeting != nil || !up.CallRecording || up.Ref != "ticket-9" || up.MaxCalls != 5 || !up.UpdatedAt.After(s.UpdatedAt) {
		t.Errorf("updated %+v", up)
	}
	// Both at once is refused, and nothing changes.
	if _, err := st.Update(ctx, s.ID, session.Patch{ExpiresAt: &at, TTLSeconds: ptr(int64(10))}); !errors.Is(err, session.ErrInvalid) {
		t.Errorf("ttl and expiresAt: %v, want ErrInvalid", err)
	}
	if got, _ := st.Get(ctx, s.ID); !got.ExpiresAt.Equal(at) {
		t.Errorf("a refused update changed the session: %+v", got)
	}
	// Removing the expiry.
	if up, err = st.Update(ctx, s.ID, session.Patch{TTLSeconds: ptr(int64(0))}); err != nil || up.ExpiresAt != nil {
		t.Errorf("no expiry: %+v, %v", up, err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error { return lookupIs(other, vn1, pA, s.ID) })

	// Close.
	closed, err := st.Update(ctx, s.ID, session.Patch{Close: true})
	if err != nil {
		t.Fatal(err)
	}
	if closed.Status != session.StatusClosed || closed.ClosedReason == nil || *closed.ClosedReason != session.ClosedByClient || closed.ClosedAt == nil {
		t.Errorf("closed %+v", closed)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, x := range []*session.Store{st, other} {
			if err := lookupIs(x, vn1, pA, ""); err != nil {
				return err
			}
		}
		return nil
	})
	if got, err := st.Get(ctx, s.ID); err != nil || got.Status != session.StatusClosed {
		t.Errorf("Get of a closed session = %+v, %v; want it readable, closed", got, err)
	}
	if _, err := st.Update(ctx, s.ID, session.Patch{Ref: ptr("again")}); !errors.Is(err, session.ErrClosed) {
		t.Errorf("Update of a closed session = %v, want ErrClosed", err)
	}
	// Its participants are free for a new session on the number.
	mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pC}})
	// Listed as closed, not as open.
	closedList, _, err := st.ListSessions(session.SessionFilter{Status: session.StatusClosed}, session.Page{}, time.Now())
	if err != nil || len(closedList) != 1 || closedList[0].ID != s.ID {
		t.Errorf("closed sessions = %+v, %v", closedList, err)
	}
	// Delete removes it at once.
	if _, err := st.Delete(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
}

// Shortening the expiry into the past closes the session by expiry.
func TestShortenIntoThePast(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	s := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLSeconds: 3600})
	time.Sleep(1100 * time.Millisecond) // so that one second from creation is past
	up, err := st.Update(testCtx(t), s.ID, session.Patch{TTLSeconds: ptr(int64(1))})
	if err != nil {
		t.Fatal(err)
	}
	if up.Status != session.StatusClosed || *up.ClosedReason != session.ClosedExpired {
		t.Errorf("shortened into the past: %+v", up)
	}
	if err := lookupIs(st, vn1, pA, ""); err != nil {
		t.Error(err)
	}
}

// Calls are counted after the answer: count and last call; an idle session
// expires ttl after its last call; maxCalls closes the session.
func TestRecordCall(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	other := openStore(t, js, session.Config{})
	ctx := testCtx(t)

	idle := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLMode: session.TTLIdle, TTLSeconds: 600})
	at := time.Now().Add(time.Minute).UTC()
	got, err := st.RecordCall(ctx, idle.ID, at)
	if err != nil {
		t.Fatal(err)
	}
	if got.CallCount != 1 || !got.LastCallAt.Equal(at) || !got.ExpiresAt.Equal(at.Add(10*time.Minute)) {
		t.Errorf("after a call: count %d last %v expires %v", got.CallCount, got.LastCallAt, got.ExpiresAt)
	}
	// A late, older call counts but moves nothing back.
	got, err = st.RecordCall(ctx, idle.ID, at.Add(-30*time.Second))
	if err != nil || got.CallCount != 2 || !got.LastCallAt.Equal(at) || !got.ExpiresAt.Equal(at.Add(10*time.Minute)) {
		t.Errorf("after an older call: %+v, %v", got, err)
	}

	limited := mustCreate(t, st, session.Request{VirtualNumber: vn2, Participants: []string{pA, pB}, MaxCalls: 2, TTLSeconds: 3600})
	for i := range 2 {
		got, err = st.RecordCall(ctx, limited.ID, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if open := got.Status == session.StatusOpen; open != (i == 0) {
			t.Errorf("after call %d: status %s", i+1, got.Status)
		}
	}
	if got.ClosedReason == nil || *got.ClosedReason != session.ClosedMaxCalls || got.ExpiresAt == nil {
		t.Errorf("after maxCalls: %+v", got)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		return lookupIs(other, vn2, pA, "")
	})
	// A call decided just before the close still counts; the session
	// stays closed.
	if got, err = st.RecordCall(ctx, limited.ID, time.Now()); err != nil || got.CallCount != 3 || got.Status != session.StatusClosed {
		t.Errorf("a call after the close: %+v, %v", got, err)
	}
	// Raising maxCalls does not reopen it.
	if _, err := st.Update(ctx, limited.ID, session.Patch{MaxCalls: ptr(int64(10))}); !errors.Is(err, session.ErrClosed) {
		t.Errorf("raise maxCalls of a closed session = %v, want ErrClosed", err)
	}
	// Lowering maxCalls to what an open session has done closes it.
	s3 := mustCreate(t, st, session.Request{VirtualNumber: vn2, Participants: []string{pC, pD}})
	if _, err := st.RecordCall(ctx, s3.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, err = st.Update(ctx, s3.ID, session.Patch{MaxCalls: ptr(int64(1))}); err != nil || got.Status != session.StatusClosed || *got.ClosedReason != session.ClosedMaxCalls {
		t.Errorf("maxCalls lowered to the count: %+v, %v", got, err)
	}
}

// A rewritten session keeps an expiry in the bucket: when an idle session
// is extended by calls and then left, JetStream still removes its keys
// (deadline = expiry + history), with no sweeper of ours.
func TestRewrittenKeysStillExpire(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{History: time.Second})
	ctx := testCtx(t)
	kv := bucket(t, js, session.DefaultBucket)
	s := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLMode: session.TTLIdle, TTLSeconds: 1})
	got, err := st.RecordCall(ctx, s.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !got.ExpiresAt.After(*s.ExpiresAt) {
		t.Fatalf("the call did not move the expiry: %v then %v", s.ExpiresAt, got.ExpiresAt)
	}
	natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		for _, k := range []string{"s." + s.ID, routeKey(vn1, pA), routeKey(vn1, pB)} {
			if err := keyGone(ctx, kv, k); err != nil {
				return err
			}
		}
		return nil
	})
	if time.Now().Before(got.ExpiresAt.Add(time.Second)) {
		t.Errorf("keys gone before expiry + history")
	}
}

// Lists filter by every field, page with a cursor that visits each
// session once, and respect a scope.
func TestListSessions(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	var all []session.Session
	for i := range 7 {
		req := session.Request{VirtualNumber: vn1, Participants: []string{fmt.Sprintf("+65100000%02d", i), pD}, Ref: fmt.Sprintf("r%d", i%2)}
		if i%3 == 0 {
			req.SubAccountID = "acme"
		}
		if i == 0 {
			req.Participants[1] = pC
		} else {
			req.VirtualNumber = fmt.Sprintf("+65980000%02d", i)
		}
		all = append(all, mustCreate(t, st, req))
	}
	if _, err := st.Update(testCtx(t), all[6].ID, session.Patch{Close: true}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	count := func(f session.SessionFilter) int {
		t.Helper()
		n, cursor := 0, ""
		seen := map[string]bool{}
		for {
			page, next, err := st.ListSessions(f, session.Page{Limit: 2, Cursor: cursor}, now)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range page {
				if seen[s.ID] {
					t.Fatalf("%s listed twice", s.ID)
				}
				seen[s.ID] = true
			}
			n += len(page)
			if next == "" {
				return n
			}
			cursor = next
		}
	}
	tests := []struct {
		name string
		f    session.SessionFilter
		want int
	}{
		{"open", session.SessionFilter{}, 6},
		{"all", session.SessionFilter{Status: "all"}, 7},
		{"closed", session.SessionFilter{Status: session.StatusClosed}, 1},
		{"sub-account", session.SessionFilter{SubAccountID: "acme", Status: "all"}, 3},
		{"scope", session.SessionFilter{Scope: session.Scope{"acme"}, Status: "all"}, 3},
		{"scope of another", session.SessionFilter{Scope: session.Scope{"globex"}, Status: "all"}, 0},
		{"number", session.SessionFilter{VirtualNumber: vn1}, 1},
		{"participant", session.SessionFilter{Participant: pD, Status: "all"}, 6},
		{"ref", session.SessionFilter{Ref: "r1", Status: "all"}, 3},
		{"ref and participant", session.SessionFilter{Ref: "r0", Participant: pC}, 1},
	}
	for _, tt := range tests {
		if got := count(tt.f); got != tt.want {
			t.Errorf("%s: %d sessions, want %d", tt.name, got, tt.want)
		}
	}
	for _, bad := range []session.Page{{Limit: -1}, {Limit: 1001}, {Cursor: "!!"}} {
		if _, _, err := st.ListSessions(session.SessionFilter{}, bad, now); !errors.Is(err, session.ErrInvalid) {
			t.Errorf("page %+v: %v, want ErrInvalid", bad, err)
		}
	}
	if _, _, err := st.ListSessions(session.SessionFilter{Status: "maybe"}, session.Page{}, now); !errors.Is(err, session.ErrInvalid) {
		t.Errorf("status maybe: %v, want ErrInvalid", err)
	}
}

// A session with a sub-account routes only calls of that sub-account; one
// without routes any.
func TestLookupBySubAccount(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	s := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, SubAccountID: "acme"})
	any := mustCreate(t, st, session.Request{VirtualNumber: vn2, Participants: []string{pA, pB}})
	now := time.Now()
	for _, tt := range []struct {
		virtual, sub string
		want         string
	}{
		{vn1, "acme", s.ID}, {vn1, "globex", ""}, {vn1, "", ""},
		{vn2, "acme", any.ID}, {vn2, "globex", any.ID}, {vn2, "", any.ID},
	} {
		got, ok := st.Lookup(tt.virtual, pA, tt.sub, now)
		if (tt.want == "") == ok || (ok && got.ID != tt.want) {
			t.Errorf("Lookup(%s, %q) = %v, %v; want %q", tt.virtual, tt.sub, got, ok, tt.want)
		}
	}
}
