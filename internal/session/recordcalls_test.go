package session_test

import (
	"errors"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/session"
)

func TestRecordCalls(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	s := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB},
		TTLMode: session.TTLIdle, TTLSeconds: 600, MaxCalls: 5})

	at := time.Now().Add(time.Minute).UTC()
	got, err := st.RecordCalls(ctx, s.ID, 3, at)
	if err != nil {
		t.Fatal(err)
	}
	if got.CallCount != 3 || !got.LastCallAt.Equal(at) || !got.ExpiresAt.Equal(at.Add(10*time.Minute)) || got.Status != session.StatusOpen {
		t.Errorf("after 3 calls: count %d last %v expires %v status %s", got.CallCount, got.LastCallAt, got.ExpiresAt, got.Status)
	}
	// Past maxCalls in one write: closed, every call counted.
	got, err = st.RecordCalls(ctx, s.ID, 4, at)
	if err != nil {
		t.Fatal(err)
	}
	if got.CallCount != 7 || got.Status != session.StatusClosed || *got.ClosedReason != session.ClosedMaxCalls {
		t.Errorf("after 7 calls of 5: count %d status %s reason %v", got.CallCount, got.Status, got.ClosedReason)
	}
	for _, n := range []int64{0, -1} {
		if _, err := st.RecordCalls(ctx, s.ID, n, at); !errors.Is(err, session.ErrInvalid) {
			t.Errorf("RecordCalls(%d) = %v, want ErrInvalid", n, err)
		}
	}
}
