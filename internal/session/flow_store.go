package session

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Flows in the bucket:
//
//	f.<id>             the flow's current version, rewritten by each PUT
//	                   over the revision read (so versions count up by
//	                   one, with no gap and no twin, across processes);
//	                   once deleted, a tombstone that keeps the last
//	                   version number for FlowRetention, so that a flow
//	                   made again under the same id goes on counting
//	fv.<id>.<version>  an earlier version, written once when it is
//	                   replaced (or deleted), before the new version, with
//	                   a TTL of FlowRetention: calls already in it finish
//	                   on it, then JetStream forgets it
//
// Both are watched into the index, so deciders read flows from memory
// (CurrentFlow, FlowVersion, FlowFor). The watch delivers changes in the
// order they were stored, so an index never holds a version without the
// one it replaced.

func flowKey(id string) string { return "f." + id }

func flowVersionKey(id string, version uint64) string {
	return "fv." + id + "." + strconv.FormatUint(version, 10)
}

// flowRef names one version of a flow.
type flowRef struct {
	id      string
	version uint64
}

// retainedFlow is an earlier version of a flow, kept until.
type retainedFlow struct {
	v     *Flow
	rev   uint64
	until time.Time
}

// storedFlow is a flow as the bucket holds it: at f.<id>, a flow or the
// tombstone of a deleted one; at fv.<id>.<version>, a flow.
type storedFlow struct {
	Flow
	Deleted bool `json:"deleted,omitempty"`
}

// applyFlow applies a watched change of a flow key.
func (s *Store) applyFlow(e jetstream.KeyValueEntry) error {
	key, rev := e.Key(), e.Revision()
	del := e.Operation() != jetstream.KeyValuePut
	if id, ok := strings.CutPrefix(key, "f."); ok {
		if del {
			s.idx.removeFlow(id, rev)
			return nil
		}
		var v storedFlow
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			return err
		}
		switch {
		case v.ID != id:
			return fmt.Errorf("flow %q stored under %s", v.ID, key)
		case v.Deleted:
			s.idx.removeFlow(id, rev)
			return nil
		}
		// The engine relies on every flow of the index being valid.
		if err := v.Flow.Validate(); err != nil {
			return err
		}
		s.idx.putFlow(&v.Flow, rev)
		return nil
	}
	rest := strings.TrimPrefix(key, "fv.")
	dot := strings.LastIndexByte(rest, '.')
	if dot < 0 {
		return fmt.Errorf("not a flow version key")
	}
	ref := flowRef{id: rest[:dot]}
	var err error
	if ref.version, err = strconv.ParseUint(rest[dot+1:], 10, 64); err != nil {
		return fmt.Errorf("not a flow version key: %w", err)
	}
	if del {
		s.idx.removeRetained(ref, rev)
		return nil
	}
	var v storedFlow
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return err
	}
	if v.ID != ref.id || v.Version != ref.version {
		return fmt.Errorf("flow %q version %d stored under %s", v.ID, v.Version, key)
	}
	if err := v.Flow.Validate(); err != nil {
		return err
	}
	s.idx.putRetained(&v.Flow, rev, e.Created().Add(s.cfg.FlowRetention))
	return nil
}

func (x *index) putFlow(f *Flow, rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	putEntry(x, x.flows, f.ID, flowKey(f.ID), f, rev)
}

func (x *index) removeFlow(id string, rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	removeEntry(x, x.flows, id, flowKey(id), rev)
}

func (x *index) putRetained(f *Flow, rev uint64, until time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	ref := flowRef{f.ID, f.Version}
	if old, ok := x.retained[ref]; ok && rev != 0 && rev <= old.rev {
		return
	}
	x.retained[ref] = retainedFlow{f, rev, until}
}

func (x *index) removeRetained(ref flowRef, rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.retained[ref]; ok && old.rev <= rev {
		delete(x.retained, ref)
	}
}

// lastRetained is the highest version of flow id the index retains, or 0.
func (x *index) lastRetained(id string) uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var last uint64
	for ref := range x.retained {
		if ref.id == id && ref.version > last {
			last = ref.version
		}
	}
	return last
}

// flowAttachments returns the numbers a flow is attached to and the
// sub-accounts it is the default of, sorted.
func (x *index) flowAttachments(id string) (numbers, accounts []string) {
	x.mu.RLock()
	for number, e := range x.numbers {
		if e.v.Flow == id {
			numbers = append(numbers, number)
		}
	}
	for sub, e := range x.accounts {
		if e.v.DefaultFlow == id {
			accounts = append(accounts, sub)
		}
	}
	x.mu.RUnlock()
	slices.Sort(numbers)
	slices.Sort(accounts)
	return numbers, accounts
}

// CurrentFlow returns the current version of flow id from the in-memory
// index; false when there is no such flow (or it was deleted). The flow
// is valid (Validate passed) and shared: never change it.
func (s *Store) CurrentFlow(id string) (*Flow, bool) {
	x := s.idx
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.flows[id]
	return e.v, ok
}

// FlowVersion returns version of flow id from the in-memory index: the
// current version, or an earlier one within Config.FlowRetention after
// it was replaced or the flow deleted, so that a call finishes on the
// version it started in. False once it is no longer kept (the engine
// restarts the call's flow, or ends the call politely).
func (s *Store) FlowVersion(id string, version uint64) (*Flow, bool) {
	x := s.idx
	x.mu.RLock()
	defer x.mu.RUnlock()
	if e, ok := x.flows[id]; ok && e.v.Version == version {
		return e.v, true
	}
	r, ok := x.retained[flowRef{id, version}]
	return r.v, ok
}

// FlowFor returns the flow a call to virtual (as +digits) of subAccount
// starts in, from the in-memory index: the number's own flow, else the
// default flow of its sub-account (the number's when it is in the pool,
// else the call's); false for none (number masking). A flow of another
// sub-account than the number's is never used.
func (s *Store) FlowFor(virtual, subAccount string) (*Flow, bool) {
	x := s.idx
	x.mu.RLock()
	defer x.mu.RUnlock()
	if e, ok := x.numbers[virtual]; ok {
		subAccount = e.v.SubAccountID
		if id := e.v.Flow; id != "" {
			if f, ok := x.flows[id]; ok && f.v.fitsSubAccount(subAccount) {
				return f.v, true
			}
		}
	}
	if a, ok := x.accounts[subAccount]; ok && a.v.DefaultFlow != "" {
		if f, ok := x.flows[a.v.DefaultFlow]; ok && f.v.fitsSubAccount(subAccount) {
			return f.v, true
		}
	}
	return nil, false
}

// fitsSubAccount reports whether the flow may run for sub: it is sub's
// or has no sub-account.
func (f *Flow) fitsSubAccount(sub string) bool {
	return f.SubAccountID == "" || f.SubAccountID == sub
}

// readFlow reads the head of flow id (a flow or a tombstone) and its
// revision from the bucket.
func (s *Store) readFlow(ctx context.Context, id string) (storedFlow, uint64, error) {
	e, err := s.kv.Get(ctx, flowKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return storedFlow{}, 0, ErrFlowNotFound
	}
	if err != nil {
		return storedFlow{}, 0, fmt.Errorf("read flow %s: %w", id, err)
	}
	var v storedFlow
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return storedFlow{}, 0, fmt.Errorf("decode flow %s: %w", id, err)
	}
	return v, e.Revision(), nil
}

// GetFlow reads the current version of flow id within scope from the
// bucket (not the index, so that a flow just stored elsewhere is found).
// A flow of a sub-account out of scope, or without a sub-account for a
// limited scope, is ErrFlowNotFound.
func (s *Store) GetFlow(ctx context.Context, id string, scope Scope) (Flow, error) {
	if !ValidFlowName(id) {
		return Flow{}, ErrFlowNotFound
	}
	v, _, err := s.readFlow(ctx, id)
	if err != nil {
		return Flow{}, err
	}
	if v.Deleted || !scope.Allows(v.SubAccountID) {
		return Flow{}, ErrFlowNotFound
	}
	return v.Flow, nil
}

// PutFlow validates f (ErrInvalid naming the step and field) and stores
// it as the new current version of flow f.ID, within scope: version 1
// for a new flow (created true), the current version + 1 after. The
// version replaced stays readable through FlowVersion for
// Config.FlowRetention. When f.Version is set, it must be the current
// version (ErrFlowChanged otherwise: someone changed the flow since it was
// read). A flow of a sub-account out of scope is ErrFlowNotFound; f's
// sub-account must be in scope (ErrInvalid naming subAccountId); an
// attached flow cannot move to another sub-account (ErrFlowInUse).
func (s *Store) PutFlow(ctx context.Context, f Flow, scope Scope) (Flow, bool, error) {
	if !ValidFlowName(f.ID) {
		return Flow{}, false, invalid("id", "%q: %s", f.ID, flowNameRule)
	}
	if !scope.Allows(f.SubAccountID) {
		if f.SubAccountID == "" {
			return Flow{}, false, invalid("subAccountId", "required: this token is limited to sub-accounts")
		}
		return Flow{}, false, invalid("subAccountId", "%q is not one of this token's sub-accounts", f.SubAccountID)
	}
	want := f.Version
	f.Version, f.UpdatedAt = 0, time.Time{}
	if err := f.Validate(); err != nil {
		return Flow{}, false, err
	}
	for attempt := range maxAttempts {
		if pause(ctx, attempt) != nil {
			break
		}
		cur, rev, err := s.readFlow(ctx, f.ID)
		if err != nil && !errors.Is(err, ErrFlowNotFound) {
			return Flow{}, false, err
		}
		live := err == nil && !cur.Deleted
		if live && !scope.Allows(cur.SubAccountID) {
			return Flow{}, false, ErrFlowNotFound
		}
		switch {
		case want != 0 && !live:
			return Flow{}, false, fmt.Errorf("%w: version %d is not the current one: the flow does not exist", ErrFlowChanged, want)
		case want != 0 && want != cur.Version:
			return Flow{}, false, fmt.Errorf("%w: version %d is not the current one (%d)", ErrFlowChanged, want, cur.Version)
		}
		next := cur.Version + 1 // a tombstone's too: versions of a flow made again go on counting
		if rev == 0 {
			next = s.idx.lastRetained(f.ID) + 1
		}
		if live {
			if cur.SubAccountID != f.SubAccountID {
				if numbers, accounts := s.idx.flowAttachments(f.ID); len(numbers)+len(accounts) > 0 {
					return Flow{}, false, fmt.Errorf("%w to %s: it cannot move to another sub-account; detach it first", ErrFlowInUse, attachments(numbers, accounts))
				}
			}
			if err := s.retire(ctx, &cur.Flow); err != nil {
				return Flow{}, false, err
			}
		}
		v := f
		v.Version, v.UpdatedAt = next, time.Now().UTC()
		data, err := json.Marshal(storedFlow{Flow: v})
		if err != nil {
			return Flow{}, false, fmt.Errorf("encode flow: %w", err)
		}
		newRev, err := s.write(ctx, flowKey(f.ID), data, rev, 0)
		if errors.Is(err, errRevision) {
			continue
		}
		if err != nil {
			return Flow{}, false, fmt.Errorf("store flow %s: %w", f.ID, err)
		}
		s.idx.putFlow(&v, newRev)
		return v, !live, nil
	}
	return Flow{}, false, fmt.Errorf("%w: store flow %s: %w after %d attempts", ErrFlowChanged, f.ID, errRevision, maxAttempts)
}

// retire keeps version f (being replaced or deleted) at
// fv.<id>.<version> for Config.FlowRetention, in the bucket and in this
// process's index at once. A key already holding the same version (a
// concurrent change retired it too) is left as it is; one holding another
// flow's (an earlier flow of the id, deleted) is replaced.
func (s *Store) retire(ctx context.Context, f *Flow) error {
	key := flowVersionKey(f.ID, f.Version)
	data, err := json.Marshal(storedFlow{Flow: *f})
	if err != nil {
		return fmt.Errorf("encode flow: %w", err)
	}
	ttl := (s.cfg.FlowRetention + time.Second - 1) / time.Second * time.Second
	for attempt := range maxAttempts {
		if pause(ctx, attempt) != nil {
			break
		}
		rev, err := s.write(ctx, key, data, 0, ttl)
		if err == nil {
			s.idx.putRetained(f, rev, time.Now().Add(s.cfg.FlowRetention))
			return nil
		}
		if !errors.Is(err, errRevision) {
			return fmt.Errorf("keep flow %s version %d: %w", f.ID, f.Version, err)
		}
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			continue
		case err != nil:
			return fmt.Errorf("keep flow %s version %d: %w", f.ID, f.Version, err)
		case bytes.Equal(e.Value(), data):
			s.idx.putRetained(f, e.Revision(), e.Created().Add(s.cfg.FlowRetention))
			return nil
		}
		if rev, err = s.write(ctx, key, data, e.Revision(), ttl); err == nil {
			s.idx.putRetained(f, rev, time.Now().Add(s.cfg.FlowRetention))
			return nil
		} else if !errors.Is(err, errRevision) {
			return fmt.Errorf("keep flow %s version %d: %w", f.ID, f.Version, err)
		}
	}
	return fmt.Errorf("keep flow %s version %d: %w after %d attempts", f.ID, f.Version, errRevision, maxAttempts)
}

// FlowDetachment is what a forced DeleteFlow detached: numbers whose flow
// it was, and sub-accounts whose default flow it was.
type FlowDetachment struct {
	Numbers     []NumberChange
	SubAccounts []SubAccountChange
}

// DeleteFlow deletes flow id within scope (ErrFlowNotFound outside it).
// While it is attached to numbers or is the default flow of sub-accounts
// it is ErrFlowInUse, unless force, which detaches it first (those
// numbers and sub-accounts route as without it). Its last version stays
// readable through FlowVersion for Config.FlowRetention, for the calls in
// it. It returns the flow deleted and what was detached (also on error:
// what was detached before it).
func (s *Store) DeleteFlow(ctx context.Context, id string, force bool, scope Scope) (Flow, FlowDetachment, error) {
	var det FlowDetachment
	if _, err := s.GetFlow(ctx, id, scope); err != nil {
		return Flow{}, det, err
	}
	numbers, accounts := s.idx.flowAttachments(id)
	if len(numbers)+len(accounts) > 0 && !force {
		return Flow{}, det, fmt.Errorf("%w to %s; detach it first, or delete it with force", ErrFlowInUse, attachments(numbers, accounts))
	}
	for _, number := range numbers {
		before, after, err := s.changeNumber(ctx, number, false, func(n *Number, now time.Time) (bool, error) {
			if n.Flow != id {
				return false, nil
			}
			n.Flow, n.UpdatedAt = "", now
			return true, nil
		})
		switch {
		case errors.Is(err, ErrNumberNotFound):
		case err != nil:
			return Flow{}, det, err
		case before != nil && before.Flow == id:
			det.Numbers = append(det.Numbers, NumberChange{Before: before, After: after})
		}
	}
	for _, sub := range accounts {
		c, err := s.changeSubAccount(ctx, sub, func(a *SubAccount) bool {
			if a.DefaultFlow != id {
				return false
			}
			a.DefaultFlow = ""
			return true
		})
		if err != nil {
			return Flow{}, det, err
		}
		if c.Before != nil && c.Before.DefaultFlow == id {
			det.SubAccounts = append(det.SubAccounts, c)
		}
	}
	for attempt := range maxAttempts {
		if pause(ctx, attempt) != nil {
			break
		}
		v, rev, err := s.readFlow(ctx, id)
		if errors.Is(err, ErrFlowNotFound) || (err == nil && v.Deleted) {
			return Flow{}, det, ErrFlowNotFound // deleted meanwhile
		}
		if err != nil {
			return Flow{}, det, err
		}
		if err := s.retire(ctx, &v.Flow); err != nil {
			return Flow{}, det, err
		}
		tomb := storedFlow{Flow: Flow{ID: id, SubAccountID: v.SubAccountID, Version: v.Version, UpdatedAt: time.Now().UTC()}, Deleted: true}
		data, err := json.Marshal(tomb)
		if err != nil {
			return Flow{}, det, fmt.Errorf("encode flow: %w", err)
		}
		ttl := (s.cfg.FlowRetention + time.Second - 1) / time.Second * time.Second
		newRev, err := s.write(ctx, flowKey(id), data, rev, ttl)
		if errors.Is(err, errRevision) {
			continue // changed meanwhile: delete what it is now
		}
		if err != nil {
			return Flow{}, det, fmt.Errorf("delete flow %s: %w", id, err)
		}
		s.idx.removeFlow(id, newRev)
		return v.Flow, det, nil
	}
	return Flow{}, det, fmt.Errorf("%w: delete flow %s: %w after %d attempts", ErrFlowChanged, id, errRevision, maxAttempts)
}

// attachments describes where a flow is attached, for errors.
func attachments(numbers, accounts []string) string {
	var parts []string
	if len(numbers) > 0 {
		list := numbers
		if len(list) > 3 {
			list = list[:3]
		}
		s := fmt.Sprintf("%d number(s) (%s", len(numbers), strings.Join(list, ", "))
		if len(numbers) > len(list) {
			s += ", ..."
		}
		parts = append(parts, s+")")
	}
	if len(accounts) > 0 {
		parts = append(parts, fmt.Sprintf("the default of sub-account(s) %s", strings.Join(accounts, ", ")))
	}
	return strings.Join(parts, " and ")
}

// checkAttach checks that flow id may be attached (field names the
// attachment: flow or defaultFlow) to a number or the settings of
// subAccount, within scope: it exists, and is subAccount's or has no
// sub-account. Errors are ErrInvalid naming field.
func (s *Store) checkAttach(ctx context.Context, field, id, subAccount string, scope Scope) error {
	f, err := s.GetFlow(ctx, id, scope)
	switch {
	case errors.Is(err, ErrFlowNotFound):
		return invalid(field, "no flow %q", id)
	case err != nil:
		return err
	case !f.fitsSubAccount(subAccount):
		return invalid(field, "flow %q is sub-account %s's, not %s's", id, f.SubAccountID, subAccount)
	}
	return nil
}

// FlowFilter selects flows for ListFlows. Empty fields select all.
type FlowFilter struct {
	Scope        Scope
	SubAccountID string
}

// ListFlows returns a page of the current flows f selects, in order of
// their ids, and the cursor of the next page ("" after the last). It
// reads the index: a flow stored a moment ago on another machine may not
// be listed yet.
func (s *Store) ListFlows(f FlowFilter, p Page) ([]Flow, string, error) {
	limit, err := p.limit()
	if err != nil {
		return nil, "", err
	}
	after := ""
	if p.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(p.Cursor)
		if err != nil || !ValidFlowName(string(b)) {
			return nil, "", invalid("cursor", "not a cursor this API gave")
		}
		after = string(b)
	}
	x := s.idx
	x.mu.RLock()
	var out []*Flow
	for id, e := range x.flows {
		v := e.v
		if !f.Scope.Allows(v.SubAccountID) || (f.SubAccountID != "" && v.SubAccountID != f.SubAccountID) || (after != "" && id <= after) {
			continue
		}
		out = append(out, v)
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Flow) int { return strings.Compare(a.ID, b.ID) })
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(out[limit-1].ID))
	}
	list := make([]Flow, len(out))
	for i, v := range out {
		list[i] = *v
	}
	return list, next, nil
}
