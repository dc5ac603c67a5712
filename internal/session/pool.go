package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// readNumber reads a pool number and its revision from the bucket.
func (s *Store) readNumber(ctx context.Context, number string) (Number, uint64, error) {
	e, err := s.kv.Get(ctx, numberKey(number))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Number{}, 0, ErrNumberNotFound
	}
	if err != nil {
		return Number{}, 0, fmt.Errorf("read number %s: %w", wire.Masked(number), err)
	}
	var n Number
	if err := json.Unmarshal(e.Value(), &n); err != nil {
		return Number{}, 0, fmt.Errorf("decode number %s: %w", wire.Masked(number), err)
	}
	return n, e.Revision(), nil
}

// changeNumber reads a number (absent: create says whether to start a new
// one), lets f change it (f reports whether anything changed), and writes
// it over the revision read, retrying when someone wrote it meanwhile. It
// returns the number before (nil when new) and after.
func (s *Store) changeNumber(ctx context.Context, number string, create bool, f func(n *Number, now time.Time) (bool, error)) (before, after *Number, err error) {
	for attempt := range maxAttempts {
		if pause(ctx, attempt) != nil {
			break
		}
		n, rev, err := s.readNumber(ctx, number)
		switch {
		case errors.Is(err, ErrNumberNotFound) && create:
			n = Number{Number: number}
		case err != nil:
			return nil, nil, err
		default:
			b := n
			before = &b
		}
		now := time.Now().UTC()
		changed, err := f(&n, now)
		if err != nil || !changed {
			return before, &n, err
		}
		data, err := json.Marshal(&n)
		if err != nil {
			return nil, nil, fmt.Errorf("encode number: %w", err)
		}
		newRev, err := s.write(ctx, numberKey(number), data, rev, 0)
		if errors.Is(err, errRevision) {
			before = nil
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("store number %s: %w", wire.Masked(number), err)
		}
		s.idx.putNumber(&n, newRev)
		return before, &n, nil
	}
	return nil, nil, fmt.Errorf("store number %s: %w after %d attempts", wire.Masked(number), errRevision, maxAttempts)
}

// PutNumber registers a number in the pool or updates it (fields r leaves
// nil are kept), within scope. It returns the number, whether it is new,
// and what it was before (nil when new). A number of a sub-account out of
// scope is ErrNumberNotFound; one with open sessions cannot move to
// another sub-account (ErrNumberInUse). A flow attached must exist within
// scope and be the number's sub-account's or have none (ErrInvalid naming
// flow), also when the number moves to another sub-account.
func (s *Store) PutNumber(ctx context.Context, number string, r NumberRequest, scope Scope) (NumberView, *Number, error) {
	vn, err := wire.CleanNumber(number)
	if err != nil {
		return NumberView{}, nil, invalid("number", "%q is not a phone number (8 to 15 digits, optional +)", number)
	}
	if r.SubAccountID != nil && !scope.Allows(*r.SubAccountID) {
		return NumberView{}, nil, fmt.Errorf("%w: subAccountId: %q is not one of this token's sub-accounts", ErrInvalid, *r.SubAccountID)
	}
	before, after, err := s.changeNumber(ctx, vn, true, func(n *Number, now time.Time) (bool, error) {
		if n.SubAccountID != "" && !scope.Allows(n.SubAccountID) {
			return false, ErrNumberNotFound
		}
		if r.SubAccountID != nil && n.SubAccountID != "" && *r.SubAccountID != n.SubAccountID && s.idx.openSessions(vn, now) > 0 {
			return false, fmt.Errorf("%w: it cannot move to another sub-account until they close", ErrNumberInUse)
		}
		if err := r.apply(n, now); err != nil {
			return true, err
		}
		if n.Flow != "" && (r.Flow != nil || r.SubAccountID != nil) {
			return true, s.checkAttach(ctx, "flow", n.Flow, n.SubAccountID, scope)
		}
		return true, nil
	})
	if err != nil {
		return NumberView{}, nil, err
	}
	return NumberView{Number: *after, OpenSessions: s.idx.openSessions(vn, time.Now())}, before, nil
}

// GetNumber reads a pool number within scope from the bucket, with its
// open sessions counted.
func (s *Store) GetNumber(ctx context.Context, number string, scope Scope) (NumberView, error) {
	vn, err := wire.CleanNumber(number)
	if err != nil {
		return NumberView{}, ErrNumberNotFound
	}
	n, _, err := s.readNumber(ctx, vn)
	if err != nil {
		return NumberView{}, err
	}
	if !scope.Allows(n.SubAccountID) {
		return NumberView{}, ErrNumberNotFound
	}
	return NumberView{Number: n, OpenSessions: s.idx.openSessions(vn, time.Now())}, nil
}

// DeleteNumber removes a number from the pool, within scope. While
// sessions are open on it, it is ErrNumberInUse unless force, which closes
// them first. It returns the number removed and the sessions it closed.
func (s *Store) DeleteNumber(ctx context.Context, number string, force bool, scope Scope) (Number, []Session, error) {
	vn, err := wire.CleanNumber(number)
	if err != nil {
		return Number{}, nil, ErrNumberNotFound
	}
	n, rev, err := s.readNumber(ctx, vn)
	if err != nil {
		return Number{}, nil, err
	}
	if !scope.Allows(n.SubAccountID) {
		return Number{}, nil, ErrNumberNotFound
	}
	open := s.idx.openOn(vn, time.Now())
	if len(open) > 0 && !force {
		return Number{}, nil, fmt.Errorf("%w: %d open; close them first, or remove it with force", ErrNumberInUse, len(open))
	}
	var closed []Session
	for _, o := range open {
		c, err := s.Update(ctx, o.ID, Patch{Close: true})
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return Number{}, closed, err
		}
		closed = append(closed, c)
	}
	if err := s.purge(ctx, numberKey(vn), jetstream.LastRevision(rev)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return Number{}, closed, fmt.Errorf("remove number %s: it changed meanwhile; try again", wire.Masked(vn))
		}
		return Number{}, closed, fmt.Errorf("remove number %s: %w", wire.Masked(vn), err)
	}
	s.idx.removeNumber(vn, rev)
	return n, closed, nil
}

// ApplyPoolUpdate applies an 8x8 VIRTUAL_NUMBER_UPDATE to the pool of its
// sub-account: each number listed joins it (or moves to it) with its
// status, country and range; for a SNAPSHOT, every number of the
// sub-account not listed becomes Inactive. An update older than what a
// number holds (by updatedTimestamp) changes nothing, so updates may be
// applied in any order and more than once. at is when 8x8 sent it: a
// snapshot is as new as at or its newest number, whichever is later (a
// number 8x8 added after the listed ones last changed, and dropped since,
// is deactivated by it). It returns what changed; on error, what changed
// before it.
func (s *Store) ApplyPoolUpdate(ctx context.Context, u PoolUpdate, at time.Time) ([]NumberChange, error) {
	if err := ValidSubAccount(u.SubAccountID); err != nil {
		return nil, fmt.Errorf("%w: subAccountId: %v", ErrInvalid, err)
	}
	var changes []NumberChange
	listed := map[string]bool{}
	snapshotAt := at.UTC()
	var errs []error
	for i, nu := range u.VirtualNumbers {
		vn, err := wire.CleanNumber(nu.MSISDN)
		if err != nil {
			errs = append(errs, invalid(fmt.Sprintf("virtualNumbers[%d].msisdn", i), "%q is not a phone number", nu.MSISDN))
			continue
		}
		listed[vn] = true
		ts := nu.UpdatedTimestamp.UTC()
		if ts.IsZero() {
			ts = at.UTC()
		}
		if ts.After(snapshotAt) {
			snapshotAt = ts
		}
		before, after, err := s.changeNumber(ctx, vn, true, func(n *Number, now time.Time) (bool, error) {
			if n.StatusAt != nil && ts.Before(*n.StatusAt) {
				return false, nil // older than what the number holds
			}
			old := *n
			n.SubAccountID = u.SubAccountID
			if nu.OperationalStatus != "" {
				n.Status = nu.OperationalStatus
			}
			if n.Status == "" {
				n.Status = NumberActive
			}
			if nu.CountryCode != "" {
				n.CountryCode = nu.CountryCode
			}
			if nu.ReferenceID != "" {
				n.ReferenceID = nu.ReferenceID
			}
			n.StatusAt = &ts
			if n.CreatedAt.IsZero() {
				n.CreatedAt = now
			}
			if sameNumber(old, *n) {
				return false, nil
			}
			n.UpdatedAt = now
			return true, nil
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if before == nil || !sameNumber(*before, *after) {
			changes = append(changes, NumberChange{Before: before, After: after})
		}
	}
	if u.UpdateEventType == PoolSnapshot {
		if snapshotAt.IsZero() {
			snapshotAt = at.UTC()
		}
		for _, vn := range s.idx.numbersOf(u.SubAccountID) {
			if listed[vn] {
				continue
			}
			before, after, err := s.changeNumber(ctx, vn, false, func(n *Number, now time.Time) (bool, error) {
				if n.SubAccountID != u.SubAccountID || n.Status == NumberInactive || (n.StatusAt != nil && snapshotAt.Before(*n.StatusAt)) {
					return false, nil
				}
				n.Status, n.StatusAt, n.UpdatedAt = NumberInactive, &snapshotAt, now
				return true, nil
			})
			switch {
			case errors.Is(err, ErrNumberNotFound):
			case err != nil:
				errs = append(errs, err)
			case before != nil && before.Status != after.Status:
				changes = append(changes, NumberChange{Before: before, After: after})
			}
		}
	}
	return changes, errors.Join(errs...)
}

// sameNumber reports whether two states of a number hold the same values
// (times aside).
func sameNumber(a, b Number) bool {
	return a.SubAccountID == b.SubAccountID && a.Status == b.Status && a.CountryCode == b.CountryCode &&
		a.ReferenceID == b.ReferenceID && sameTime(a.StatusAt, b.StatusAt)
}

// numbersOf returns the numbers of a sub-account in the index.
func (x *index) numbersOf(subAccount string) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []string
	for number, e := range x.numbers {
		if e.v.SubAccountID == subAccount {
			out = append(out, number)
		}
	}
	return out
}

// PutSubAccount sets a sub-account's out-of-session policy (nil removes
// it), within scope, keeping its other settings. It returns the settings
// and whether they are new.
func (s *Store) PutSubAccount(ctx context.Context, id string, policy *Policy, scope Scope) (SubAccount, bool, error) {
	c, err := s.UpdateSubAccount(ctx, id, SubAccountRequest{OutOfSession: policy, ClearOutOfSession: policy == nil}, scope)
	return c.After, err == nil && c.Before == nil, err
}

// UpdateSubAccount changes a sub-account's settings by r (fields r leaves
// nil are kept), within scope (ErrNotFound outside it). A default flow
// must exist within scope and be the sub-account's or have none
// (ErrInvalid naming defaultFlow). It returns the settings before (nil
// when never set) and after.
func (s *Store) UpdateSubAccount(ctx context.Context, id string, r SubAccountRequest, scope Scope) (SubAccountChange, error) {
	if err := ValidSubAccount(id); err != nil {
		return SubAccountChange{}, fmt.Errorf("%w: subAccountId: %v", ErrInvalid, err)
	}
	if !scope.Allows(id) {
		return SubAccountChange{}, ErrNotFound
	}
	var policy *Policy
	if r.OutOfSession != nil {
		p := *r.OutOfSession
		if err := p.Validate("outOfSession"); err != nil {
			return SubAccountChange{}, err
		}
		policy = &p
	}
	if r.DefaultFlow != nil && *r.DefaultFlow != "" {
		if !ValidFlowName(*r.DefaultFlow) {
			return SubAccountChange{}, invalid("defaultFlow", "no flow %q", *r.DefaultFlow)
		}
		if err := s.checkAttach(ctx, "defaultFlow", *r.DefaultFlow, id, scope); err != nil {
			return SubAccountChange{}, err
		}
	}
	return s.changeSubAccount(ctx, id, func(a *SubAccount) bool {
		switch {
		case r.ClearOutOfSession:
			a.OutOfSession = nil
		case policy != nil:
			a.OutOfSession = policy
		}
		if r.DefaultFlow != nil {
			a.DefaultFlow = *r.DefaultFlow
		}
		return true
	})
}

// changeSubAccount reads a sub-account's settings, lets f change them (f
// reports whether it did), and writes them over the revision read,
// retrying when someone wrote them meanwhile.
func (s *Store) changeSubAccount(ctx context.Context, id string, f func(a *SubAccount) bool) (SubAccountChange, error) {
	key := subAccountKey(id)
	for attempt := range maxAttempts {
		if pause(ctx, attempt) != nil {
			break
		}
		var rev uint64
		var before *SubAccount
		a := SubAccount{SubAccountID: id}
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return SubAccountChange{}, fmt.Errorf("read sub-account: %w", err)
		default:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &a); err != nil {
				return SubAccountChange{}, fmt.Errorf("decode sub-account: %w", err)
			}
			b := a
			before = &b
		}
		if !f(&a) {
			return SubAccountChange{Before: before, After: a}, nil
		}
		a.UpdatedAt = time.Now().UTC()
		data, err := json.Marshal(&a)
		if err != nil {
			return SubAccountChange{}, err
		}
		newRev, err := s.write(ctx, key, data, rev, 0)
		if errors.Is(err, errRevision) {
			continue
		}
		if err != nil {
			return SubAccountChange{}, fmt.Errorf("store sub-account: %w", err)
		}
		s.idx.putAccount(&a, newRev)
		return SubAccountChange{Before: before, After: a}, nil
	}
	return SubAccountChange{}, fmt.Errorf("store sub-account: %w after %d attempts", errRevision, maxAttempts)
}

// GetSubAccount reads a sub-account's settings within scope; one never set
// reads with no policy.
func (s *Store) GetSubAccount(ctx context.Context, id string, scope Scope) (SubAccount, error) {
	if ValidSubAccount(id) != nil || !scope.Allows(id) {
		return SubAccount{}, ErrNotFound
	}
	e, err := s.kv.Get(ctx, subAccountKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return SubAccount{SubAccountID: id}, nil
	}
	if err != nil {
		return SubAccount{}, fmt.Errorf("read sub-account: %w", err)
	}
	var a SubAccount
	if err := json.Unmarshal(e.Value(), &a); err != nil {
		return SubAccount{}, fmt.Errorf("decode sub-account: %w", err)
	}
	return a, nil
}
