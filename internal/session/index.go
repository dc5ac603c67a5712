package session

import (
	"cmp"
	"iter"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callflow/callflow/wire"
)

// route is a (virtual number, participant) pair, both as +digits.
type route struct{ virtual, participant string }

// entry is a document of the bucket as the index holds it: never changed
// in place (readers keep the pointer), replaced by a newer revision.
type entry[T any] struct {
	v   *T
	rev uint64
}

// index is the in-memory copy of the bucket that routing, the pool and the
// lists read: sessions (open, and closed ones until the bucket forgets
// them), numbers and sub-account settings.
type index struct {
	mu       sync.RWMutex
	sessions map[string]entry[Session]
	// byRoute holds the sessions without a pin by route, byPIN those with
	// one by pin.
	byRoute map[route]*Session
	byPIN   map[pinRoute]*Session
	// onNumber holds the sessions stored open on each number.
	onNumber map[string]map[string]*Session
	numbers  map[string]entry[Number]
	// slots holds a slot for each registered number, pools the same
	// slots by sub-account, so that an allocation scans its own
	// sub-account's pool only, with each number's count of open sessions
	// at hand.
	slots    map[string]*poolSlot
	pools    map[string]map[string]*poolSlot
	accounts map[string]entry[SubAccount]
	// flows holds the current version of each flow (not deleted);
	// retained the earlier versions kept for the calls still in them.
	flows    map[string]entry[Flow]
	retained map[flowRef]retainedFlow
	// gone remembers the last revision of keys removed through this
	// process, so that the watcher delivering an older put late cannot
	// bring them back (a newer put, a number registered again, can).
	gone map[string]goneKey
}

// poolSlot is a registered number as allocation scans it: the number,
// and a cache of its count of open sessions (allocation orders the whole
// pool by it on every create). The cache is dropped (until 0) when a
// session on the number is stored or removed, under mu's write lock, and
// is good until the first of its open sessions expires; allocations fill
// it under mu's read lock, hence the atomics (readers that fill it at
// once store the same values).
type poolSlot struct {
	n     *Number
	open  atomic.Int64
	until atomic.Int64 // Unix nanoseconds; 0: not known
}

type goneKey struct {
	rev uint64
	at  time.Time
}

// goneTTL is how long a removed key is remembered; the watcher delivers
// well within it.
const goneTTL = 10 * time.Minute

func newIndex() *index {
	return &index{
		sessions: make(map[string]entry[Session]),
		byRoute:  make(map[route]*Session),
		byPIN:    make(map[pinRoute]*Session),
		flows:    make(map[string]entry[Flow]),
		retained: make(map[flowRef]retainedFlow),
		onNumber: make(map[string]map[string]*Session),
		numbers:  make(map[string]entry[Number]),
		slots:    make(map[string]*poolSlot),
		pools:    make(map[string]map[string]*poolSlot),
		accounts: make(map[string]entry[SubAccount]),
		gone:     make(map[string]goneKey),
	}
}

// stale reports whether a put of key at rev is older than what the index
// holds or removed. Called with mu held.
func (x *index) stale(key string, rev, held uint64) bool {
	if g, ok := x.gone[key]; ok {
		if rev <= g.rev {
			return true
		}
		delete(x.gone, key)
	}
	return rev != 0 && rev <= held
}

func (x *index) putSession(s *Session, rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	old, ok := x.sessions[s.ID]
	if x.stale(sessionKey(s.ID), rev, old.rev) {
		return
	}
	if ok {
		x.unlinkSession(old.v)
	}
	x.sessions[s.ID] = entry[Session]{s, rev}
	if s.Status == StatusClosed {
		return
	}
	if s.PIN != "" {
		x.byPIN[pinRoute{s.VirtualNumber, s.PIN}] = s
	} else {
		for _, p := range s.Participants {
			x.byRoute[route{s.VirtualNumber, p}] = s
		}
	}
	x.forgetCount(s.VirtualNumber)
	on := x.onNumber[s.VirtualNumber]
	if on == nil {
		on = make(map[string]*Session)
		x.onNumber[s.VirtualNumber] = on
	}
	on[s.ID] = s
}

// removeSession drops a session; rev is the last revision known of it.
func (x *index) removeSession(id string, rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.sessions[id]; ok {
		x.unlinkSession(old.v)
	}
	removeEntry(x, x.sessions, id, sessionKey(id), rev)
}

// unlinkSession removes s from the routes and the per-number sets; routes
// already taken over by a newer session stay. Called with mu held.
func (x *index) unlinkSession(s *Session) {
	if s.PIN != "" {
		if r := (pinRoute{s.VirtualNumber, s.PIN}); x.byPIN[r] == s {
			delete(x.byPIN, r)
		}
	}
	for _, p := range s.Participants {
		r := route{s.VirtualNumber, p}
		if x.byRoute[r] == s {
			delete(x.byRoute, r)
		}
	}
	if on := x.onNumber[s.VirtualNumber]; on != nil && on[s.ID] == s {
		x.forgetCount(s.VirtualNumber)
		delete(on, s.ID)
		if len(on) == 0 {
			delete(x.onNumber, s.VirtualNumber)
		}
	}
}

// lookup returns the session open at now on virtual with caller as a
// participant, if it admits calls of subAccount.
func (x *index) lookup(virtual, caller, subAccount string, now time.Time) (*Session, bool) {
	x.mu.RLock()
	s, ok := x.byRoute[route{virtual, caller}]
	x.mu.RUnlock()
	if !ok || !s.Open(now) || !s.Admits(subAccount) {
		return nil, false
	}
	return s, true
}

func (x *index) session(id string) (*Session, uint64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.sessions[id]
	return e.v, e.rev, ok
}

// openOn returns the sessions open at now on a number, oldest first.
func (x *index) openOn(virtual string, now time.Time) []*Session {
	x.mu.RLock()
	var out []*Session
	for _, s := range x.onNumber[virtual] {
		if s.Open(now) {
			out = append(out, s)
		}
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Session) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out
}

// openCount is the number of sessions open at now on a number. Called
// with mu held (read or write).
func (x *index) openCount(virtual string, now time.Time) int {
	return x.slotCount(x.slots[virtual], virtual, now)
}

// slotCount is openCount of the number of slot (nil for a number not
// registered, whose count is not cached).
func (x *index) slotCount(slot *poolSlot, virtual string, now time.Time) int {
	at := now.UnixNano()
	if slot != nil && at < slot.until.Load() {
		return int(slot.open.Load())
	}
	open, until := 0, int64(math.MaxInt64)
	for _, s := range x.onNumber[virtual] {
		if s.Open(now) {
			open++
			if s.ExpiresAt != nil {
				until = min(until, s.ExpiresAt.UnixNano())
			}
		}
	}
	if slot != nil {
		slot.open.Store(int64(open))
		slot.until.Store(until)
	}
	return open
}

// forgetCount drops a number's cached count of open sessions. Called
// with mu held for writing.
func (x *index) forgetCount(virtual string) {
	if slot := x.slots[virtual]; slot != nil {
		slot.until.Store(0)
	}
}

// OpenSessions is the number of sessions open at now on a number.
func (x *index) openSessions(virtual string, now time.Time) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.openCount(virtual, now)
}

// candidates returns the numbers a new session of participants in
// subAccount may be allocated: Active, of the country when one is given,
// on which neither participant routes yet (for a session with a pin,
// pinned: on which its pin, when already chosen, is free); least used
// first. The pool is ordered lazily and a number checked for the
// participants only when its turn comes: an allocation nearly always
// takes the first, and a create costs one pass over the pool.
func (x *index) candidates(subAccount, country string, participants [2]string, pinned bool, pin string, now time.Time) iter.Seq[string] {
	x.mu.RLock()
	pool := x.pools[subAccount]
	cs := make([]candidate, 0, len(pool))
	for number, slot := range pool {
		n := slot.n
		if n.Status != NumberActive || (country != "" && n.CountryCode != country) ||
			number == participants[0] || number == participants[1] {
			continue
		}
		cs = append(cs, candidate{number, x.slotCount(slot, number, now)})
	}
	x.mu.RUnlock()
	return func(yield func(string) bool) {
		for number := range leastUsedFirst(cs) {
			if !x.busy(number, participants, pinned, pin, now) && !yield(number) {
				return
			}
		}
	}
}

// busy reports whether a participant routes on number already (pinned:
// whether pin, when chosen, is taken on it).
func (x *index) busy(number string, participants [2]string, pinned bool, pin string, now time.Time) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if pinned {
		return pin != "" && x.pinTaken(number, pin, now)
	}
	for _, p := range participants {
		if s, ok := x.byRoute[route{number, p}]; ok && s.Open(now) {
			return true
		}
	}
	return false
}

// candidate is a number an allocation may take, and its open sessions.
type candidate struct {
	number string
	used   int
}

func (a candidate) compare(b candidate) int {
	return cmp.Or(cmp.Compare(a.used, b.used), strings.Compare(a.number, b.number))
}

// selectFirst is how many candidates leastUsedFirst picks by a linear
// scan each before it sorts those left.
const selectFirst = 4

// leastUsedFirst yields the numbers of cs, least used first (then by
// number): the first few each by a scan for the least (a pool of 10,000
// numbers costs 10,000 comparisons, not a sort), the rest, when asked
// for, sorted.
func leastUsedFirst(cs []candidate) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := range cs {
			if i == selectFirst {
				slices.SortFunc(cs[i:], candidate.compare)
				for _, c := range cs[i:] {
					if !yield(c.number) {
						return
					}
				}
				return
			}
			least := i
			for j := i + 1; j < len(cs); j++ {
				if cs[j].compare(cs[least]) < 0 {
					least = j
				}
			}
			cs[i], cs[least] = cs[least], cs[i]
			if !yield(cs[i].number) {
				return
			}
		}
	}
}

// putEntry stores v under id in m unless the index holds a newer
// revision of its key (or removed it at a newer one). Called with mu held.
func putEntry[T any](x *index, m map[string]entry[T], id, key string, v *T, rev uint64) {
	if !x.stale(key, rev, m[id].rev) {
		m[id] = entry[T]{v, rev}
	}
}

// removeEntry drops id from m and remembers its key removed at rev (or
// the revision held, when newer). Called with mu held.
func removeEntry[T any](x *index, m map[string]entry[T], id, key string, rev uint64) {
	if old, ok := m[id]; ok {
		rev = max(rev, old.rev)
		delete(m, id)
	}
	x.gone[key] = goneKey{rev: max(rev, x.gone[key].rev), at: time.Now()}
}

func (x *index) putNumber(n *Number, rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	before := x.numbers[n.Number].v
	putEntry(x, x.numbers, n.Number, numberKey(n.Number), n, rev)
	x.repool(n.Number, before)
}

func (x *index) removeNumber(number string, rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	before := x.numbers[number].v
	removeEntry(x, x.numbers, number, numberKey(number), rev)
	x.repool(number, before)
}

// repool files number's slot under the sub-account the number now has
// (none, when removed), from before's. Called with mu held for writing.
func (x *index) repool(number string, before *Number) {
	after := x.numbers[number].v
	slot := x.slots[number]
	if before != nil && slot != nil && (after == nil || after.SubAccountID != before.SubAccountID) {
		if pool := x.pools[before.SubAccountID]; pool != nil {
			delete(pool, number)
			if len(pool) == 0 {
				delete(x.pools, before.SubAccountID)
			}
		}
	}
	if after == nil {
		delete(x.slots, number)
		return
	}
	if slot == nil {
		slot = &poolSlot{}
		x.slots[number] = slot
	}
	slot.n = after
	pool := x.pools[after.SubAccountID]
	if pool == nil {
		pool = make(map[string]*poolSlot)
		x.pools[after.SubAccountID] = pool
	}
	pool[number] = slot
}

func (x *index) number(number string) (*Number, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.numbers[number]
	return e.v, ok
}

func (x *index) putAccount(a *SubAccount, rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	putEntry(x, x.accounts, a.SubAccountID, subAccountKey(a.SubAccountID), a, rev)
}

func (x *index) removeAccount(id string, rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	removeEntry(x, x.accounts, id, subAccountKey(id), rev)
}

// outOfSession returns the policy for a caller out of session on virtual
// in subAccount, and whose it is: the number's, else its sub-account's
// (the number's sub-account when it is in the pool, else the call's), or
// nil for the default.
func (x *index) outOfSession(virtual, subAccount string) (*Policy, string) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if e, ok := x.numbers[virtual]; ok {
		if e.v.OutOfSession != nil {
			return e.v.OutOfSession, wire.PolicyNumber
		}
		subAccount = e.v.SubAccountID
	}
	if e, ok := x.accounts[subAccount]; ok && e.v.OutOfSession != nil {
		return e.v.OutOfSession, wire.PolicySubAccount
	}
	return nil, wire.PolicyDefault
}

// sessionCount returns the sessions held: open ones (by expiry at now) and
// all.
func (x *index) sessionCount(now time.Time) (open, all int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, on := range x.onNumber {
		for _, s := range on {
			if s.Open(now) {
				open++
			}
		}
	}
	return open, len(x.sessions)
}

// prune forgets what the bucket forgets by itself, in case the watcher
// has not delivered its marker (yet): sessions past their TTL in the
// bucket (history after closing or expiry), and old removal marks.
func (x *index) prune(now time.Time, history time.Duration) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for id, e := range x.sessions {
		if d, ok := deadline(e.v, history); ok && now.After(d) {
			x.unlinkSession(e.v)
			delete(x.sessions, id)
		} else if !e.v.Open(now) {
			x.unlinkSession(e.v)
		}
	}
	for ref, r := range x.retained {
		if now.After(r.until) {
			delete(x.retained, ref)
		}
	}
	for key, g := range x.gone {
		if now.Sub(g.at) > goneTTL {
			delete(x.gone, key)
		}
	}
}
