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

// testFlow is a valid flow: a menu whose option 1 says text and hangs up.
func testFlow(id, sub, text string) session.Flow {
	return session.Flow{ID: id, SubAccountID: sub, Start: "menu", Steps: map[string]session.Step{
		"menu": {Menu: &session.MenuStep{Prompt: session.Prompt{Say: &wire.Say{Text: "Press 1"}}, Options: map[string]string{"1": "bye"}}},
		"bye":  {Hangup: &session.HangupStep{Prompt: session.Prompt{Say: &wire.Say{Text: text}}}},
	}}
}

func mustPutFlow(t testing.TB, st *session.Store, f session.Flow, scope session.Scope) session.Flow {
	t.Helper()
	got, _, err := st.PutFlow(testCtx(t), f, scope)
	if err != nil {
		t.Fatalf("PutFlow(%s): %v", f.ID, err)
	}
	return got
}

// goodbye is the text of a flow version (its hangup's say).
func goodbye(f *session.Flow) string { return f.Steps["bye"].Hangup.Say.Text }

// TestFlowVersions: every PUT is a new version (1, then +1); the version
// replaced stays readable through FlowVersion, in this store and in
// another, for the retention, and is gone after it; a PUT naming a
// version that is not the current one is refused.
func TestFlowVersions(t *testing.T) {
	js := startJS(t)
	const retention = 2 * time.Second
	st := openStore(t, js, session.Config{FlowRetention: retention})
	other := openStore(t, js, session.Config{FlowRetention: retention})
	ctx := testCtx(t)
	kv := bucket(t, js, session.DefaultBucket)

	steps := []struct {
		text        string
		version     uint64 // asked for; 0: none
		wantVersion uint64
		wantCreated bool
		wantErr     error
	}{
		{"one", 0, 1, true, nil},
		{"two", 0, 2, false, nil},
		{"stale", 1, 0, false, session.ErrFlowChanged},
		{"three", 2, 3, false, nil},
	}
	for _, s := range steps {
		f := testFlow("menu", "acme", s.text)
		f.Version = s.version
		got, created, err := st.PutFlow(ctx, f, nil)
		if !errors.Is(err, s.wantErr) || (err == nil && (got.Version != s.wantVersion || created != s.wantCreated || goodbye(&got) != s.text)) {
			t.Fatalf("PutFlow(%s): version %d created %v, %v; want version %d created %v, %v", s.text, got.Version, created, err, s.wantVersion, s.wantCreated, s.wantErr)
		}
		if err == nil && (got.UpdatedAt.IsZero() || time.Since(got.UpdatedAt) > time.Minute) {
			t.Errorf("updatedAt %v", got.UpdatedAt)
		}
	}
	if _, _, err := st.PutFlow(ctx, session.Flow{ID: "menu", Start: "nowhere"}, nil); !errors.Is(err, session.ErrInvalid) {
		t.Errorf("invalid PutFlow = %v", err)
	}
	if g, err := st.GetFlow(ctx, "menu", nil); err != nil || g.Version != 3 || goodbye(&g) != "three" {
		t.Errorf("GetFlow = version %d, %v", g.Version, err)
	}
	// Every version is readable from both indexes; the current one is 3.
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, x := range []*session.Store{st, other} {
			for v, text := range map[uint64]string{1: "one", 2: "two", 3: "three"} {
				f, ok := x.FlowVersion("menu", v)
				if !ok || f.Version != v || goodbye(f) != text {
					return fmt.Errorf("FlowVersion(menu, %d) = %v, %v", v, f, ok)
				}
			}
			if f, ok := x.CurrentFlow("menu"); !ok || f.Version != 3 {
				return fmt.Errorf("CurrentFlow = %v, %v", f, ok)
			}
		}
		return nil
	})
	if _, ok := st.FlowVersion("menu", 4); ok {
		t.Error("FlowVersion of a version never stored")
	}
	// After the retention, JetStream forgets the replaced versions and the
	// indexes follow; the current version stays.
	natstest.CheckFor(t, retention+10*time.Second, 50*time.Millisecond, func() error {
		for _, key := range []string{"fv.menu.1", "fv.menu.2"} {
			if err := keyGone(ctx, kv, key); err != nil {
				return err
			}
		}
		for _, x := range []*session.Store{st, other} {
			for _, v := range []uint64{1, 2} {
				if _, ok := x.FlowVersion("menu", v); ok {
					return fmt.Errorf("version %d still readable", v)
				}
			}
		}
		return nil
	})
	for _, x := range []*session.Store{st, other} {
		if f, ok := x.FlowVersion("menu", 3); !ok || goodbye(f) != "three" {
			t.Errorf("current version after the retention: %v, %v", f, ok)
		}
	}
}

// TestFlowWatch: a flow stored through one store reaches another's index
// within a second, and so does every new version.
func TestFlowWatch(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	other := openStore(t, js, session.Config{})
	for i, text := range []string{"one", "two", "three"} {
		mustPutFlow(t, st, testFlow("menu", "", text), nil)
		natstest.CheckFor(t, time.Second, 5*time.Millisecond, func() error {
			if f, ok := other.CurrentFlow("menu"); !ok || f.Version != uint64(i+1) || goodbye(f) != text {
				return fmt.Errorf("the other store has %v, %v", f, ok)
			}
			return nil
		})
	}
	// A store opened later loads the flows with its initial snapshot.
	late := openStore(t, js, session.Config{})
	for v, text := range map[uint64]string{1: "one", 2: "two", 3: "three"} {
		if f, ok := late.FlowVersion("menu", v); !ok || goodbye(f) != text {
			t.Errorf("late store: version %d = %v, %v", v, f, ok)
		}
	}
}

// TestFlowScope: a flow of a sub-account is seen and changed only
// within a scope covering it; a limited scope sees no flow without a
// sub-account; lists page and filter.
func TestFlowScope(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	acme, globex := session.Scope{"acme"}, session.Scope{"globex"}
	mustPutFlow(t, st, testFlow("acme-menu", "acme", "a"), acme)
	mustPutFlow(t, st, testFlow("globex-menu", "globex", "g"), nil)
	mustPutFlow(t, st, testFlow("shared", "", "s"), nil)
	tests := []struct {
		name  string
		f     session.Flow
		scope session.Scope
		want  error
	}{
		{"another sub-account's flow", testFlow("globex-menu", "acme", "x"), acme, session.ErrFlowNotFound},
		{"into another sub-account", testFlow("new", "globex", "x"), acme, session.ErrInvalid},
		{"without a sub-account, limited", testFlow("new", "", "x"), acme, session.ErrInvalid},
		{"a flow without a sub-account, limited", testFlow("shared", "acme", "x"), acme, session.ErrFlowNotFound},
		{"own", testFlow("acme-menu", "acme", "a2"), acme, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := st.PutFlow(ctx, tt.f, tt.scope); !errors.Is(err, tt.want) {
				t.Errorf("PutFlow = %v, want %v", err, tt.want)
			}
		})
	}
	for _, get := range []struct {
		id    string
		scope session.Scope
		ok    bool
	}{{"acme-menu", acme, true}, {"globex-menu", acme, false}, {"shared", acme, false}, {"shared", nil, true}, {"globex-menu", globex, true}, {"no-such", nil, false}, {"bad id!", nil, false}} {
		_, err := st.GetFlow(ctx, get.id, get.scope)
		if (err == nil) != get.ok || (err != nil && !errors.Is(err, session.ErrFlowNotFound)) {
			t.Errorf("GetFlow(%s, %v) = %v, want found %v", get.id, get.scope, err, get.ok)
		}
	}
	lists := []struct {
		f    session.FlowFilter
		want string
	}{
		{session.FlowFilter{}, "acme-menu globex-menu shared"},
		{session.FlowFilter{Scope: acme}, "acme-menu"},
		{session.FlowFilter{Scope: session.Scope{"acme", "globex"}}, "acme-menu globex-menu"},
		{session.FlowFilter{SubAccountID: "globex"}, "globex-menu"},
		{session.FlowFilter{Scope: acme, SubAccountID: "globex"}, ""},
	}
	for _, l := range lists {
		var ids []string
		p := session.Page{Limit: 1}
		for {
			page, next, err := st.ListFlows(l.f, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range page {
				ids = append(ids, f.ID)
			}
			if next == "" {
				break
			}
			p.Cursor = next
		}
		if got := strings.Join(ids, " "); got != l.want {
			t.Errorf("ListFlows(%+v) = %q, want %q", l.f, got, l.want)
		}
	}
	if _, _, err := st.ListFlows(session.FlowFilter{}, session.Page{Cursor: "!"}); !errors.Is(err, session.ErrInvalid) {
		t.Errorf("bad cursor: %v", err)
	}
}

// TestFlowAttach: a flow is attached to numbers and made sub-accounts'
// default; FlowFor takes the number's, else its sub-account's (the
// number's sub-account when it is in the pool, else the call's), in
// every store; a flow that does not exist, or is another sub-account's,
// cannot be attached; "" detaches; other settings are kept.
func TestFlowAttach(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	other := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	acme, globex, none := "acme", "globex", ""
	mustPutFlow(t, st, testFlow("acme-menu", "acme", "a"), nil)
	mustPutFlow(t, st, testFlow("acme-default", "acme", "d"), nil)
	mustPutFlow(t, st, testFlow("globex-menu", "globex", "g"), nil)
	mustPutFlow(t, st, testFlow("shared", "", "s"), nil)
	const withFlow, withoutFlow, globexNumber = "+6568330001", "+6568330002", "+6568330003"
	policy := &session.Policy{Action: session.PolicyHangup}
	flowOf := func(id string) *string { return &id }
	if _, _, err := st.PutNumber(ctx, withFlow, session.NumberRequest{SubAccountID: &acme, Flow: flowOf("acme-menu"), OutOfSession: policy}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.PutNumber(ctx, withoutFlow, session.NumberRequest{SubAccountID: &acme}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.PutNumber(ctx, globexNumber, session.NumberRequest{SubAccountID: &globex, Flow: flowOf("shared")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateSubAccount(ctx, "acme", session.SubAccountRequest{DefaultFlow: flowOf("acme-default")}, session.Scope{"acme"}); err != nil {
		t.Fatal(err)
	}
	// A policy set later keeps the default flow.
	if _, _, err := st.PutSubAccount(ctx, "acme", policy, nil); err != nil {
		t.Fatal(err)
	}
	if a, err := st.GetSubAccount(ctx, "acme", nil); err != nil || a.DefaultFlow != "acme-default" || a.OutOfSession == nil {
		t.Errorf("sub-account %+v, %v", a, err)
	}
	// Refused attachments name the field and change nothing.
	refused := []struct {
		name string
		do   func() error
		want string
	}{
		{"number: no such flow", func() error {
			_, _, err := st.PutNumber(ctx, withoutFlow, session.NumberRequest{Flow: flowOf("nowhere")}, nil)
			return err
		}, `flow: no flow "nowhere"`},
		{"number: bad flow id", func() error {
			_, _, err := st.PutNumber(ctx, withoutFlow, session.NumberRequest{Flow: flowOf("a.b")}, nil)
			return err
		}, `flow: no flow "a.b"`},
		{"number: another sub-account's flow", func() error {
			_, _, err := st.PutNumber(ctx, withoutFlow, session.NumberRequest{Flow: flowOf("globex-menu")}, nil)
			return err
		}, `flow: flow "globex-menu" is sub-account globex's, not acme's`},
		{"number: a flow out of scope", func() error {
			_, _, err := st.PutNumber(ctx, withoutFlow, session.NumberRequest{Flow: flowOf("shared")}, session.Scope{"acme"})
			return err
		}, `flow: no flow "shared"`},
		{"number: moved away from its flow's sub-account", func() error {
			_, _, err := st.PutNumber(ctx, withFlow, session.NumberRequest{SubAccountID: &globex}, nil)
			return err
		}, `flow: flow "acme-menu" is sub-account acme's, not globex's`},
		{"sub-account: no such flow", func() error {
			_, err := st.UpdateSubAccount(ctx, "acme", session.SubAccountRequest{DefaultFlow: flowOf("nowhere")}, nil)
			return err
		}, `defaultFlow: no flow "nowhere"`},
		{"sub-account: another sub-account's flow", func() error {
			_, err := st.UpdateSubAccount(ctx, "acme", session.SubAccountRequest{DefaultFlow: flowOf("globex-menu")}, nil)
			return err
		}, `defaultFlow: flow "globex-menu" is sub-account globex's`},
	}
	for _, r := range refused {
		t.Run(r.name, func(t *testing.T) {
			if err := r.do(); !errors.Is(err, session.ErrInvalid) || !strings.Contains(err.Error(), r.want) {
				t.Errorf("error %v, want ErrInvalid with %q", err, r.want)
			}
		})
	}
	if n, err := st.GetNumber(ctx, withFlow, nil); err != nil || n.Flow != "acme-menu" || n.SubAccountID != "acme" || n.OutOfSession == nil {
		t.Errorf("number after refusals: %+v, %v", n, err)
	}
	precedence := []struct {
		name, virtual, sub, want string
	}{
		{"the number's flow", withFlow, "acme", "acme-menu"},
		{"the number's, whatever the call's sub-account", withFlow, "globex", "acme-menu"},
		{"its sub-account's default", withoutFlow, "acme", "acme-default"},
		{"the number's sub-account's default", withoutFlow, "globex", "acme-default"},
		{"a flow without a sub-account", globexNumber, "globex", "shared"},
		{"outside the pool: the call's sub-account's", vn1, "acme", "acme-default"},
		{"outside the pool, no default", vn1, "globex", ""},
	}
	check := func() error {
		for _, p := range precedence {
			for _, x := range []*session.Store{st, other} {
				f, ok := x.FlowFor(p.virtual, p.sub)
				got := ""
				if ok {
					got = f.ID
				}
				if got != p.want {
					return fmt.Errorf("%s: FlowFor(%s, %s) = %q, want %q", p.name, p.virtual, p.sub, got, p.want)
				}
			}
		}
		return nil
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, check)
	// Detach: "" removes the number's flow (its sub-account's default
	// applies) and the sub-account's default (none applies).
	if v, _, err := st.PutNumber(ctx, withFlow, session.NumberRequest{Flow: &none}, nil); err != nil || v.Flow != "" || v.OutOfSession == nil {
		t.Fatalf("detach: %+v, %v", v, err)
	}
	if c, err := st.UpdateSubAccount(ctx, "acme", session.SubAccountRequest{DefaultFlow: &none}, nil); err != nil || c.After.DefaultFlow != "" || c.After.OutOfSession == nil || c.Before == nil || c.Before.DefaultFlow != "acme-default" {
		t.Fatalf("detach default: %+v, %v", c, err)
	}
	precedence = []struct{ name, virtual, sub, want string }{
		{"detached", withFlow, "acme", ""},
		{"no default", withoutFlow, "acme", ""},
		{"untouched", globexNumber, "globex", "shared"},
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, check)
}

// TestDeleteFlow: an attached flow is refused (ErrFlowInUse) unless
// forced, which detaches it from its numbers and sub-accounts; a deleted
// flow is gone for reads and FlowFor, its last version stays readable for
// the calls in it, and a flow made again under its id goes on counting.
func TestDeleteFlow(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	other := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	acme := "acme"
	mustPutFlow(t, st, testFlow("menu", "acme", "one"), nil)
	mustPutFlow(t, st, testFlow("menu", "acme", "two"), nil)
	mustPutFlow(t, st, testFlow("unused", "acme", "u"), nil)
	flow := "menu"
	for _, n := range []string{"+6568330001", "+6568330002"} {
		if _, _, err := st.PutNumber(ctx, n, session.NumberRequest{SubAccountID: &acme, Flow: &flow}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.UpdateSubAccount(ctx, "acme", session.SubAccountRequest{DefaultFlow: &flow}, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		id           string
		force        bool
		scope        session.Scope
		want         error
		wantNumbers  int
		wantAccounts int
	}{
		{"attached", "menu", false, nil, session.ErrFlowInUse, 0, 0},
		{"out of scope", "menu", true, session.Scope{"globex"}, session.ErrFlowNotFound, 0, 0},
		{"no such flow", "nowhere", false, nil, session.ErrFlowNotFound, 0, 0},
		{"not attached", "unused", false, session.Scope{"acme"}, nil, 0, 0},
		{"forced", "menu", true, session.Scope{"acme"}, nil, 2, 1},
		{"already deleted", "menu", true, nil, session.ErrFlowNotFound, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, det, err := st.DeleteFlow(ctx, tt.id, tt.force, tt.scope)
			if !errors.Is(err, tt.want) {
				t.Fatalf("DeleteFlow = %v, want %v", err, tt.want)
			}
			if len(det.Numbers) != tt.wantNumbers || len(det.SubAccounts) != tt.wantAccounts {
				t.Errorf("detached %d numbers and %d sub-accounts, want %d and %d", len(det.Numbers), len(det.SubAccounts), tt.wantNumbers, tt.wantAccounts)
			}
			for _, c := range det.Numbers {
				if c.Before.Flow != "menu" || c.After.Flow != "" {
					t.Errorf("number change %+v -> %+v", c.Before, c.After)
				}
			}
			if err == nil && f.ID != tt.id {
				t.Errorf("deleted %+v", f)
			}
			if errors.Is(err, session.ErrFlowInUse) && !strings.Contains(err.Error(), "2 number(s) (+6568330001, +6568330002) and the default of sub-account(s) acme") {
				t.Errorf("in-use error %q does not say where", err)
			}
		})
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, x := range []*session.Store{st, other} {
			if f, ok := x.CurrentFlow("menu"); ok {
				return fmt.Errorf("CurrentFlow after delete: version %d", f.Version)
			}
			if f, ok := x.FlowFor("+6568330001", "acme"); ok {
				return fmt.Errorf("FlowFor after delete: %s", f.ID)
			}
			// Calls in the flow finish on its versions.
			for v, text := range map[uint64]string{1: "one", 2: "two"} {
				if f, ok := x.FlowVersion("menu", v); !ok || goodbye(f) != text {
					return fmt.Errorf("FlowVersion(menu, %d) after delete = %v, %v", v, f, ok)
				}
			}
			if list, _, _ := x.ListFlows(session.FlowFilter{}, session.Page{}); len(list) != 0 {
				return fmt.Errorf("listed after delete: %d flows", len(list))
			}
		}
		return nil
	})
	if _, err := st.GetFlow(ctx, "menu", nil); !errors.Is(err, session.ErrFlowNotFound) {
		t.Errorf("GetFlow after delete = %v", err)
	}
	if n, err := st.GetNumber(ctx, "+6568330002", nil); err != nil || n.Flow != "" {
		t.Errorf("number after a forced delete: %+v, %v", n, err)
	}
	if a, err := st.GetSubAccount(ctx, "acme", nil); err != nil || a.DefaultFlow != "" {
		t.Errorf("sub-account after a forced delete: %+v, %v", a, err)
	}
	// Made again: a new flow (created), numbered after the deleted one,
	// whose versions calls may still be in.
	again, created, err := st.PutFlow(ctx, testFlow("menu", "acme", "three"), nil)
	if err != nil || !created || again.Version != 3 {
		t.Fatalf("PutFlow after delete = version %d created %v, %v; want 3, true", again.Version, created, err)
	}
	if f, ok := st.FlowVersion("menu", 2); !ok || goodbye(f) != "two" {
		t.Errorf("FlowVersion(menu, 2) after the flow was made again = %v, %v", f, ok)
	}
}

// TestFlowMovesSubAccount: a flow moves to another sub-account only while
// it is not attached.
func TestFlowMovesSubAccount(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	acme, flow := "acme", "menu"
	mustPutFlow(t, st, testFlow("menu", "acme", "a"), nil)
	if _, _, err := st.PutNumber(ctx, "+6568330001", session.NumberRequest{SubAccountID: &acme, Flow: &flow}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.PutFlow(ctx, testFlow("menu", "globex", "g"), nil); !errors.Is(err, session.ErrFlowInUse) {
		t.Errorf("moving an attached flow: %v, want ErrFlowInUse", err)
	}
	if _, _, err := st.PutFlow(ctx, testFlow("menu", "", "g"), nil); !errors.Is(err, session.ErrFlowInUse) {
		t.Errorf("making an attached flow shared: %v, want ErrFlowInUse", err)
	}
	none := ""
	if _, _, err := st.PutNumber(ctx, "+6568330001", session.NumberRequest{Flow: &none}, nil); err != nil {
		t.Fatal(err)
	}
	if f, _, err := st.PutFlow(ctx, testFlow("menu", "globex", "g"), nil); err != nil || f.SubAccountID != "globex" || f.Version != 2 {
		t.Errorf("moving a detached flow: %+v, %v", f, err)
	}
}

// TestFlowConcurrentPuts: PUTs of one flow from two stores at once make
// versions 1 to n, each once.
func TestFlowConcurrentPuts(t *testing.T) {
	js := startJS(t)
	a := openStore(t, js, session.Config{})
	b := openStore(t, js, session.Config{})
	const each = 5
	type result struct {
		version uint64
		err     error
	}
	results := make(chan result, 2*each)
	ctx := testCtx(t)
	for i, st := range []*session.Store{a, b} {
		go func() {
			for j := range each {
				f, _, err := st.PutFlow(ctx, testFlow("menu", "", fmt.Sprintf("%d-%d", i, j)), nil)
				results <- result{f.Version, err}
			}
		}()
	}
	seen := map[uint64]bool{}
	for range 2 * each {
		r := <-results
		if r.err != nil {
			t.Fatalf("PutFlow: %v", r.err)
		}
		if seen[r.version] {
			t.Errorf("version %d stored twice", r.version)
		}
		seen[r.version] = true
	}
	for v := uint64(1); v <= 2*each; v++ {
		if !seen[v] {
			t.Errorf("version %d missing", v)
		}
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for v := uint64(1); v <= 2*each; v++ {
			if _, ok := b.FlowVersion("menu", v); !ok {
				return fmt.Errorf("version %d not readable", v)
			}
		}
		return nil
	})
}

// TestUnreadableFlowIgnored: a flow key holding something that is not a
// valid flow (written by hand) never reaches the index.
func TestUnreadableFlowIgnored(t *testing.T) {
	js := startJS(t)
	ctx := testCtx(t)
	st := openStore(t, js, session.Config{})
	kv := bucket(t, js, session.DefaultBucket)
	// In this order: the watch delivers them so, and f.valid, written
	// last, read means every key before it was applied.
	for _, kvp := range [][2]string{
		{"f.junk", `not json`},
		{"f.other", `{"id":"menu","start":"a","steps":{"a":{"hangup":{}}}}`},
		{"f.invalid", `{"id":"invalid","start":"a","steps":{"a":{"play":{}}}}`},
		{"fv.menu.x", `{}`},
		{"fv.menu.7", `{"id":"menu","version":6,"start":"a","steps":{"a":{"hangup":{}}}}`},
		{"fv.valid.9", `{"id":"valid","version":9,"start":"a","steps":{"a":{}}}`},
		{"fv.valid.10", `{"id":"valid","version":10,"start":"a","steps":{"a":{"hangup":{}}}}`},
		{"f.valid", `{"id":"valid","version":1,"start":"a","steps":{"a":{"hangup":{}}}}`},
	} {
		if _, err := kv.Put(ctx, kvp[0], []byte(kvp[1])); err != nil {
			t.Fatal(err)
		}
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if _, ok := st.CurrentFlow("valid"); !ok {
			return errors.New("the valid flow is not read")
		}
		if _, ok := st.FlowVersion("valid", 10); !ok {
			return errors.New("the valid version is not read")
		}
		return nil
	})
	for _, id := range []string{"junk", "other", "invalid", "menu"} {
		if f, ok := st.CurrentFlow(id); ok {
			t.Errorf("CurrentFlow(%s) = %+v", id, f)
		}
	}
	for _, v := range []uint64{6, 7} {
		if _, ok := st.FlowVersion("menu", v); ok {
			t.Errorf("FlowVersion(menu, %d) read from a key of another version", v)
		}
	}
	if _, ok := st.FlowVersion("valid", 9); ok {
		t.Error("an invalid retained version was read")
	}
	if f, ok := st.CurrentFlow("valid"); !ok || f.Steps["a"].Kind() != session.StepHangup {
		t.Errorf("CurrentFlow(valid) = %v, %v", f, ok)
	}
}
