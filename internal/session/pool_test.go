package session_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
)

func putNumber(t testing.TB, st *session.Store, number, sub, country, status string) {
	t.Helper()
	r := session.NumberRequest{SubAccountID: &sub, CountryCode: &country}
	if status != "" {
		r.Status = &status
	}
	if _, _, err := st.PutNumber(testCtx(t), number, r, nil); err != nil {
		t.Fatalf("PutNumber(%s): %v", number, err)
	}
}

// Allocation picks an Active number of the sub-account (and country), the
// least used first, never one where a participant already routes, and
// says when the pool is exhausted.
func TestAllocation(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	const n1, n2, n3, n4, n5 = "+6568330001", "+6568330002", "+6568330003", "+6568330004", "+4420000005"
	putNumber(t, st, n1, "acme", "SG", "")
	putNumber(t, st, n2, "acme", "SG", "")
	putNumber(t, st, n3, "acme", "SG", session.NumberUnhealthy)
	putNumber(t, st, n4, "globex", "SG", "")
	putNumber(t, st, n5, "acme", "GB", "")
	alloc := func(country string, parts ...string) (session.Session, error) {
		return st.Create(testCtx(t), session.Request{SubAccountID: "acme", CountryCode: country, Participants: parts})
	}
	s1, err := alloc("SG", pA, pB)
	if err != nil || s1.VirtualNumber != n1 || s1.SubAccountID != "acme" {
		t.Fatalf("first allocation: %+v, %v; want %s", s1, err, n1)
	}
	// n2 is now the least used.
	s2, err := alloc("SG", pC, pD)
	if err != nil || s2.VirtualNumber != n2 {
		t.Fatalf("second allocation: %v, %v; want %s", s2.VirtualNumber, err, n2)
	}
	// pA already routes on n1: a session of pA with someone new goes to n2.
	const pX, pY = "+6570000001", "+6570000002"
	if s3, err := alloc("SG", pA, pX); err != nil || s3.VirtualNumber != n2 {
		t.Fatalf("pA with pX: %v, %v; want %s", s3.VirtualNumber, err, n2)
	}
	// pA now routes on both SG numbers: none is left for pA and pY.
	if _, err := alloc("SG", pA, pY); !errors.Is(err, session.ErrPoolExhausted) {
		t.Fatalf("no SG number left for pA and pY: %v, want ErrPoolExhausted", err)
	}
	// The GB number is there for them; the Unhealthy and globex's never are.
	if s4, err := alloc("GB", pA, pY); err != nil || s4.VirtualNumber != n5 {
		t.Fatalf("GB: %v, %v; want %s", s4.VirtualNumber, err, n5)
	}
	if _, err := alloc("", pA, pY); !errors.Is(err, session.ErrPoolExhausted) {
		t.Errorf("any country, all taken: %v, want ErrPoolExhausted", err)
	}
	// Closing a session frees its number for its participants.
	if _, err := st.Update(testCtx(t), s1.ID, session.Patch{Close: true}); err != nil {
		t.Fatal(err)
	}
	if s5, err := alloc("SG", pA, pB); err != nil || s5.VirtualNumber != n1 {
		t.Errorf("after closing: %v, %v; want %s", s5.VirtualNumber, err, n1)
	}
	// Binding by hand to a number that is not Active, or is another
	// sub-account's, is refused; to a pool number, the session takes its
	// sub-account.
	if _, err := st.Create(testCtx(t), session.Request{VirtualNumber: n3, Participants: []string{pC, pB}}); !errors.Is(err, session.ErrNumberUnavailable) {
		t.Errorf("by hand on an Unhealthy number: %v, want ErrNumberUnavailable", err)
	}
	if _, err := st.Create(testCtx(t), session.Request{VirtualNumber: n4, SubAccountID: "acme", Participants: []string{pC, pB}}); !errors.Is(err, session.ErrNumberUnavailable) {
		t.Errorf("by hand on globex's number for acme: %v, want ErrNumberUnavailable", err)
	}
	if s, err := st.Create(testCtx(t), session.Request{VirtualNumber: n4, Participants: []string{pC, pB}}); err != nil || s.SubAccountID != "globex" {
		t.Errorf("by hand on globex's number: %+v, %v; want it globex's", s, err)
	}
	if s, err := st.Create(testCtx(t), session.Request{VirtualNumber: vn1, Participants: []string{pC, pB}}); err != nil || s.SubAccountID != "" {
		t.Errorf("a number outside the pool: %+v, %v; want any sub-account as before", s, err)
	}
}

// Many creates at once on two stores (two admin processes) sharing a
// small pool never bind a participant twice to one number, and every
// create either gets a number or learns the pool is exhausted.
func TestConcurrentAllocation(t *testing.T) {
	js := startJS(t)
	a := openStore(t, js, session.Config{})
	b := openStore(t, js, session.Config{})
	numbers := []string{"+6568330001", "+6568330002", "+6568330003"}
	for _, n := range numbers {
		putNumber(t, a, n, "acme", "SG", "")
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if l, _, _ := b.ListNumbers(session.NumberFilter{}, session.Page{}, time.Now()); len(l) != len(numbers) {
			return fmt.Errorf("b sees %d numbers", len(l))
		}
		return nil
	})
	// Four callers all talking to one agent: at most one session per
	// number for the agent, so 3 succeed and the others are exhausted.
	const agent = "+6599990000"
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string][]string{} // number -> session ids
	exhausted := 0
	for i := range 12 {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Go(func() {
			s, err := st.Create(testCtx(t), session.Request{SubAccountID: "acme", Participants: []string{fmt.Sprintf("+65111100%02d", i), agent}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, session.ErrPoolExhausted):
				exhausted++
			case err != nil:
				t.Errorf("create %d: %v", i, err)
			default:
				got[s.VirtualNumber] = append(got[s.VirtualNumber], s.ID)
			}
		})
	}
	wg.Wait()
	if len(got) != len(numbers) || exhausted != 12-len(numbers) {
		t.Errorf("allocated %v, %d exhausted; want each of %d numbers once and the rest exhausted", got, exhausted, len(numbers))
	}
	for n, ids := range got {
		if len(ids) != 1 {
			t.Errorf("%s bound the agent %d times: %v", n, len(ids), ids)
		}
	}
	// Both stores agree on who routes where.
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for n, ids := range got {
			for i, st := range []*session.Store{a, b} {
				if s, ok := st.Lookup(n, agent, "acme", time.Now()); !ok || s.ID != ids[0] {
					return fmt.Errorf("store %d: Lookup(%s, agent) = %v, %v; want %s", i, n, s, ok, ids[0])
				}
			}
		}
		return nil
	})
}

// 8x8's pool updates fill and correct the pool: no admin call needed,
// older updates never overwrite newer ones, a snapshot deactivates the
// numbers missing from it, and applying the same update twice changes
// nothing.
func TestApplyPoolUpdate(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	snap := session.PoolUpdate{SubAccountID: "acme", UpdateEventType: session.PoolSnapshot, VirtualNumbers: []session.NumberUpdate{
		{MSISDN: "+6568330001", UpdatedTimestamp: t0, CountryCode: "SG", OperationalStatus: session.NumberActive, ReferenceID: "range-1"},
		{MSISDN: "6568330002", UpdatedTimestamp: t0, CountryCode: "SG", OperationalStatus: session.NumberUnhealthy},
	}}
	changes, err := st.ApplyPoolUpdate(ctx, snap, t0)
	if err != nil || len(changes) != 2 || changes[0].Before != nil {
		t.Fatalf("first snapshot: %d changes, %v", len(changes), err)
	}
	n1, err := st.GetNumber(ctx, "+6568330001", nil)
	if err != nil || n1.SubAccountID != "acme" || n1.Status != session.NumberActive || n1.CountryCode != "SG" || n1.ReferenceID != "range-1" || !n1.StatusAt.Equal(t0) {
		t.Fatalf("number from the snapshot: %+v, %v", n1, err)
	}
	// The same again: nothing.
	if changes, err = st.ApplyPoolUpdate(ctx, snap, t0); err != nil || len(changes) != 0 {
		t.Errorf("snapshot applied twice: %d changes, %v", len(changes), err)
	}
	// A newer update, then an older one arriving late.
	newer := session.PoolUpdate{SubAccountID: "acme", UpdateEventType: session.PoolUpdates, VirtualNumbers: []session.NumberUpdate{
		{MSISDN: "+6568330001", UpdatedTimestamp: t0.Add(2 * time.Minute), OperationalStatus: session.NumberExpiring},
	}}
	older := session.PoolUpdate{SubAccountID: "acme", UpdateEventType: session.PoolUpdates, VirtualNumbers: []session.NumberUpdate{
		{MSISDN: "+6568330001", UpdatedTimestamp: t0.Add(time.Minute), OperationalStatus: session.NumberActive},
	}}
	if changes, err = st.ApplyPoolUpdate(ctx, newer, t0); err != nil || len(changes) != 1 || changes[0].After.Status != session.NumberExpiring || changes[0].Before.Status != session.NumberActive {
		t.Fatalf("newer update: %+v, %v", changes, err)
	}
	if changes, err = st.ApplyPoolUpdate(ctx, older, t0); err != nil || len(changes) != 0 {
		t.Errorf("older update after a newer one: %d changes, %v", len(changes), err)
	}
	if n, _ := st.GetNumber(ctx, "+6568330001", nil); n.Status != session.NumberExpiring {
		t.Errorf("status after the older update: %s, want Expiring", n.Status)
	}
	// A number registered by hand, missing from the next snapshot, becomes
	// Inactive; a number of another sub-account is left alone.
	putNumber(t, st, "+6568330003", "acme", "SG", "")
	putNumber(t, st, "+6568330009", "globex", "SG", "")
	snap2 := session.PoolUpdate{SubAccountID: "acme", UpdateEventType: session.PoolSnapshot, VirtualNumbers: []session.NumberUpdate{
		{MSISDN: "+6568330001", UpdatedTimestamp: t0.Add(3 * time.Minute), OperationalStatus: session.NumberActive},
	}}
	changes, err = st.ApplyPoolUpdate(ctx, snap2, t0.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"+6568330001": session.NumberActive, "+6568330002": session.NumberInactive, "+6568330003": session.NumberInactive, "+6568330009": session.NumberActive}
	for number, status := range want {
		if n, err := st.GetNumber(ctx, number, nil); err != nil || n.Status != status {
			t.Errorf("%s after the second snapshot: %s, %v; want %s", number, n.Status, err, status)
		}
	}
	if len(changes) != 3 {
		t.Errorf("second snapshot: %d changes, want 3", len(changes))
	}
	// An older snapshot does not deactivate what a newer update brought.
	late := session.PoolUpdate{SubAccountID: "acme", UpdateEventType: session.PoolSnapshot, VirtualNumbers: []session.NumberUpdate{
		{MSISDN: "+6568330002", UpdatedTimestamp: t0, OperationalStatus: session.NumberActive},
	}}
	if changes, err = st.ApplyPoolUpdate(ctx, late, t0); err != nil || len(changes) != 0 {
		t.Errorf("a late, older snapshot: %+v, %v; want no change", changes, err)
	}
	// A bad number is reported, the good ones applied.
	mixed := session.PoolUpdate{SubAccountID: "acme", UpdateEventType: session.PoolUpdates, VirtualNumbers: []session.NumberUpdate{
		{MSISDN: "not-a-number", UpdatedTimestamp: t0.Add(time.Hour)},
		{MSISDN: "+6568330004", UpdatedTimestamp: t0.Add(time.Hour), OperationalStatus: session.NumberActive},
	}}
	if changes, err = st.ApplyPoolUpdate(ctx, mixed, t0); !errors.Is(err, session.ErrInvalid) || len(changes) != 1 {
		t.Errorf("mixed update: %d changes, %v", len(changes), err)
	}
	if _, err := st.ApplyPoolUpdate(ctx, session.PoolUpdate{UpdateEventType: session.PoolSnapshot}, t0); !errors.Is(err, session.ErrInvalid) {
		t.Errorf("an update without sub-account: %v, want ErrInvalid", err)
	}
}

// Numbers are registered, updated, listed and removed; removal waits for
// open sessions unless forced, which closes them.
func TestNumbers(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	acme := "acme"
	v, before, err := st.PutNumber(ctx, "+65 6833 0001", session.NumberRequest{SubAccountID: &acme}, nil)
	if err != nil || before != nil || v.Number.Number != "+6568330001" || v.Status != session.NumberActive {
		t.Fatalf("register: %+v, before %v, %v", v, before, err)
	}
	policy := &session.Policy{Action: session.PolicyForward, Destination: "+65 6000 0000", Say: &wire.Say{Text: "Connecting you to our team."}}
	v, before, err = st.PutNumber(ctx, "+6568330001", session.NumberRequest{OutOfSession: policy}, nil)
	if err != nil || before == nil || v.OutOfSession == nil || v.OutOfSession.Destination != "+6560000000" || v.OutOfSession.Say.VoiceProfile == "" {
		t.Fatalf("update: %+v, before %v, %v", v, before, err)
	}
	for _, bad := range []session.NumberRequest{
		{OutOfSession: &session.Policy{Action: "transfer"}},
		{OutOfSession: &session.Policy{Action: session.PolicyForward}},
		{OutOfSession: &session.Policy{Action: session.PolicyHangup, Destination: "+6560000000"}},
		{Status: ptr("Sleeping")},
		{CountryCode: ptr("sg")},
	} {
		if _, _, err := st.PutNumber(ctx, "+6568330001", bad, nil); !errors.Is(err, session.ErrInvalid) {
			t.Errorf("PutNumber(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, _, err := st.PutNumber(ctx, "+6568330002", session.NumberRequest{}, nil); !errors.Is(err, session.ErrInvalid) {
		t.Errorf("a new number without sub-account: %v, want ErrInvalid", err)
	}
	// Scope: another tenant neither sees nor changes it.
	if _, err := st.GetNumber(ctx, "+6568330001", session.Scope{"globex"}); !errors.Is(err, session.ErrNumberNotFound) {
		t.Errorf("GetNumber out of scope: %v", err)
	}
	if _, _, err := st.PutNumber(ctx, "+6568330001", session.NumberRequest{CountryCode: ptr("SG")}, session.Scope{"globex"}); !errors.Is(err, session.ErrNumberNotFound) {
		t.Errorf("PutNumber out of scope: %v", err)
	}
	// Open sessions hold it.
	s := mustCreate(t, st, session.Request{VirtualNumber: "+6568330001", Participants: []string{pA, pB}})
	if v, _ := st.GetNumber(ctx, "+6568330001", nil); v.OpenSessions != 1 {
		t.Errorf("openSessions = %d", v.OpenSessions)
	}
	globex := "globex"
	if _, _, err := st.PutNumber(ctx, "+6568330001", session.NumberRequest{SubAccountID: &globex}, nil); !errors.Is(err, session.ErrNumberInUse) {
		t.Errorf("moving a number with open sessions: %v, want ErrNumberInUse", err)
	}
	if _, _, err := st.DeleteNumber(ctx, "+6568330001", false, nil); !errors.Is(err, session.ErrNumberInUse) {
		t.Errorf("DeleteNumber with open sessions: %v, want ErrNumberInUse", err)
	}
	n, closed, err := st.DeleteNumber(ctx, "+6568330001", true, nil)
	if err != nil || n.Number != "+6568330001" || len(closed) != 1 || closed[0].ID != s.ID || closed[0].Status != session.StatusClosed {
		t.Fatalf("forced DeleteNumber: %+v, %+v, %v", n, closed, err)
	}
	if _, err := st.GetNumber(ctx, "+6568330001", nil); !errors.Is(err, session.ErrNumberNotFound) {
		t.Errorf("GetNumber after delete: %v", err)
	}
	if err := lookupIs(st, "+6568330001", pA, ""); err != nil {
		t.Error(err)
	}
}

// The out-of-session policy is the number's, else its sub-account's (the
// number's sub-account, or the call's for numbers outside the pool), else
// the default.
func TestOutOfSessionPolicy(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	other := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	acme := "acme"
	numberPolicy := &session.Policy{Action: session.PolicyForward, Destination: "+6560000001"}
	accountPolicy := &session.Policy{Action: session.PolicyHangup, Say: &wire.Say{Text: "This number is no longer in use."}}
	if _, _, err := st.PutNumber(ctx, "+6568330001", session.NumberRequest{SubAccountID: &acme, OutOfSession: numberPolicy}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.PutNumber(ctx, "+6568330002", session.NumberRequest{SubAccountID: &acme}, nil); err != nil {
		t.Fatal(err)
	}
	if _, created, err := st.PutSubAccount(ctx, "acme", accountPolicy, nil); err != nil || !created {
		t.Fatalf("PutSubAccount: %v, created %v", err, created)
	}
	if _, _, err := st.PutSubAccount(ctx, "acme", &session.Policy{Action: "ring"}, nil); !errors.Is(err, session.ErrInvalid) {
		t.Errorf("bad sub-account policy: %v", err)
	}
	if _, _, err := st.PutSubAccount(ctx, "acme", nil, session.Scope{"globex"}); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("PutSubAccount out of scope: %v", err)
	}
	tests := []struct {
		virtual, sub string
		action       string
		source       string
	}{
		{"+6568330001", "acme", session.PolicyForward, wire.PolicyNumber},
		{"+6568330002", "acme", session.PolicyHangup, wire.PolicySubAccount},
		{"+6568330002", "globex", session.PolicyHangup, wire.PolicySubAccount}, // the number's sub-account counts
		{vn1, "acme", session.PolicyHangup, wire.PolicySubAccount},             // outside the pool: the call's
		{vn1, "globex", "", wire.PolicyDefault},
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, tt := range tests {
			p, source := other.OutOfSession(tt.virtual, tt.sub)
			action := ""
			if p != nil {
				action = p.Action
			}
			if action != tt.action || source != tt.source {
				return fmt.Errorf("OutOfSession(%s, %s) = %q from %s, want %q from %s", tt.virtual, tt.sub, action, source, tt.action, tt.source)
			}
		}
		return nil
	})
	if a, err := st.GetSubAccount(ctx, "acme", nil); err != nil || a.OutOfSession == nil || a.OutOfSession.Say.Text != accountPolicy.Say.Text {
		t.Errorf("GetSubAccount: %+v, %v", a, err)
	}
	if a, err := st.GetSubAccount(ctx, "never-set", nil); err != nil || a.OutOfSession != nil || a.SubAccountID != "never-set" {
		t.Errorf("GetSubAccount of one never set: %+v, %v", a, err)
	}
	// Removing the sub-account's policy falls back to the default.
	if _, _, err := st.PutSubAccount(ctx, "acme", nil, nil); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if p, source := other.OutOfSession("+6568330002", "acme"); p != nil || source != wire.PolicyDefault {
			return fmt.Errorf("after removing: %v from %s", p, source)
		}
		return nil
	})
}
