package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestStreamSourceDomains: the records streams of two regions (leaf nodes
// of their own JetStream domains, the records' subjects kept in their
// region) and the centre's stream, which takes its own region's records
// and sources both. Records of each region reach the centre once and the
// other region never; a region added
// later is sourced when the centre's role starts with it; a region cut
// off keeps acknowledging records, which the centre takes once it is back.
func TestStreamSourceDomains(t *testing.T) {
	hub, hubLeaf := natstest.RunHub(t, "hub")
	deny := "calls.>"
	leafA, _ := natstest.RunLeaf(t, "region-a", hubLeaf, deny)
	leafB, relayB := natstest.RunLeaf(t, "region-b", hubLeaf, deny)
	natstest.WaitLeaf(t, hub, 2)
	_, hjs := natstest.Connect(t, hub)
	_, ajs := natstest.Connect(t, leafA)
	_, bjs := natstest.Connect(t, leafB)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	cfg := broker.StreamConfig{Name: broker.DefaultStream, MaxAge: time.Hour, Duplicates: time.Minute, Replicas: 1}
	for _, js := range []jetstream.JetStream{ajs, bjs} {
		if _, err := broker.EnsureStream(ctx, js, cfg, log); err != nil {
			t.Fatal(err)
		}
	}
	central := cfg
	central.SourceDomains = []string{"region-a"}
	if _, err := broker.EnsureStream(ctx, hjs, central, log); err != nil {
		t.Fatal(err)
	}
	central.SourceDomains = []string{"region-a", "region-b"}
	s, err := broker.EnsureStream(ctx, hjs, central, log)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config; len(got.Subjects) != 1 || len(got.Sources) != 2 {
		t.Fatalf("centre's stream: subjects %v, %d sources; want its own and 2", got.Subjects, len(got.Sources))
	}

	publish := func(js jetstream.JetStream, region string, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			id := fmt.Sprintf("%s-%d", region, i)
			if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "calls.CALL_ACTION." + id, Data: []byte("{}"),
				Header: nats.Header{jetstream.MsgIDHeader: {id}}}); err != nil {
				t.Fatalf("publish %s: %v", id, err)
			}
		}
	}
	count := func(js jetstream.JetStream, want uint64) func() error {
		return func() error {
			st, err := js.Stream(ctx, broker.DefaultStream)
			if err != nil {
				return err
			}
			if n := st.CachedInfo().State.Msgs; n != want {
				return fmt.Errorf("%d records, want %d", n, want)
			}
			return nil
		}
	}
	publish(ajs, "a", 0, 50)
	publish(bjs, "b", 0, 50)
	publish(hjs, "hub", 0, 10) // the centre's own region
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, count(hjs, 110))
	for _, js := range []jetstream.JetStream{ajs, bjs} {
		if err := count(js, 50)(); err != nil {
			t.Errorf("a region's stream: %v (records crossed regions)", err)
		}
	}

	// Region b cut off: it keeps recording; the centre catches up after.
	relayB.Cut()
	natstest.WaitLeaf(t, hub, 1)
	publish(bjs, "b", 50, 80)
	publish(ajs, "a", 50, 60)
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, count(hjs, 120))
	relayB.Restore()
	natstest.WaitLeaf(t, hub, 2)
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, count(hjs, 150))
	time.Sleep(500 * time.Millisecond) // nothing twice, however long it is given
	if err := count(hjs, 150)(); err != nil {
		t.Error(err)
	}
}

func TestStreamSourceDomainsInvalid(t *testing.T) {
	for _, domains := range [][]string{{""}, {"a.b"}, {"r*"}, {"a", "a"}} {
		cfg := broker.StreamConfig{Name: "CALLS", MaxAge: time.Hour, Duplicates: time.Minute, Replicas: 1, SourceDomains: domains}
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate with source domains %q = nil, want an error", domains)
		}
	}
}
