package session

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Paging of lists.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Scope limits what a caller sees to some sub-accounts; nil sees all.
// Sessions without a sub-account are seen only by an unlimited scope.
type Scope []string

// Allows reports whether the scope covers subAccount.
func (sc Scope) Allows(subAccount string) bool {
	return sc == nil || (subAccount != "" && slices.Contains(sc, subAccount))
}

// SessionFilter selects sessions for List. Empty fields select all.
type SessionFilter struct {
	Scope         Scope
	SubAccountID  string
	VirtualNumber string // +digits
	Participant   string // +digits
	Ref           string
	PIN           string
	// Status is "open" (the default), "closed" or "all".
	Status string
}

// Page asks for one page of a list: at most Limit items (0: DefaultLimit)
// after Cursor (from the previous page's NextCursor; "" for the first).
type Page struct {
	Limit  int
	Cursor string
}

func (p Page) limit() (int, error) {
	switch {
	case p.Limit == 0:
		return DefaultLimit, nil
	case p.Limit < 1 || p.Limit > MaxLimit:
		return 0, invalid("limit", "must be from 1 to %d", MaxLimit)
	}
	return p.Limit, nil
}

// sessionCursor orders sessions by creation, then id.
func sessionCursor(s *Session) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(s.CreatedAt.UnixNano(), 10) + "." + s.ID))
}

func parseSessionCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		at, id, ok := strings.Cut(string(b), ".")
		if n, perr := strconv.ParseInt(at, 10, 64); ok && perr == nil {
			return n, id, nil
		}
	}
	return 0, "", invalid("cursor", "not a cursor this API gave")
}

// ListSessions returns a page of the sessions f selects as they stand at
// now, oldest first, and the cursor of the next page ("" after the last).
// It reads the index: a session created a moment ago on another machine
// may not be listed yet.
func (s *Store) ListSessions(f SessionFilter, p Page, now time.Time) ([]Session, string, error) {
	limit, err := p.limit()
	if err != nil {
		return nil, "", err
	}
	var afterAt int64
	var afterID string
	if p.Cursor != "" {
		if afterAt, afterID, err = parseSessionCursor(p.Cursor); err != nil {
			return nil, "", err
		}
	}
	switch f.Status {
	case "":
		f.Status = StatusOpen
	case StatusOpen, StatusClosed, "all":
	default:
		return nil, "", invalid("status", "%q: want open, closed or all", f.Status)
	}
	x := s.idx
	x.mu.RLock()
	var out []*Session
	for _, e := range x.sessions {
		v := e.v
		switch {
		case !f.Scope.Allows(v.SubAccountID),
			f.SubAccountID != "" && v.SubAccountID != f.SubAccountID,
			f.VirtualNumber != "" && v.VirtualNumber != f.VirtualNumber,
			f.Participant != "" && v.Participants[0] != f.Participant && v.Participants[1] != f.Participant,
			f.Ref != "" && v.Ref != f.Ref,
			f.PIN != "" && v.PIN != f.PIN,
			f.Status == StatusOpen && !v.Open(now),
			f.Status == StatusClosed && v.Open(now):
			continue
		}
		if p.Cursor != "" {
			at := v.CreatedAt.UnixNano()
			if at < afterAt || (at == afterAt && v.ID <= afterID) {
				continue
			}
		}
		out = append(out, v)
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Session) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = sessionCursor(out[limit-1])
	}
	list := make([]Session, len(out))
	for i, v := range out {
		list[i] = v.At(now)
	}
	return list, next, nil
}

// NumberFilter selects numbers for ListNumbers. Empty fields select all.
type NumberFilter struct {
	Scope        Scope
	SubAccountID string
	Status       string
}

// NumberView is a number of the pool with its open sessions counted.
type NumberView struct {
	Number
	OpenSessions int `json:"openSessions"`
}

// MarshalJSON shows the number with "flow": null when it has none, as
// its outOfSession.
func (v NumberView) MarshalJSON() ([]byte, error) {
	type plain NumberView // without this method
	var flow *string
	if v.Flow != "" {
		flow = &v.Flow
	}
	return json.Marshal(struct {
		plain
		Flow *string `json:"flow"`
	}{plain(v), flow})
}

// ListNumbers returns a page of the pool's numbers f selects, in order of
// their digits, and the cursor of the next page ("" after the last).
func (s *Store) ListNumbers(f NumberFilter, p Page, now time.Time) ([]NumberView, string, error) {
	limit, err := p.limit()
	if err != nil {
		return nil, "", err
	}
	after := ""
	if p.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(p.Cursor)
		if err != nil || len(b) == 0 || b[0] != '+' {
			return nil, "", invalid("cursor", "not a cursor this API gave")
		}
		after = string(b)
	}
	if f.Status != "" && !validStatus(f.Status) {
		return nil, "", invalid("status", "%q: want one of %v", f.Status, NumberStatuses)
	}
	x := s.idx
	x.mu.RLock()
	var out []NumberView
	for number, e := range x.numbers {
		n := e.v
		if !f.Scope.Allows(n.SubAccountID) || (f.SubAccountID != "" && n.SubAccountID != f.SubAccountID) ||
			(f.Status != "" && n.Status != f.Status) || (after != "" && number <= after) {
			continue
		}
		out = append(out, NumberView{Number: *n, OpenSessions: x.openCount(number, now)})
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b NumberView) int { return strings.Compare(a.Number.Number, b.Number.Number) })
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(out[limit-1].Number.Number))
	}
	return out, next, nil
}

// PoolStats counts the numbers of each sub-account by status, for metrics.
func (s *Store) PoolStats() map[string]map[string]int {
	x := s.idx
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := map[string]map[string]int{}
	for _, e := range x.numbers {
		m := out[e.v.SubAccountID]
		if m == nil {
			m = map[string]int{}
			out[e.v.SubAccountID] = m
		}
		m[e.v.Status]++
	}
	return out
}
