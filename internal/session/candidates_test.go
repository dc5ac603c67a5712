package session

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestLeastUsedFirst: the candidates come least used first, then by
// number, whether the allocation takes the first or goes through them all
// (the first few picked by a scan, the rest sorted).
func TestLeastUsedFirst(t *testing.T) {
	for _, n := range []int{0, 1, selectFirst, selectFirst + 1, 50} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var cs []candidate
			for i := range n {
				cs = append(cs, candidate{fmt.Sprintf("+65680%05d", i), rand.IntN(3)})
			}
			rand.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
			want := slices.Clone(cs)
			slices.SortFunc(want, candidate.compare)
			var got []string
			for number := range leastUsedFirst(cs) {
				got = append(got, number)
			}
			var wantNumbers []string
			for _, c := range want {
				wantNumbers = append(wantNumbers, c.number)
			}
			if !slices.Equal(got, wantNumbers) {
				t.Errorf("order %v, want %v", got, wantNumbers)
			}
			for number := range leastUsedFirst(slices.Clone(want)) {
				if len(want) > 0 && number != want[0].number {
					t.Errorf("first %s, want %s", number, want[0].number)
				}
				break
			}
		})
	}
}

// TestOpenCountCache: a number's cached count of open sessions follows
// sessions stored, closed and removed, and a session's expiry with no
// write at all.
func TestOpenCountCache(t *testing.T) {
	x := newIndex()
	now := time.Now()
	soon := now.Add(time.Minute)
	a := &Session{ID: "a", VirtualNumber: "+6568000001", Participants: [2]string{"+1", "+2"}, Status: StatusOpen}
	b := &Session{ID: "b", VirtualNumber: "+6568000001", Participants: [2]string{"+3", "+4"}, Status: StatusOpen, ExpiresAt: &soon}
	count := func(at time.Time) int {
		x.mu.RLock()
		defer x.mu.RUnlock()
		return x.openCount("+6568000001", at)
	}
	x.putNumber(&Number{Number: "+6568000001", SubAccountID: "acme", Status: NumberActive}, 1)
	if x.slots["+6568000001"] == nil || x.pools["acme"]["+6568000001"] == nil {
		t.Fatal("registered number has no pool slot")
	}
	x.putSession(a, 1)
	if got := count(now); got != 1 {
		t.Fatalf("one session: %d open", got)
	}
	x.putSession(b, 2)
	if got := count(now); got != 2 {
		t.Fatalf("two sessions: %d open", got)
	}
	if got := count(soon.Add(time.Second)); got != 1 {
		t.Errorf("after b's expiry: %d open, want 1", got)
	}
	closed := *a
	closed.Status = StatusClosed
	x.putSession(&closed, 3)
	if got := count(now); got != 1 {
		t.Errorf("a closed: %d open, want 1", got)
	}
	x.removeSession("b", 4)
	if got := count(now); got != 0 {
		t.Errorf("b removed: %d open, want 0", got)
	}
	// Moved to another sub-account, then removed: the pools follow.
	x.putNumber(&Number{Number: "+6568000001", SubAccountID: "other", Status: NumberActive}, 2)
	if x.pools["acme"] != nil || x.pools["other"]["+6568000001"] == nil {
		t.Errorf("moved number: pools %v", x.pools)
	}
	x.removeNumber("+6568000001", 3)
	if len(x.pools) != 0 || len(x.slots) != 0 {
		t.Errorf("removed number: pools %v, slots %v", x.pools, x.slots)
	}
}
