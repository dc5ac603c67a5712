package session_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/nats-io/nats.go/jetstream"
)

// routeKey is the documented key of a (virtual number, participant) route.
func routeKey(virtual, participant string) string {
	return "p." + virtual[1:] + "." + participant[1:]
}

func bucket(t testing.TB, js jetstream.JetStream, name string) jetstream.KeyValue {
	t.Helper()
	kv, err := js.KeyValue(testCtx(t), name)
	if err != nil {
		t.Fatalf("KeyValue(%s): %v", name, err)
	}
	return kv
}

// keyGone reports nil when key is absent (never written, deleted, purged or expired).
func keyGone(ctx context.Context, kv jetstream.KeyValue, key string) error {
	e, err := kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("key %s still holds %q", key, e.Value())
}

func lookupIs(st *session.Store, virtual, caller, wantID string) error {
	s, ok := st.Lookup(virtual, caller, "", time.Now())
	switch {
	case wantID == "" && ok:
		return fmt.Errorf("Lookup(%s, %s) = session %s, want none", virtual, caller, s.ID)
	case wantID != "" && !ok:
		return fmt.Errorf("Lookup(%s, %s) found nothing, want session %s", virtual, caller, wantID)
	case wantID != "" && s.ID != wantID:
		return fmt.Errorf("Lookup(%s, %s) = session %s, want %s", virtual, caller, s.ID, wantID)
	}
	return nil
}

func TestOpenCreatesBucket(t *testing.T) {
	tests := []struct {
		name       string
		cfg        session.Config
		wantBucket string
		wantMarker time.Duration
	}{
		{"defaults", session.Config{}, session.DefaultBucket, session.DefaultMarkerTTL},
		{"named", session.Config{Bucket: "my_sessions", MarkerTTL: 5 * time.Second}, "my_sessions", 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js := startJS(t)
			ctx := testCtx(t)
			if _, err := js.KeyValue(ctx, tt.wantBucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
				t.Fatalf("bucket before Open: %v, want ErrBucketNotFound", err)
			}
			st := openStore(t, js, tt.cfg)
			if st.Len() != 0 {
				t.Errorf("Len = %d in a new bucket", st.Len())
			}
			if err := st.Check(ctx); err != nil {
				t.Errorf("Check: %v", err)
			}
			status, err := bucket(t, js, tt.wantBucket).Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := status.LimitMarkerTTL(); got != tt.wantMarker {
				t.Errorf("LimitMarkerTTL = %v, want %v", got, tt.wantMarker)
			}
			if got := status.History(); got != 1 {
				t.Errorf("History = %d, want 1", got)
			}
			// A TTL session works on the bucket Open made.
			mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLSeconds: 60})
		})
	}
}

func TestOpenReusesBucket(t *testing.T) {
	js := startJS(t)
	ctx := testCtx(t)
	// An operator made the bucket with settings of their own.
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         "ops_sessions",
		Description:    "made by ops",
		History:        3,
		LimitMarkerTTL: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "other.key", []byte("kept")); err != nil {
		t.Fatal(err)
	}

	st1 := openStore(t, js, session.Config{Bucket: "ops_sessions", MarkerTTL: time.Hour})
	s := mustCreate(t, st1, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLSeconds: 60})
	// A second Open finds the bucket and its session.
	st2 := openStore(t, js, session.Config{Bucket: "ops_sessions", MarkerTTL: time.Hour})
	if err := lookupIs(st2, vn1, pA, s.ID); err != nil {
		t.Error(err)
	}

	status, err := bucket(t, js, "ops_sessions").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if status.History() != 3 || status.LimitMarkerTTL() != 2*time.Minute {
		t.Errorf("bucket changed: history %d, marker TTL %v", status.History(), status.LimitMarkerTTL())
	}
	if bs, ok := status.(*jetstream.KeyValueBucketStatus); ok {
		if d := bs.StreamInfo().Config.Description; d != "made by ops" {
			t.Errorf("description changed to %q", d)
		}
	}
	if e, err := kv.Get(ctx, "other.key"); err != nil || string(e.Value()) != "kept" {
		t.Errorf("foreign key: %v", err)
	}
}

func TestOpenInvalidConfig(t *testing.T) {
	js := startJS(t)
	tests := []struct {
		name string
		cfg  session.Config
	}{
		{"replicas 6", session.Config{Replicas: 6}},
		{"replicas negative", session.Config{Replicas: -1}},
		{"marker ttl under 1s", session.Config{MarkerTTL: 500 * time.Millisecond}},
		{"marker ttl negative", session.Config{MarkerTTL: -time.Second}},
		{"sync timeout negative", session.Config{SyncTimeout: -time.Second}},
		{"flow retention under 1s", session.Config{FlowRetention: 500 * time.Millisecond}},
		{"flow retention over a year", session.Config{FlowRetention: session.MaxTTL + time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := session.Open(testCtx(t), js, tt.cfg)
			if !errors.Is(err, session.ErrInvalidConfig) {
				if st != nil {
					st.Close()
				}
				t.Fatalf("Open error = %v, want ErrInvalidConfig", err)
			}
		})
	}
	// Nothing was created by a refused configuration.
	if _, err := js.KeyValue(testCtx(t), session.DefaultBucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("bucket after refused Opens: %v", err)
	}
}

func TestOpenNoJetStreamForReplicas(t *testing.T) {
	// Three replicas cannot be placed on a single server: Open fails
	// instead of hanging.
	js := startJS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := session.Open(ctx, js, session.Config{Replicas: 3})
	if err == nil {
		st.Close()
		t.Fatal("Open with 3 replicas on one server succeeded")
	}
}

func TestRoundTrip(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	kv := bucket(t, js, session.DefaultBucket)

	s1 := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})
	s2 := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pC, pD}, TTLSeconds: 3600})
	s3 := mustCreate(t, st, session.Request{VirtualNumber: vn2, Participants: []string{pA, pB}})

	for _, s := range []session.Session{s1, s2, s3} {
		got, err := st.Get(ctx, s.ID)
		if err != nil {
			t.Fatalf("Get(%s): %v", s.ID, err)
		}
		if !sameSession(got, s) {
			t.Errorf("Get = %+v, want %+v", got, s)
		}
		for _, p := range s.Participants {
			e, err := kv.Get(ctx, routeKey(s.VirtualNumber, p))
			if err != nil || string(e.Value()) != s.ID {
				t.Errorf("route key for %s on %s: %v", p, s.VirtualNumber, err)
			}
		}
	}
	if st.Len() != 3 {
		t.Errorf("Len = %d, want 3", st.Len())
	}

	// Lookup routes each participant on its number, and nobody else.
	lookups := []struct{ virtual, caller, want string }{
		{vn1, pA, s1.ID}, {vn1, pB, s1.ID}, {vn1, pC, s2.ID}, {vn1, pD, s2.ID},
		{vn2, pA, s3.ID}, {vn2, pB, s3.ID}, {vn2, pC, ""}, {vn1, vn1, ""},
		{vn1, "6512345678", ""}, // the index is keyed by +digits
	}
	for _, l := range lookups {
		if err := lookupIs(st, l.virtual, l.caller, l.want); err != nil {
			t.Error(err)
		}
	}

	// List: the open sessions on a number, oldest first.
	ids := func(ss []session.Session) []string {
		out := []string{}
		for _, s := range ss {
			out = append(out, s.ID)
		}
		return out
	}
	lists := []struct {
		virtual string
		at      time.Time
		want    []string
	}{
		{vn1, time.Now(), []string{s1.ID, s2.ID}},
		{vn2, time.Now(), []string{s3.ID}},
		{"+6500000000", time.Now(), []string{}},
		{vn1, time.Now().Add(2 * time.Hour), []string{s1.ID}}, // s2 has expired by then
	}
	for _, l := range lists {
		got := ids(openOn(t, st, l.virtual, l.at))
		if fmt.Sprint(got) != fmt.Sprint(l.want) {
			t.Errorf("List(%s, %v) = %v, want %v", l.virtual, l.at, got, l.want)
		}
	}
	if got := openOn(t, st, "+6500000000", time.Now()); got == nil {
		t.Error("List of an unused number is nil, want an empty slice (encodes as [])")
	}

	// Delete returns the session, stops routing at once and releases the routes.
	del, err := st.Delete(ctx, s1.ID)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if !sameSession(del, s1) {
		t.Errorf("Delete returned %+v, want %+v", del, s1)
	}
	for _, p := range s1.Participants {
		if err := lookupIs(st, vn1, p, ""); err != nil {
			t.Errorf("right after Delete: %v", err)
		}
		if err := keyGone(ctx, kv, routeKey(vn1, p)); err != nil {
			t.Error(err)
		}
	}
	if _, err := st.Get(ctx, s1.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if _, err := st.Delete(ctx, s1.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	if got := ids(openOn(t, st, vn1, time.Now())); fmt.Sprint(got) != fmt.Sprint([]string{s2.ID}) {
		t.Errorf("List after Delete = %v", got)
	}
	// The same participants on the other number are untouched.
	if err := lookupIs(st, vn2, pA, s3.ID); err != nil {
		t.Error(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := st.Len(); n != 2 {
			return fmt.Errorf("Len = %d after Delete, want 2", n)
		}
		return lookupIs(st, vn1, pA, "")
	})
}

func TestNotFound(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	existing := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})

	tests := []struct{ name, id string }{
		{"unknown id", "0123456789abcdef0123456789abcdef"},
		{"empty", ""},
		{"short", "abc"},
		{"upper case of an existing id", upper(existing.ID)},
		{"existing id with a suffix", existing.ID + "0"},
		{"wildcard", "*"},
		{"full wildcard", ">"},
		{"route key", "p.6598765432.6512345678"},
		{"key of another kind", "../" + existing.ID},
		{"with a dot", existing.ID[:16] + "." + existing.ID[17:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := st.Get(ctx, tt.id); !errors.Is(err, session.ErrNotFound) {
				t.Errorf("Get(%q) = %v, want ErrNotFound", tt.id, err)
			}
			if _, err := st.Delete(ctx, tt.id); !errors.Is(err, session.ErrNotFound) {
				t.Errorf("Delete(%q) = %v, want ErrNotFound", tt.id, err)
			}
		})
	}
	// None of that touched the existing session.
	if _, err := st.Get(ctx, existing.ID); err != nil {
		t.Errorf("existing session: %v", err)
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestConflict(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	first := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})

	tests := []struct {
		name    string
		req     session.Request
		wantErr error // nil: created (and deleted again)
	}{
		{"same pair", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}}, session.ErrConflict},
		{"same pair reversed", session.Request{VirtualNumber: vn1, Participants: []string{pB, pA}}, session.ErrConflict},
		{"first participant taken", session.Request{VirtualNumber: vn1, Participants: []string{pA, pC}}, session.ErrConflict},
		{"second participant taken", session.Request{VirtualNumber: vn1, Participants: []string{pC, pB}}, session.ErrConflict},
		{"taken participant typed differently", session.Request{VirtualNumber: "65 9876 5432", Participants: []string{pC, "65-8765-4321"}}, session.ErrConflict},
		{"same pair on another number", session.Request{VirtualNumber: vn2, Participants: []string{pA, pB}}, nil},
		{"other participants on the same number", session.Request{VirtualNumber: vn1, Participants: []string{pC, pD}}, nil},
		{"a participant of the first as a virtual number", session.Request{VirtualNumber: pA, Participants: []string{pB, pC}}, nil},
		// Validation comes before the conflict check.
		{"invalid and conflicting", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLSeconds: -5}, session.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.Create(ctx, tt.req)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Create = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if _, err := st.Delete(ctx, got.ID); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		})
	}

	// A refused create released what it had claimed: pC is free on vn1
	// although "second participant taken" claimed it first.
	kv := bucket(t, js, session.DefaultBucket)
	if err := keyGone(ctx, kv, routeKey(vn1, pC)); err != nil {
		t.Errorf("refused create left a route key: %v", err)
	}
	// The first session still routes both ways.
	for _, p := range first.Participants {
		if err := lookupIs(st, vn1, p, first.ID); err != nil {
			t.Error(err)
		}
	}

	// After Delete, each participant can join a new session on that number,
	// repeatedly (route keys are purged, then created again).
	prev := first
	for i, pair := range [][]string{{pA, pC}, {pB, pA}, {pA, pB}} {
		if _, err := st.Delete(ctx, prev.ID); err != nil {
			t.Fatalf("round %d: Delete: %v", i, err)
		}
		next, err := st.Create(ctx, session.Request{VirtualNumber: vn1, Participants: pair})
		if err != nil {
			t.Fatalf("round %d: Create %v after Delete: %v", i, pair, err)
		}
		if err := lookupIs(st, vn1, pair[0], next.ID); err != nil {
			t.Errorf("round %d: %v", i, err)
		}
		prev = next
	}
}

func TestConflictWithRouteOfMissingSession(t *testing.T) {
	// A route key whose session does not exist (yet) is a create in
	// progress elsewhere: it is a conflict until it is old (claimGrace).
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	kv := bucket(t, js, session.DefaultBucket)
	if _, err := kv.Create(ctx, routeKey(vn1, pB), []byte("0123456789abcdef0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}}); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("Create = %v, want ErrConflict", err)
	}
	if err := keyGone(ctx, kv, routeKey(vn1, pA)); err != nil {
		t.Errorf("refused create left its first claim: %v", err)
	}
	if e, err := kv.Get(ctx, routeKey(vn1, pB)); err != nil || string(e.Value()) != "0123456789abcdef0123456789abcdef" {
		t.Errorf("the other create's route key was touched: %v", err)
	}
}

func TestConcurrentCreates(t *testing.T) {
	const n = 8
	others := func(i int) string { return fmt.Sprintf("+65%08d", 20000000+i) }
	tests := []struct {
		name string
		// pair returns goroutine i's participants; every pair shares pA.
		pair func(i int) []string
	}{
		{"shared participant first", func(i int) []string { return []string{pA, others(i)} }},
		{"identical pairs", func(i int) []string { return []string{pA, pB} }},
		{"shared participant in either place", func(i int) []string {
			if i%2 == 0 {
				return []string{pA, others(i)}
			}
			return []string{others(i), pA}
		}},
		{"same pair in both orders", func(i int) []string {
			if i%2 == 0 {
				return []string{pA, pB}
			}
			return []string{pB, pA}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js := startJS(t)
			// Separate stores, as separate admin API instances would be.
			stores := make([]*session.Store, n)
			for i := range stores {
				stores[i] = openStore(t, js, session.Config{})
			}
			ctx := testCtx(t)
			var (
				wg    sync.WaitGroup
				start = make(chan struct{})
				ids   = make([]string, n)
				errs  = make([]error, n)
			)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					s, err := stores[i].Create(ctx, session.Request{VirtualNumber: vn1, Participants: tt.pair(i)})
					ids[i], errs[i] = s.ID, err
				}()
			}
			close(start)
			wg.Wait()

			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Errorf("creates %d and %d both won", winner, i)
				case err == nil:
					winner = i
				case !errors.Is(err, session.ErrConflict):
					t.Errorf("create %d: %v, want ErrConflict", i, err)
				}
			}
			if winner < 0 {
				t.Fatalf("no create won: %v", errs)
			}

			kv := bucket(t, js, session.DefaultBucket)
			for i := 0; i < n; i++ {
				p := tt.pair(i)
				for _, x := range p {
					if i == winner || x == tt.pair(winner)[0] || x == tt.pair(winner)[1] {
						continue
					}
					// Every loser released its own claims.
					if err := keyGone(ctx, kv, routeKey(vn1, x)); err != nil {
						t.Errorf("loser %d: %v", i, err)
					}
				}
			}
			// Every store routes pA to the winner, and only the winner.
			for i, st := range stores {
				natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
					if got := openOn(t, st, vn1, time.Now()); len(got) != 1 || got[0].ID != ids[winner] {
						return fmt.Errorf("store %d lists %d sessions", i, len(got))
					}
					return lookupIs(st, vn1, pA, ids[winner])
				})
			}
			if e, err := kv.Get(ctx, routeKey(vn1, pA)); err != nil || string(e.Value()) != ids[winner] {
				t.Errorf("route key of pA: %v", err)
			}
		})
	}
}

func TestTTLExpiry(t *testing.T) {
	for _, ttl := range []int64{1, 2} {
		t.Run(fmt.Sprintf("%ds", ttl), func(t *testing.T) {
			js := startJS(t)
			const history = 2 * time.Second
			st := openStore(t, js, session.Config{History: history})
			other := openStore(t, js, session.Config{History: history}) // another decider
			ctx := testCtx(t)
			kv := bucket(t, js, session.DefaultBucket)

			s := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLSeconds: ttl})
			keep := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pC, pD}})
			if err := lookupIs(st, vn1, pA, s.ID); err != nil {
				t.Fatal(err)
			}
			natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				return lookupIs(other, vn1, pB, s.ID)
			})
			if _, err := st.Create(ctx, session.Request{VirtualNumber: vn1, Participants: []string{pA, pC}}); !errors.Is(err, session.ErrConflict) {
				t.Fatalf("Create before expiry = %v, want ErrConflict", err)
			}

			// Expiry: routing stops in every store as soon as ExpiresAt
			// passes; the session reads as closed by expiry.
			bound := time.Duration(ttl)*time.Second + 10*time.Second
			natstest.CheckFor(t, bound, 20*time.Millisecond, func() error {
				for _, x := range []*session.Store{st, other} {
					for _, p := range s.Participants {
						if err := lookupIs(x, vn1, p, ""); err != nil {
							return err
						}
					}
				}
				got, err := st.Get(ctx, s.ID)
				if err != nil || got.Status != session.StatusClosed || got.ClosedReason == nil || *got.ClosedReason != session.ClosedExpired {
					return fmt.Errorf("Get = %+v, %v; want closed by expiry", got, err)
				}
				if got := openOn(t, st, vn1, time.Now()); len(got) != 1 || got[0].ID != keep.ID {
					return fmt.Errorf("List = %d sessions, want only the one without ttl", len(got))
				}
				return nil
			})
			if time.Now().Before(*s.ExpiresAt) {
				t.Fatalf("routing stopped before ExpiresAt %v", s.ExpiresAt)
			}
			// An expired session never reopens.
			ext := int64(3600)
			if _, err := st.Update(ctx, s.ID, session.Patch{TTLSeconds: &ext}); !errors.Is(err, session.ErrClosed) {
				t.Errorf("Update of an expired session = %v, want ErrClosed", err)
			}
			// Its participants are free at once, also in reverse order.
			again := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pB, pA}})
			natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				return lookupIs(other, vn1, pA, again.ID)
			})

			// After the history, JetStream removes the session (no sweeper
			// of ours) and the indexes forget it.
			natstest.CheckFor(t, bound+history, 50*time.Millisecond, func() error {
				if err := keyGone(ctx, kv, "s."+s.ID); err != nil {
					return err
				}
				if _, err := st.Get(ctx, s.ID); !errors.Is(err, session.ErrNotFound) {
					return fmt.Errorf("Get = %v, want ErrNotFound", err)
				}
				for _, x := range []*session.Store{st, other} {
					all, _, err := x.ListSessions(session.SessionFilter{Status: "all"}, session.Page{}, time.Now())
					if err != nil {
						return err
					}
					for _, v := range all {
						if v.ID == s.ID {
							return fmt.Errorf("an index still lists %s", s.ID)
						}
					}
				}
				return nil
			})
			// The session without ttl was never affected.
			if err := lookupIs(other, vn1, pC, keep.ID); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestSecondStoreSeesChanges(t *testing.T) {
	js := startJS(t)
	a := openStore(t, js, session.Config{})
	b := openStore(t, js, session.Config{})
	ctx := testCtx(t)

	s := mustCreate(t, a, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, CallRecording: true})
	// Get reads the bucket: b finds it at once.
	if got, err := b.Get(ctx, s.ID); err != nil || !sameSession(got, s) {
		t.Fatalf("b.Get = %+v, %v", got, err)
	}
	// The 409 rule holds across stores whatever b's index holds.
	if _, err := b.Create(ctx, session.Request{VirtualNumber: vn1, Participants: []string{pB, pC}}); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("b.Create conflicting = %v, want ErrConflict", err)
	}
	// b's watcher brings the session into b's index.
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if err := lookupIs(b, vn1, pA, s.ID); err != nil {
			return err
		}
		if err := lookupIs(b, vn1, pB, s.ID); err != nil {
			return err
		}
		got := openOn(t, b, vn1, time.Now())
		if len(got) != 1 || !sameSession(got[0], s) {
			return fmt.Errorf("b.List = %+v", got)
		}
		return nil
	})

	// A session made by b shows in a.
	s2 := mustCreate(t, b, session.Request{VirtualNumber: vn2, Participants: []string{pA, pC}})
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		return lookupIs(a, vn2, pC, s2.ID)
	})

	// A delete in a reaches b; a delete in b of a's session reaches a.
	if _, err := a.Delete(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if err := lookupIs(b, vn1, pA, ""); err != nil {
			return err
		}
		if got := openOn(t, b, vn1, time.Now()); len(got) != 0 {
			return fmt.Errorf("b.List = %d sessions after delete", len(got))
		}
		return nil
	})
	if _, err := b.Delete(ctx, s2.ID); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if err := lookupIs(a, vn2, pC, ""); err != nil {
			return err
		}
		if a.Len() != 0 || b.Len() != 0 {
			return fmt.Errorf("Len = %d and %d after deletes", a.Len(), b.Len())
		}
		return nil
	})
	// And b, told by a's delete, lets the participant into a new session.
	s3 := mustCreate(t, b, session.Request{VirtualNumber: vn1, Participants: []string{pB, pC}})
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		return lookupIs(a, vn1, pB, s3.ID)
	})
}

func TestInitialSnapshot(t *testing.T) {
	js := startJS(t)
	a := openStore(t, js, session.Config{})
	ctx := testCtx(t)

	var open []session.Session
	for i := 0; i < 300; i++ { // more than a watcher's channel holds (256)
		open = append(open, mustCreate(t, a, session.Request{
			VirtualNumber: fmt.Sprintf("+659%07d", i),
			Participants:  []string{pA, pB},
			TTLSeconds:    int64(3600 * (i % 2)),
		}))
	}
	deleted := mustCreate(t, a, session.Request{VirtualNumber: vn1, Participants: []string{pC, pD}})
	if _, err := a.Delete(ctx, deleted.ID); err != nil {
		t.Fatal(err)
	}

	// Open returns with the index loaded: no waiting.
	b := openStore(t, js, session.Config{})
	if b.Len() != len(open) {
		t.Errorf("b.Len = %d right after Open, want %d", b.Len(), len(open))
	}
	for _, s := range open {
		for _, p := range s.Participants {
			if err := lookupIs(b, s.VirtualNumber, p, s.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := lookupIs(b, vn1, pC, ""); err != nil {
		t.Errorf("deleted session in the snapshot: %v", err)
	}
	if got := openOn(t, b, open[7].VirtualNumber, time.Now()); len(got) != 1 || !sameSession(got[0], open[7]) {
		t.Errorf("b.List = %+v", got)
	}
}

func TestInitialSnapshotOfEmptiedBucket(t *testing.T) {
	// A bucket that holds only deletion markers and route keys still
	// finishes its initial snapshot (an Open that hung here would keep a
	// decider from ever starting).
	js := startJS(t)
	a := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	for i := 0; i < 3; i++ {
		s := mustCreate(t, a, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})
		if _, err := a.Delete(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
	}
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	b, err := session.Open(octx, js, session.Config{SyncTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer b.Close()
	if b.Len() != 0 {
		t.Errorf("Len = %d", b.Len())
	}
}

func TestUnreadableSessionIgnored(t *testing.T) {
	js := startJS(t)
	a := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	kv := bucket(t, js, session.DefaultBucket)
	bad := []struct{ key, value string }{
		{"s.00000000000000000000000000000001", "not json"},
		{"s.00000000000000000000000000000002", `{"id":"00000000000000000000000000000003","virtualNumber":"+6598765432","participants":["+6512345678","+6587654321"]}`},
	}
	for _, b := range bad {
		if _, err := kv.Put(ctx, b.key, []byte(b.value)); err != nil {
			t.Fatal(err)
		}
	}
	good := mustCreate(t, a, session.Request{VirtualNumber: vn2, Participants: []string{pA, pB}})
	// a saw the bad entries through its watcher, b in its initial snapshot;
	// both skip them and keep the good session.
	b := openStore(t, js, session.Config{})
	if err := lookupIs(b, vn2, pA, good.ID); err != nil {
		t.Error(err)
	}
	for _, x := range []*session.Store{a, b} {
		if err := lookupIs(x, vn1, pA, ""); err != nil {
			t.Error(err)
		}
		if x.Len() != 1 {
			t.Errorf("Len = %d, want 1", x.Len())
		}
	}
}

func TestCloseStopsWatching(t *testing.T) {
	js := startJS(t)
	a := openStore(t, js, session.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := session.Open(ctx, js, session.Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { b.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	// a keeps working after b is gone.
	s := mustCreate(t, a, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})
	if err := lookupIs(a, vn1, pA, s.ID); err != nil {
		t.Error(err)
	}
}

func TestDeleteStopsRoutingAtOnce(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	for i := 0; i < 300; i++ {
		s := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})
		if _, err := st.Delete(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(3 * time.Millisecond); time.Now().Before(end); {
			if err := lookupIs(st, vn1, pA, ""); err != nil {
				t.Fatalf("round %d, after Delete returned: %v", i, err)
			}
		}
	}
}

func TestBucketWithoutMarkerTTL(t *testing.T) {
	// A bucket made elsewhere without limit marker TTLs is used as it is:
	// sessions without a ttl work, deletes work (purge without a marker
	// TTL), sessions with a ttl are refused by the server.
	js := startJS(t)
	ctx := testCtx(t)
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "plain"}); err != nil {
		t.Fatal(err)
	}
	st := openStore(t, js, session.Config{Bucket: "plain"})
	s := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})
	if _, err := st.Delete(ctx, s.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	kv := bucket(t, js, "plain")
	for _, k := range []string{"s." + s.ID, routeKey(vn1, pA), routeKey(vn1, pB)} {
		if err := keyGone(ctx, kv, k); err != nil {
			t.Error(err)
		}
	}
	again := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})
	if err := lookupIs(st, vn1, pA, again.ID); err != nil {
		t.Error(err)
	}
	_, err := st.Create(ctx, session.Request{VirtualNumber: vn2, Participants: []string{pA, pB}, TTLSeconds: 60})
	if err == nil {
		t.Fatal("Create with a ttl on a bucket without per-key TTLs succeeded")
	}
	if errors.Is(err, session.ErrConflict) || errors.Is(err, session.ErrInvalid) {
		t.Errorf("Create with a ttl = %v, want a storage error", err)
	}
	// The refused create left nothing behind.
	for _, p := range []string{pA, pB} {
		if err := keyGone(ctx, kv, routeKey(vn2, p)); err != nil {
			t.Error(err)
		}
	}
}

func TestIndexSurvivesServerLoss(t *testing.T) {
	// Routing reads the in-memory index: with the server gone, decisions
	// go on from what the index holds, and Check reports the outage.
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	// Not closed by the test (see TestCloseWithServerDown): the watcher
	// ends when the connection closes at the end of the test.
	st, err := session.Open(testCtx(t), js, session.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sess := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})
	s.Shutdown()
	s.WaitForShutdown()

	if err := lookupIs(st, vn1, pB, sess.ID); err != nil {
		t.Errorf("with the server down: %v", err)
	}
	if got := openOn(t, st, vn1, time.Now()); len(got) != 1 {
		t.Errorf("List with the server down: %d sessions", len(got))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := st.Check(ctx); err == nil {
		t.Error("Check succeeded with the server down")
	}
	if _, err := st.Get(ctx, sess.ID); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get with the server down = %v, want a storage error (not ErrNotFound: a 404 would be a lie)", err)
	}
}

func TestCloseWithServerDown(t *testing.T) {
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := session.Open(ctx, js, session.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	s.WaitForShutdown()
	start := time.Now()
	done := make(chan struct{})
	go func() { st.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung with the server down")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v with the server down", d)
	}
}

// openOn lists the sessions open at now on a number, as the admin API's
// list does.
func openOn(t testing.TB, st *session.Store, virtual string, now time.Time) []session.Session {
	t.Helper()
	list, _, err := st.ListSessions(session.SessionFilter{VirtualNumber: virtual}, session.Page{Limit: session.MaxLimit}, now)
	if err != nil {
		t.Fatalf("ListSessions: %v", err)
	}
	return list
}
