package session

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// route is a (virtual number, participant) pair, both as +digits.
type route struct{ virtual, participant string }

// index is the in-memory copy of the bucket that routing reads.
type index struct {
	mu      sync.RWMutex
	byID    map[string]*Session
	byRoute map[route]*Session
	// deleted remembers sessions removed here, so that the watcher
	// delivering their creation late cannot bring them back: session keys
	// are never rewritten, so any put for a deleted id is stale.
	deleted map[string]time.Time
}

// tombstoneTTL is how long a deleted id is remembered; the watcher delivers
// well within it.
const tombstoneTTL = 10 * time.Minute

func newIndex() *index {
	return &index{byID: make(map[string]*Session), byRoute: make(map[route]*Session), deleted: make(map[string]time.Time)}
}

func (x *index) put(s *Session) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, gone := x.deleted[s.ID]; gone {
		return
	}
	if old, ok := x.byID[s.ID]; ok {
		x.unlink(old)
	}
	x.byID[s.ID] = s
	for _, p := range s.Participants {
		x.byRoute[route{s.VirtualNumber, p}] = s
	}
}

func (x *index) remove(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.deleted[id] = time.Now()
	if old, ok := x.byID[id]; ok {
		x.unlink(old)
	}
}

// unlink removes s; routes already taken over by a newer session stay.
func (x *index) unlink(s *Session) {
	delete(x.byID, s.ID)
	for _, p := range s.Participants {
		r := route{s.VirtualNumber, p}
		if x.byRoute[r] == s {
			delete(x.byRoute, r)
		}
	}
}

func (x *index) lookup(virtual, caller string, now time.Time) (*Session, bool) {
	x.mu.RLock()
	s, ok := x.byRoute[route{virtual, caller}]
	x.mu.RUnlock()
	if !ok || !s.Open(now) {
		return nil, false
	}
	return s, true
}

func (x *index) list(virtual string, now time.Time) []Session {
	x.mu.RLock()
	out := []Session{}
	for _, s := range x.byID {
		if s.VirtualNumber == virtual && s.Open(now) {
			out = append(out, *s)
		}
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b Session) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func (x *index) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byID)
}

// prune drops expired sessions whose expiry marker the watcher has not
// delivered (yet), so that memory stays bounded by the open sessions.
func (x *index) prune(now time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, s := range x.byID {
		if !s.Open(now) {
			x.unlink(s)
		}
	}
	for id, at := range x.deleted {
		if now.Sub(at) > tombstoneTTL {
			delete(x.deleted, id)
		}
	}
}
