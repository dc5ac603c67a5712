package archiver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The consumer's leader dies (like a crash) while the archiver, connected
// to another node, waits idle with a pull request parked on that leader:
// the request is lost without a word, and records published afterwards
// would wait forever. The archiver notices records waiting with none
// arriving and pulls again; every record reaches ClickHouse once.
func TestArchiverPullsAgainAfterConsumerLeaderLoss(t *testing.T) {
	chAddr := chtest.Addr(t)
	c := natstest.RunCluster(t)
	// The archiver on node 0; the consumer's leader elsewhere.
	anc, err := nats.Connect(c.URLs()[0], nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(anc.Close)
	ajs, _ := jetstream.New(anc)
	_, pjs := c.Connect(t) // the publisher
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := broker.EnsureStream(ctx, pjs, broker.StreamConfig{Name: "CALLS", MaxAge: time.Hour, Duplicates: time.Minute, Replicas: 3}, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	e := &env{js: ajs, ch: chtest.Conn(t, chAddr), addr: chAddr, db: chtest.Database(t, chAddr)}
	cfg := e.config(t)
	_, stop := e.run(t, cfg)
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			subject, id, data := record(i, wire.EventCallAction)
			natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
				pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer pcancel()
				_, err := pjs.Publish(pctx, subject, data, jetstream.WithMsgID(id))
				return err
			})
		}
	}
	publish(0, 10)
	e.waitRows(t, "SELECT count() FROM DB.call_events FINAL", 10)

	leader := c.ConsumerLeader("CALLS", DefaultDurable)
	if leader == 0 {
		if _, err := anc.Request(fmt.Sprintf("$JS.API.CONSUMER.LEADER.STEPDOWN.CALLS.%s", DefaultDurable), nil, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
			if leader = c.ConsumerLeader("CALLS", DefaultDurable); leader <= 0 {
				return fmt.Errorf("consumer leader %d", leader)
			}
			return nil
		})
	}
	// Idle now: once every record is acknowledged and a pull request is
	// parked on the leader, kill it.
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		ictx, icancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer icancel()
		cons, err := pjs.Consumer(ictx, "CALLS", DefaultDurable)
		if err != nil {
			return err
		}
		info, err := cons.Info(ictx)
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumWaiting == 0 {
			return fmt.Errorf("%d records unacknowledged, %d pull requests waiting: want 0 and some", info.NumAckPending, info.NumWaiting)
		}
		return nil
	})
	t.Logf("killing %s, the consumer's leader; the archiver is on %s", c.NodeName(leader), c.NodeName(0))
	c.Kill(leader)
	publish(10, 60)
	natstest.CheckFor(t, 90*time.Second, 200*time.Millisecond, func() error {
		var n uint64
		if err := e.ch.QueryRow(context.Background(), "SELECT count() FROM "+e.db+".call_events FINAL").Scan(&n); err != nil {
			return err
		}
		if n != 60 {
			return fmt.Errorf("%d of 60 records archived", n)
		}
		return nil
	})
	stop()
	if n := e.count(t, "SELECT uniq(event_id) FROM DB.call_events"); n != 60 {
		t.Errorf("%d distinct records, want 60", n)
	}
}

// An operator deletes the archiver's consumer while it runs: the archiver
// creates it again and goes on (the new consumer delivers the stream from
// its start: what was archived already collapses in FINAL).
func TestArchiverRecreatesDeletedConsumer(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	_, stop := e.run(t, e.config(t))
	e.publish(t, 0, 20)
	e.waitRows(t, "SELECT count() FROM DB.call_events FINAL", 20)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.js.DeleteConsumer(ctx, "CALLS", DefaultDurable); err != nil {
		t.Fatal(err)
	}
	e.publish(t, 20, 50)
	e.waitRows(t, "SELECT count() FROM DB.call_events FINAL", 50)
	stop()
	if n := e.count(t, "SELECT uniq(event_id) FROM DB.call_events"); n != 50 {
		t.Errorf("%d distinct records, want 50", n)
	}
}
