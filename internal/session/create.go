package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Close stops watching the bucket.
func (s *Store) Close() {
	s.cancel()
	<-s.done
}

// Lookup returns the open session on virtual (as +digits) that has caller
// (as +digits) as a participant and admits calls of subAccount, from the
// in-memory index.
func (s *Store) Lookup(virtual, caller, subAccount string, now time.Time) (*Session, bool) {
	return s.idx.lookup(virtual, caller, subAccount, now)
}

// CountsMatter reports whether the calls of session id, as the index
// holds it, are to be counted as they come (Session.CountsMatter); true
// for a session the index does not hold, the safe side.
func (s *Store) CountsMatter(id string) bool {
	sess, _, ok := s.idx.session(id)
	return !ok || sess.CountsMatter()
}

// OutOfSession returns the policy for a caller in no open session on
// virtual, for a call of subAccount, and whose policy it is
// (wire.PolicyNumber, wire.PolicySubAccount, or wire.PolicyDefault with
// nil), from the in-memory index.
func (s *Store) OutOfSession(virtual, subAccount string) (*Policy, string) {
	return s.idx.outOfSession(virtual, subAccount)
}

// Len returns the number of open sessions in the index.
func (s *Store) Len() int {
	open, _ := s.idx.sessionCount(time.Now())
	return open
}

// Check reports whether the bucket is reachable, for readiness probes.
func (s *Store) Check(ctx context.Context) error {
	if _, err := s.kv.Status(ctx); err != nil {
		return fmt.Errorf("session bucket %s: %w", s.cfg.Bucket, err)
	}
	return nil
}

// Create validates req and stores the session it describes. Without a
// virtual number it allocates one from the pool of req's sub-account: an
// Active number on which neither participant has an open session (for a
// session with a pin: on which its pin is free) (of req's country when
// given), the least used first. A pin of PINAuto is generated, free on
// the number. It returns ErrInvalid (wrapped, naming the field) for a bad
// request, ErrConflict when a participant already has an open session
// (without a pin) on the virtual number, ErrPINConflict when an open
// session on the number has the pin, ErrNumberUnavailable for a pool
// number that is not Active or is another sub-account's, and
// ErrPoolExhausted when no number is left to allocate.
func (s *Store) Create(ctx context.Context, req Request) (Session, error) {
	now := time.Now()
	sess, err := req.build(now)
	if err != nil {
		return Session{}, err
	}
	auto := req.PIN == PINAuto
	if sess.VirtualNumber == "" {
		return s.allocate(ctx, sess, req.CountryCode, auto, now)
	}
	if n, ok := s.idx.number(sess.VirtualNumber); ok {
		switch {
		case sess.SubAccountID != "" && n.SubAccountID != sess.SubAccountID:
			return Session{}, fmt.Errorf("%w: %s belongs to another sub-account", ErrNumberUnavailable, sess.VirtualNumber)
		case n.Status != NumberActive:
			return Session{}, fmt.Errorf("%w: %s is %s, not for new sessions", ErrNumberUnavailable, sess.VirtualNumber, n.Status)
		}
		// A session on a pool number belongs to the number's sub-account.
		sess.SubAccountID = n.SubAccountID
	}
	if err := s.storeWithPIN(ctx, &sess, auto, now); err != nil {
		return Session{}, err
	}
	return sess.At(now), nil
}

// allocate binds sess to a number of its sub-account's pool. Two creates
// on different machines may pick the same number: the route (or pin)
// keys' KV Create decides, and the loser tries the next number.
//
// A number refused because a create in progress holds one of its keys
// may be free a moment later (that create may fail on its other key and
// release it): when every number was refused and some only so, the
// candidates are tried again, up to allocateRounds times, so that "pool
// exhausted" means exhausted, not busy.
func (s *Store) allocate(ctx context.Context, sess Session, country string, auto bool, now time.Time) (Session, error) {
	pinned := auto || sess.PIN != ""
	for round := 0; ; round++ {
		busy := false
		for number := range s.idx.candidates(sess.SubAccountID, country, sess.Participants, pinned, sess.PIN, now) {
			sess.VirtualNumber = number
			err := s.storeWithPIN(ctx, &sess, auto, now)
			if err == nil {
				return sess.At(now), nil
			}
			if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrPINConflict) {
				return Session{}, err
			}
			var held *HeldError
			if errors.As(err, &held) && held.Creating {
				busy = true
			}
		}
		if !busy || round == allocateRounds-1 {
			break
		}
		if err := pause(ctx, round+1); err != nil {
			return Session{}, fmt.Errorf("allocate a number: %w", err)
		}
	}
	where := "sub-account " + sess.SubAccountID
	if country != "" {
		where += " in " + country
	}
	if pinned {
		return Session{}, fmt.Errorf("%w: no Active number of %s has the pin free", ErrPoolExhausted, where)
	}
	return Session{}, fmt.Errorf("%w: no Active number of %s is free for both participants", ErrPoolExhausted, where)
}

// allocateRounds bounds how often allocate tries the candidates again
// when creates in progress held some of them.
const allocateRounds = 5

// storeWithPIN stores sess, first generating its pin when auto: a pin
// the index knows free on the number, another when a session created
// elsewhere meanwhile took it.
func (s *Store) storeWithPIN(ctx context.Context, sess *Session, auto bool, now time.Time) error {
	if !auto {
		return s.store(ctx, sess, now)
	}
	for range autoPINAttempts {
		sess.PIN = s.idx.freePIN(sess.VirtualNumber, now)
		err := s.store(ctx, sess, now)
		if !errors.Is(err, ErrPINConflict) {
			return err
		}
	}
	sess.PIN = ""
	return fmt.Errorf("%w: no free pin found in %d attempts", ErrPINConflict, autoPINAttempts)
}

// store claims the session's keys (its routes, or its pin) and writes it.
func (s *Store) store(ctx context.Context, sess *Session, now time.Time) error {
	data, err := json.Marshal(sess)
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	ttl := s.ttl(sess, now)
	var claimed []string
	for _, key := range claimKeys(sess) {
		if err := s.claim(ctx, key, sess.ID, ttl, conflictError(sess)); err != nil {
			s.release(claimed)
			return err
		}
		claimed = append(claimed, key)
	}
	rev, err := s.write(ctx, sessionKey(sess.ID), data, 0, ttl)
	if err != nil {
		s.release(claimed)
		return fmt.Errorf("store session: %w", err)
	}
	s.idx.putSession(sess, rev)
	return nil
}

// claim creates a route key (for one participant) or a pin key, holding
// session id; conflict is the error when an open session holds it. A key
// whose session is not open any more (closed, expired, or gone; for a
// gone one, only once the key is older than claimGrace, since its create
// may be in progress) is taken over.
func (s *Store) claim(ctx context.Context, key, id string, ttl time.Duration, conflict error) error {
	for range 3 {
		_, err := s.write(ctx, key, []byte(id), 0, ttl)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errRevision) {
			return fmt.Errorf("claim %s: %w", key, err)
		}
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return fmt.Errorf("claim %s: %w", key, err)
		}
		holder := string(e.Value())
		sess, _, err := s.readSession(ctx, holder)
		switch {
		case err == nil && sess.Open(time.Now()):
			return &HeldError{Err: conflict, SessionID: holder}
		case err == nil:
			// Closed or expired: its route is free.
		case !errors.Is(err, ErrNotFound):
			return err
		case time.Since(e.Created()) < claimGrace:
			return &HeldError{Err: conflict, SessionID: holder, Creating: true}
		}
		s.log.Debug("taking over the route key of a session that is not open", "key", key, "holder", holder)
		if _, err := s.write(ctx, key, []byte(id), e.Revision(), ttl); err == nil {
			return nil
		} else if !errors.Is(err, errRevision) {
			return fmt.Errorf("claim %s: %w", key, err)
		}
	}
	return fmt.Errorf("%w (key %s is contended)", conflict, key)
}

// release removes route keys of a create that failed. Errors are logged:
// a leftover key is taken over by the next create after claimGrace.
func (s *Store) release(keys []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, k := range keys {
		if err := s.purge(ctx, k); err != nil {
			s.log.Warn("cannot release route key", "key", k, "error", err)
		}
	}
}

// purge removes a key, leaving a marker that expires after MarkerTTL so
// that markers do not pile up in the bucket.
func (s *Store) purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	err := s.kv.Purge(ctx, key, append(opts, jetstream.PurgeTTL(s.cfg.MarkerTTL))...)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return err
	}
	if err != nil {
		// A bucket made without marker TTLs refuses PurgeTTL.
		err = s.kv.Purge(ctx, key, opts...)
	}
	return err
}
