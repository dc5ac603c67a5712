package session_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/session"
	"github.com/nats-io/nats.go/jetstream"
)

// idemKey is the documented bucket key of an Idempotency-Key of a token
// of every sub-account.
func idemKey(key string) string {
	sum := sha256.Sum256([]byte("*\x00" + key))
	return "i." + hex.EncodeToString(sum[:])
}

func TestValidIdempotencyKey(t *testing.T) {
	tests := []struct {
		name, key string
		ok        bool
	}{
		{"a uuid", "5f0c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f", true},
		{"one character", "k", true},
		{"255 characters", strings.Repeat("k", 255), true},
		{"spaces and punctuation", "order 42/{retry}~!", true},
		{"empty", "", false},
		{"256 characters", strings.Repeat("k", 256), false},
		{"a tab", "a\tb", false},
		{"a newline", "a\nb", false},
		{"DEL", "a\x7fb", false},
		{"not ASCII", "clé", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := session.ValidIdempotencyKey(tt.key)
			if (err == nil) != tt.ok || (err != nil && (!errors.Is(err, session.ErrInvalid) || !strings.Contains(err.Error(), "Idempotency-Key"))) {
				t.Errorf("ValidIdempotencyKey(%q) = %v, want ok %v (an ErrInvalid naming Idempotency-Key)", tt.key, err, tt.ok)
			}
		})
	}
}

// TestIdempotent: the first request with a key claims it; a request with
// the same key and fingerprint waits for it (bounded) and then gets its
// result, from another store too; another fingerprint is a mismatch; a
// released key is claimed anew; a claim whose process died is taken over
// once older than the grace; keys of different scopes never meet; and
// every write of a key carries its 24 h TTL.
func TestIdempotent(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	other := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	kv := bucket(t, js, session.DefaultBucket)
	const wait = 50 * time.Millisecond

	claim, first, err := st.Idempotent(ctx, nil, "k1", "fp1", wait)
	if err != nil || claim == nil || first != nil {
		t.Fatalf("first request: %v %v %v, want a claim", claim, first, err)
	}
	tests := []struct {
		name        string
		store       *session.Store
		scope       session.Scope
		key, fp     string
		wantErr     error
		wantClaimed bool
	}{
		{"same key in flight", other, nil, "k1", "fp1", session.ErrIdempotencyInFlight, false},
		{"another body", other, nil, "k1", "fp2", session.ErrIdempotencyMismatch, false},
		{"another scope", other, session.Scope{"acme"}, "k1", "fp1", nil, true},
		{"another scope's key is not in this one", other, session.Scope{"acme", "globex"}, "k1", "fp2", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, res, err := tt.store.Idempotent(ctx, tt.scope, tt.key, tt.fp, wait)
			if !errors.Is(err, tt.wantErr) || (c != nil) != tt.wantClaimed || res != nil {
				t.Errorf("Idempotent = %v %v %v, want error %v, claimed %v", c, res, err, tt.wantErr, tt.wantClaimed)
			}
		})
	}

	want := session.IdempotentResult{Status: 201, SessionID: "s1", Body: json.RawMessage(`{"id":"s1"}`)}
	if err := claim.Complete(ctx, want); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*session.Store{st, other} {
		c, res, err := s.Idempotent(ctx, nil, "k1", "fp1", wait)
		if err != nil || c != nil || res == nil || res.Status != 201 || res.SessionID != "s1" || string(res.Body) != `{"id":"s1"}` {
			t.Errorf("retry: %v %+v %v, want the first result", c, res, err)
		}
	}
	if _, _, err := st.Idempotent(ctx, nil, "k1", "fp2", wait); !errors.Is(err, session.ErrIdempotencyMismatch) {
		t.Errorf("another body after the result: %v, want a mismatch", err)
	}
	// The result is kept with the claim's TTL (a rewrite without one
	// would keep it forever).
	stream, err := js.Stream(ctx, "KV_"+session.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetLastMsgForSubject(ctx, "$KV."+session.DefaultBucket+"."+idemKey("k1"))
	if err != nil {
		t.Fatal(err)
	}
	if ttl, err := time.ParseDuration(m.Header.Get(jetstream.MsgTTLHeader)); err != nil || ttl <= 23*time.Hour || ttl > session.IdempotencyTTL {
		t.Errorf("result's TTL %q, want about 24h", m.Header.Get(jetstream.MsgTTLHeader))
	}

	// A request waiting for the first gets its result once kept.
	c4, _, err := st.Idempotent(ctx, nil, "k4", "fp", wait)
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		res *session.IdempotentResult
		err error
	}
	waited := make(chan outcome, 1)
	go func() {
		_, res, err := other.Idempotent(ctx, nil, "k4", "fp", time.Minute)
		waited <- outcome{res, err}
	}()
	if err := c4.Complete(ctx, want); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-waited:
		if o.err != nil || o.res == nil || o.res.SessionID != "s1" {
			t.Errorf("the waiting request: %+v %v, want the first's result", o.res, o.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting request did not return")
	}

	// Released: the next request claims it.
	c2, _, err := st.Idempotent(ctx, nil, "k2", "fp", wait)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if c, _, err := other.Idempotent(ctx, nil, "k2", "fp", wait); err != nil || c == nil {
		t.Errorf("after a release: %v %v, want a claim", c, err)
	}

	// A claim left by a process that died a minute ago is taken over.
	stale, _ := json.Marshal(map[string]any{"fingerprint": "fp", "claimedAt": time.Now().Add(-time.Minute)})
	if _, err := kv.Create(ctx, idemKey("k3"), stale, jetstream.KeyTTL(time.Hour)); err != nil {
		t.Fatal(err)
	}
	c3, _, err := other.Idempotent(ctx, nil, "k3", "fp", wait)
	if err != nil || c3 == nil {
		t.Fatalf("stale claim: %v %v, want it taken over", c3, err)
	}
	if err := c3.Complete(ctx, want); err != nil {
		t.Errorf("complete a claim taken over: %v", err)
	}
}
