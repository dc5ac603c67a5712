package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// IdempotencyTTL is how long the result of a request with an
// Idempotency-Key is kept: a retry within it gets that result.
const IdempotencyTTL = 24 * time.Hour

// MaxIdempotencyKey bounds an Idempotency-Key.
const MaxIdempotencyKey = 255

// idempotencyGrace is how old a claim without a result must be before
// it is taken for the leftover of a process that died while serving its
// request, rather than a request in flight (which the API bounds well
// below it).
const idempotencyGrace = 30 * time.Second

// ValidIdempotencyKey checks a client's Idempotency-Key: 1 to
// MaxIdempotencyKey printable ASCII characters. Its error is ErrInvalid
// naming the header.
func ValidIdempotencyKey(key string) error {
	if key == "" || len(key) > MaxIdempotencyKey {
		return invalid("Idempotency-Key", "%d bytes; want 1 to %d printable ASCII characters", len(key), MaxIdempotencyKey)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return invalid("Idempotency-Key", "byte %d is not printable ASCII; want 1 to %d printable ASCII characters", i+1, MaxIdempotencyKey)
		}
	}
	return nil
}

// IdempotentResult is the answer kept for the first request with an
// Idempotency-Key, given again to its retries.
type IdempotentResult struct {
	// Status is the HTTP status answered.
	Status int `json:"status"`
	// SessionID is the session the request created.
	SessionID string `json:"sessionId"`
	// Body is the answer's body.
	Body json.RawMessage `json:"body"`
}

// idempotencyRecord is the value of an i. key: the request's
// fingerprint, when it was claimed, and its result once it has one.
type idempotencyRecord struct {
	Fingerprint string            `json:"fingerprint"`
	ClaimedAt   time.Time         `json:"claimedAt"`
	Result      *IdempotentResult `json:"result,omitempty"`
}

// idempotencyKey is the bucket key of an Idempotency-Key within scope:
// keys of different scopes never meet, and the client's key, which KV
// keys could not hold as it is, is hashed.
func idempotencyKey(scope Scope, key string) string {
	h := sha256.New()
	if scope == nil {
		h.Write([]byte("*"))
	} else {
		subs := slices.Clone(scope)
		slices.Sort(subs)
		for _, s := range subs {
			h.Write([]byte("@" + s))
		}
	}
	h.Write([]byte{0})
	h.Write([]byte(key))
	return "i." + hex.EncodeToString(h.Sum(nil))
}

// IdempotencyClaim holds an Idempotency-Key for the request that
// claimed it, until Complete keeps its result or Release lets a retry
// try again.
type IdempotencyClaim struct {
	s   *Store
	key string
	rev uint64
	rec idempotencyRecord
}

// Idempotent claims key, an Idempotency-Key of scope, for a request whose
// content hashes to fingerprint. It returns either a claim (this request
// is the first: serve it, then Complete or Release the claim) or the
// result of the first request with key. A first request still in flight
// (in this process or another) is waited for, up to wait; past it,
// ErrIdempotencyInFlight. A key used with another fingerprint is
// ErrIdempotencyMismatch. The bucket's create decides between requests
// racing on one key, wherever they run.
func (s *Store) Idempotent(ctx context.Context, scope Scope, key, fingerprint string, wait time.Duration) (*IdempotencyClaim, *IdempotentResult, error) {
	if err := ValidIdempotencyKey(key); err != nil {
		return nil, nil, err
	}
	k := idempotencyKey(scope, key)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for attempt := 0; ; attempt++ {
		// pause doubles up to its ceiling by the 7th attempt; a larger
		// attempt would overflow its shift.
		if err := pause(wctx, min(attempt, 8)); err != nil && ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		rec := idempotencyRecord{Fingerprint: fingerprint, ClaimedAt: time.Now().UTC()}
		data, err := json.Marshal(rec)
		if err != nil {
			return nil, nil, fmt.Errorf("encode idempotency record: %w", err)
		}
		rev, err := s.write(ctx, k, data, 0, IdempotencyTTL)
		if err == nil {
			return &IdempotencyClaim{s: s, key: k, rev: rev, rec: rec}, nil, nil
		}
		if !errors.Is(err, errRevision) {
			return nil, nil, fmt.Errorf("claim idempotency key: %w", err)
		}
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // released meanwhile: claim it again
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read idempotency key: %w", err)
		}
		var held idempotencyRecord
		if err := json.Unmarshal(e.Value(), &held); err != nil {
			return nil, nil, fmt.Errorf("decode idempotency record: %w", err)
		}
		switch {
		case held.Fingerprint != fingerprint:
			return nil, nil, ErrIdempotencyMismatch
		case held.Result != nil:
			return nil, held.Result, nil
		case time.Since(held.ClaimedAt) > idempotencyGrace:
			// Its process died before keeping a result: take it over.
			rev, err := s.write(ctx, k, data, e.Revision(), IdempotencyTTL)
			if err == nil {
				s.log.Warn("taking over an idempotency key whose request never completed", "claimed_at", held.ClaimedAt)
				return &IdempotencyClaim{s: s, key: k, rev: rev, rec: rec}, nil, nil
			}
			if !errors.Is(err, errRevision) {
				return nil, nil, fmt.Errorf("claim idempotency key: %w", err)
			}
		case wctx.Err() != nil:
			return nil, nil, ErrIdempotencyInFlight
		}
	}
}

// Complete keeps the request's result for its retries, until
// IdempotencyTTL after the claim.
func (c *IdempotencyClaim) Complete(ctx context.Context, r IdempotentResult) error {
	c.rec.Result = &r
	data, err := json.Marshal(c.rec)
	if err != nil {
		return fmt.Errorf("encode idempotency record: %w", err)
	}
	// Whole seconds, rounded up (see Store.ttl), at least one.
	left := max((IdempotencyTTL-time.Since(c.rec.ClaimedAt)+time.Second-1)/time.Second*time.Second, time.Second)
	if _, err := c.s.write(ctx, c.key, data, c.rev, left); err != nil {
		return fmt.Errorf("keep idempotent result: %w", err)
	}
	return nil
}

// Release gives the key up without a result (the request changed
// nothing), so that a retry is served anew.
func (c *IdempotencyClaim) Release(ctx context.Context) error {
	if err := c.s.purge(ctx, c.key, jetstream.LastRevision(c.rev)); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}
