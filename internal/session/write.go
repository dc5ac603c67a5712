package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// errRevision means a write found the key at another revision than the one
// it was based on: someone else wrote it meanwhile; read again and retry.
var errRevision = errors.New("key changed meanwhile")

// maxAttempts bounds the read-modify-write retries of one change.
const maxAttempts = 12

// pause waits before a retry of a read-modify-write (attempt > 0): a
// jittered, doubling pause from about 2 ms to 200 ms, so that writers
// racing for one key take turns, and so that a read served by a replica
// that lags (a replicated bucket's direct gets) has caught up. It
// returns ctx's error if ctx ends first.
func pause(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return nil
	}
	d := min(2*time.Millisecond<<attempt, 200*time.Millisecond)
	d = d/2 + rand.N(d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// JetStream's answers to a publish whose expected last subject sequence
// does not match: 10071 from a stream of one replica, 10164 (the same
// condition, a constant description) from a replicated one.
const (
	errCodeWrongLastSequence         jetstream.ErrorCode = 10071
	errCodeWrongLastSequenceReplicas jetstream.ErrorCode = 10164
)

// write stores value at key, over revision rev (0: the key must not exist
// or be deleted), expiring after ttl (0: never). It returns the new
// revision. Each write carries its own TTL (JetStream per-message TTL on a
// bucket with limit markers), so a rewritten key keeps an expiry, which
// the KV API's Put and Update would drop.
func (s *Store) write(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	if rev == 0 {
		var opts []jetstream.KVCreateOpt
		if ttl > 0 {
			opts = append(opts, jetstream.KeyTTL(ttl))
		}
		r, err := s.kv.Create(ctx, key, value, opts...)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, errRevision
		}
		return r, err
	}
	// The headers jetstream.WithExpectLastSequencePerSubject and
	// WithMsgTTL set, without the options' allocations (four a write, on
	// every connected call's count).
	msg := &nats.Msg{Subject: s.putPrefix + key, Data: value, Header: nats.Header{
		jetstream.ExpectedLastSubjSeqHeader: {strconv.FormatUint(rev, 10)},
	}}
	if ttl > 0 {
		msg.Header[jetstream.MsgTTLHeader] = []string{ttl.String()}
	}
	ack, err := s.js.PublishMsg(ctx, msg)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == errCodeWrongLastSequence || apiErr.ErrorCode == errCodeWrongLastSequenceReplicas) {
		return 0, errRevision
	}
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// deadline is when the bucket forgets a session: its history after it
// closed or expired; ok is false for an open session without expiry.
func deadline(s *Session, history time.Duration) (time.Time, bool) {
	switch {
	case s.Status == StatusClosed && s.ClosedAt != nil:
		return s.ClosedAt.Add(history), true
	case s.ExpiresAt != nil:
		return s.ExpiresAt.Add(history), true
	}
	return time.Time{}, false
}

// ttl is the TTL of a session's keys written at now: whole seconds,
// rounded up (JetStream counts a message's TTL in whole seconds, dropping
// the fraction), at least one.
func (s *Store) ttl(sess *Session, now time.Time) time.Duration {
	d, ok := deadline(sess, s.cfg.History)
	if !ok {
		return 0
	}
	return max((d.Sub(now)+time.Second-1)/time.Second*time.Second, time.Second)
}

// readSession reads a session and its revision from the bucket.
func (s *Store) readSession(ctx context.Context, id string) (Session, uint64, error) {
	if !ValidID(id) {
		return Session{}, 0, ErrNotFound
	}
	e, err := s.kv.Get(ctx, sessionKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Session{}, 0, ErrNotFound
	}
	if err != nil {
		return Session{}, 0, fmt.Errorf("read session %s: %w", id, err)
	}
	var sess Session
	if err := json.Unmarshal(e.Value(), &sess); err != nil {
		return Session{}, 0, fmt.Errorf("decode session %s: %w", id, err)
	}
	sess.fill()
	return sess, e.Revision(), nil
}

// Get reads a session from the bucket (not the index, so that a session
// just created elsewhere is found), as it stands now: closed and expired
// sessions are returned, with their status, until the bucket forgets them.
func (s *Store) Get(ctx context.Context, id string) (Session, error) {
	sess, _, err := s.readSession(ctx, id)
	if err != nil {
		return Session{}, err
	}
	return sess.At(time.Now()), nil
}

// change reads session id, lets f change it (f returns an error to give
// up), and writes it back over the revision read, retrying when someone
// else wrote it meanwhile. Route keys follow: their TTL is extended before
// the session's (a route must outlive its open session, or another create
// could take it), shortened after, and they are released when it closes.
//
// With fromIndex, the first attempt starts from the index's copy and
// revision instead of reading the bucket: one round trip instead of two
// when the index is current, as it is for the calls a decider just routed
// from it; a stale copy only costs the retry that reads.
func (s *Store) change(ctx context.Context, id string, fromIndex bool, f func(*Session, time.Time) error) (Session, error) {
	for attempt := range maxAttempts {
		if pause(ctx, attempt) != nil {
			break
		}
		var sess Session
		var rev uint64
		var err error
		if v, r, ok := s.idx.session(id); fromIndex && attempt == 0 && ok && r > 0 {
			// f replaces the pointers it changes: the index's copy is
			// never written through.
			sess, rev = *v, r
		} else if sess, rev, err = s.readSession(ctx, id); err != nil {
			return Session{}, err
		}
		before := sess
		now := time.Now().UTC()
		if err := f(&sess, now); err != nil {
			return Session{}, err
		}
		if sess.Status == StatusOpen && !sess.Open(now) {
			// Moved its expiry into the past: closed by expiry now.
			sess.close(*sess.ExpiresAt, ClosedExpired)
		}
		data, err := json.Marshal(&sess)
		if err != nil {
			return Session{}, fmt.Errorf("encode session: %w", err)
		}
		ttl := s.ttl(&sess, now)
		extends := sess.Status == StatusOpen && laterOrNever(sess.ExpiresAt, before.ExpiresAt)
		if extends {
			if err := s.retime(ctx, &sess, ttl); err != nil {
				return Session{}, err
			}
		}
		newRev, err := s.write(ctx, sessionKey(id), data, rev, ttl)
		if errors.Is(err, errRevision) {
			continue
		}
		if err != nil {
			return Session{}, fmt.Errorf("store session %s: %w", id, err)
		}
		s.idx.putSession(&sess, newRev)
		switch {
		case sess.Status == StatusClosed && before.Status != StatusClosed:
			s.releaseRoutes(ctx, &sess)
		case sess.Status == StatusOpen && !extends && !sameTime(sess.ExpiresAt, before.ExpiresAt):
			if err := s.retime(ctx, &sess, ttl); err != nil {
				s.log.Warn("route keys keep their longer TTL", "session", id, "error", err)
			}
		}
		return sess.At(now), nil
	}
	return Session{}, fmt.Errorf("store session %s: %w after %d attempts", id, errRevision, maxAttempts)
}

func sameTime(a, b *time.Time) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && a.Equal(*b))
}

// laterOrNever reports whether expiry a ends later than b (nil: never).
func laterOrNever(a, b *time.Time) bool {
	switch {
	case sameTime(a, b):
		return false
	case a == nil:
		return true
	case b == nil:
		return false
	}
	return a.After(*b)
}

// retime rewrites the session's route (or pin) keys with ttl.
func (s *Store) retime(ctx context.Context, sess *Session, ttl time.Duration) error {
	for _, key := range claimKeys(sess) {
		for attempt := range maxAttempts {
			if pause(ctx, attempt) != nil {
				break
			}
			e, err := s.kv.Get(ctx, key)
			if errors.Is(err, jetstream.ErrKeyNotFound) || (err == nil && string(e.Value()) != sess.ID) {
				break // not this session's: nothing to keep alive
			}
			if err != nil {
				return fmt.Errorf("route %s: %w", key, err)
			}
			if _, err = s.write(ctx, key, []byte(sess.ID), e.Revision(), ttl); !errors.Is(err, errRevision) {
				if err != nil {
					return fmt.Errorf("route %s: %w", key, err)
				}
				break
			}
		}
	}
	return nil
}

// releaseRoutes removes the route (or pin) keys a session holds; errors
// are logged, since a key of a session that is not open is taken over by
// the next create anyway.
func (s *Store) releaseRoutes(ctx context.Context, sess *Session) {
	for _, key := range claimKeys(sess) {
		e, err := s.kv.Get(ctx, key)
		if err != nil || string(e.Value()) != sess.ID {
			continue // already gone, or taken by a newer session
		}
		if err := s.purge(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
			s.log.Warn("cannot release route key", "key", key, "error", err)
		}
	}
}

// Update changes an open session by p. A closed (or expired) session is
// ErrClosed: it never reopens.
func (s *Store) Update(ctx context.Context, id string, p Patch) (Session, error) {
	return s.change(ctx, id, false, func(sess *Session, now time.Time) error {
		if !sess.Open(now) {
			return fmt.Errorf("%w: it is %s", ErrClosed, closedWhy(sess.At(now)))
		}
		return p.apply(sess, now)
	})
}

func closedWhy(s Session) string {
	if s.ClosedReason != nil {
		return "closed (" + *s.ClosedReason + ")"
	}
	return "closed"
}

// RecordCall counts a call connected in session id at `at`: the call
// count and last call, the idle expiry, and the session closed once it
// reaches maxCalls. Deciders call it after answering, never before: the
// call path does not wait on storage.
func (s *Store) RecordCall(ctx context.Context, id string, at time.Time) (Session, error) {
	return s.RecordCalls(ctx, id, 1, at)
}

// RecordCalls is RecordCall for n calls (n >= 1) in one write, the last
// connected at `at`: what a decider writes for calls of one session that
// queued up while an earlier write was under way.
func (s *Store) RecordCalls(ctx context.Context, id string, n int64, at time.Time) (Session, error) {
	if n < 1 {
		return Session{}, invalid("calls", "must be >= 1, got %d", n)
	}
	return s.change(ctx, id, true, func(sess *Session, now time.Time) error {
		sess.CallCount += n
		at := at.UTC()
		if sess.LastCallAt == nil || at.After(*sess.LastCallAt) {
			sess.LastCallAt = &at
		}
		if sess.Status == StatusClosed {
			return nil // a call decided just before it closed: counted only
		}
		sess.UpdatedAt = now
		if sess.TTLMode == TTLIdle && sess.Open(at) {
			sess.expireFrom(*sess.LastCallAt)
		}
		if sess.MaxCalls > 0 && sess.CallCount >= sess.MaxCalls && sess.Open(now) {
			sess.close(now, ClosedMaxCalls)
		}
		return nil
	})
}

// Delete removes a session at once, open or closed: calls stop being
// routed, its route keys are released and it is no longer readable.
func (s *Store) Delete(ctx context.Context, id string) (Session, error) {
	sess, rev, err := s.readSession(ctx, id)
	if err != nil {
		return Session{}, err
	}
	if err := s.purge(ctx, sessionKey(id)); err != nil {
		return Session{}, fmt.Errorf("delete session %s: %w", id, err)
	}
	s.idx.removeSession(id, rev)
	s.releaseRoutes(ctx, &sess)
	return sess.At(time.Now()), nil
}
