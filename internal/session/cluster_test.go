package session_test

import (
	"sync"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
)

// On a replicated bucket (a three-node cluster, R3), a write that lost a
// race is retried like on one server: JetStream answers it with another
// error code there (10164 rather than 10071). Calls counted at once by
// two stores all land.
func TestConcurrentChangesOnReplicatedBucket(t *testing.T) {
	c := natstest.RunCluster(t)
	_, js1 := c.Connect(t)
	_, js2 := c.Connect(t)
	a := openStore(t, js1, session.Config{Replicas: 3})
	b := openStore(t, js2, session.Config{Replicas: 3})
	s := mustCreate(t, a, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})
	const each = 15
	var wg sync.WaitGroup
	for _, st := range []*session.Store{a, b} {
		wg.Go(func() {
			for range each {
				if _, err := st.RecordCall(testCtx(t), s.ID, time.Now()); err != nil {
					t.Errorf("RecordCall: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := a.Get(testCtx(t), s.ID)
	if err != nil || got.CallCount != 2*each {
		t.Errorf("callCount = %d, %v; want %d", got.CallCount, err, 2*each)
	}
}
