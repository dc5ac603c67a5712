package session_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
)

// TestMirrorDomain: a region's Store (MirrorDomain set, on a leaf node of
// its own JetStream domain) reads a mirror of the centre's bucket and
// writes to the centre's: sessions created in the region or at the centre
// route in both, revisions agree (call counts, closes, expiry by TTL), and
// a region cut off from the centre goes on routing the sessions it holds
// while its writes fail, then writes again once the link is back.
func TestMirrorDomain(t *testing.T) {
	hub, hubLeaf := natstest.RunHub(t, "hub")
	leaf, relay := natstest.RunLeaf(t, "region-a", hubLeaf)
	natstest.WaitLeaf(t, hub, 1)
	_, hjs := natstest.Connect(t, hub)
	_, ljs := natstest.Connect(t, leaf)
	const history = 2 * time.Second
	centre := openStore(t, hjs, session.Config{History: history})
	region := openStore(t, ljs, session.Config{History: history, MirrorDomain: "hub"})
	ctx := testCtx(t)

	mirror, err := ljs.Stream(ctx, "KV_"+session.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if m := mirror.CachedInfo().Config.Mirror; m == nil || m.External == nil || m.External.APIPrefix != "$JS.hub.API" {
		t.Fatalf("region bucket's mirror = %+v, want the centre's through $JS.hub.API", m)
	}

	// Created in the region: written at the centre, routed in both.
	s := mustCreate(t, region, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, MaxCalls: 3})
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if err := lookupIs(centre, vn1, pA, s.ID); err != nil {
			return err
		}
		return lookupIs(region, vn1, pB, s.ID)
	})
	// Created at the centre: routed in the region.
	c := mustCreate(t, centre, session.Request{VirtualNumber: vn2, Participants: []string{pA, pC}, TTLSeconds: 1})
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		return lookupIs(region, vn2, pC, c.ID)
	})
	// One participant twice on a number is refused, wherever it is asked.
	if _, err := region.Create(ctx, session.Request{VirtualNumber: vn1, Participants: []string{pA, pD}}); !errors.Is(err, session.ErrConflict) {
		t.Errorf("region Create of a bound participant = %v, want ErrConflict", err)
	}

	// Counts written from the region over the mirror's revisions: the
	// third call closes the session everywhere.
	for i := range 3 {
		if _, err := region.RecordCalls(ctx, s.ID, 1, time.Now()); err != nil {
			t.Fatalf("RecordCalls %d from the region: %v", i+1, err)
		}
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for name, st := range map[string]*session.Store{"centre": centre, "region": region} {
			got, err := st.Get(ctx, s.ID)
			if err != nil {
				return err
			}
			if got.CallCount != 3 || got.Status != session.StatusClosed {
				return fmt.Errorf("%s: count %d status %s, want 3 and closed", name, got.CallCount, got.Status)
			}
			if err := lookupIs(st, vn1, pA, ""); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	})
	// The centre's TTL expires the session in the region's copy too.
	natstest.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		return lookupIs(region, vn2, pC, "")
	})

	// Cut off: the region still routes what it holds; writes fail.
	k := mustCreate(t, centre, session.Request{VirtualNumber: vn1, Participants: []string{pC, pD}})
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		return lookupIs(region, vn1, pD, k.ID)
	})
	relay.Cut()
	natstest.WaitLeaf(t, hub, 0)
	if err := lookupIs(region, vn1, pC, k.ID); err != nil {
		t.Errorf("cut off: %v", err)
	}
	if got, err := region.Get(ctx, k.ID); err != nil || got.ID != k.ID {
		t.Errorf("cut off: Get = %+v, %v", got, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = region.RecordCalls(wctx, k.ID, 1, time.Now())
	cancel()
	if err == nil {
		t.Error("RecordCalls from a region cut off from the centre succeeded")
	}

	// Back: writes reach the centre again.
	relay.Restore()
	natstest.WaitLeaf(t, hub, 1)
	natstest.CheckFor(t, 15*time.Second, 100*time.Millisecond, func() error {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := region.RecordCalls(wctx, k.ID, 1, time.Now())
		return err
	})
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		got, err := centre.Get(ctx, k.ID)
		if err != nil || got.CallCount < 1 {
			return fmt.Errorf("centre: %+v, %v; want the region's count", got, err)
		}
		return nil
	})
}

// TestMirrorDomainMismatch: a region whose bucket is its own, not a
// mirror, or a centre whose bucket is a mirror, refuses to start rather
// than letting the copies part ways.
func TestMirrorDomainMismatch(t *testing.T) {
	hub, hubLeaf := natstest.RunHub(t, "hub")
	leaf, _ := natstest.RunLeaf(t, "region-a", hubLeaf)
	natstest.WaitLeaf(t, hub, 1)
	_, hjs := natstest.Connect(t, hub)
	_, ljs := natstest.Connect(t, leaf)
	openStore(t, hjs, session.Config{})
	own := openStore(t, ljs, session.Config{Bucket: "own"})
	own.Close()
	if _, err := session.Open(testCtx(t), ljs, session.Config{Bucket: "own", MirrorDomain: "hub"}); !errors.Is(err, session.ErrInvalidConfig) {
		t.Errorf("Open of a bucket of its own as a mirror = %v, want ErrInvalidConfig", err)
	}
	openStore(t, ljs, session.Config{MirrorDomain: "hub"}).Close()
	if _, err := session.Open(testCtx(t), ljs, session.Config{}); !errors.Is(err, session.ErrInvalidConfig) {
		t.Errorf("Open of a mirror without its domain = %v, want ErrInvalidConfig", err)
	}
}
