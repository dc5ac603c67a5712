package poolfeed_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/poolfeed"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/internal/testlog"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// waitFor bounds every wait of these tests.
const waitFor = 20 * time.Second

// rig is a NATS server with the records stream, a session store and a
// feed running on them, all stopped when the test ends.
type rig struct {
	t     *testing.T
	opts  *server.Options
	ns    *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	store *session.Store
	feed  *poolfeed.Feed
	reg   *prometheus.Registry
	rec   *recorder
	logs  *testlog.Buffer
	seq   int
}

// recorder keeps audit records the way the ingestor does: published to
// the stream with their id as Nats-Msg-Id, acknowledged.
type recorder struct {
	js jetstream.JetStream
	mu sync.Mutex
	n  int
}

func (r *recorder) Record(subject, id string, data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.js.Publish(ctx, subject, data, jetstream.WithMsgID(id)); err != nil {
		return err
	}
	r.mu.Lock()
	r.n++
	r.mu.Unlock()
	return nil
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, opts: natstest.Options(t.TempDir()), logs: &testlog.Buffer{}}
	r.ns = natstest.RunServerWith(t, r.opts)
	// A restart comes back on the same port.
	r.opts.Port = r.ns.Addr().(*net.TCPAddr).Port
	r.nc, r.js = natstest.Connect(t, r.ns)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if _, err := broker.EnsureStream(ctx, r.js, broker.StreamConfig{
		Name: broker.DefaultStream, MaxAge: time.Hour, Duplicates: time.Minute, Replicas: 1,
	}, log); err != nil {
		t.Fatal(err)
	}
	var err error
	if r.store, err = session.Open(ctx, r.js, session.Config{Logger: log}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.store.Close)
	r.reg = prometheus.NewRegistry()
	r.rec = &recorder{js: r.js}
	r.feed, err = poolfeed.New(r.js, r.store, r.rec, poolfeed.Config{
		Instance: "feed-test", Logger: log, Metrics: poolfeed.NewMetrics(r.reg),
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, StallAfter: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.run(r.feed)
	return r
}

// run runs f until the test ends, and checks that it stops promptly.
func (r *rig) run(f *poolfeed.Feed) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	r.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			r.t.Error("the feed did not stop within 10s of its context ending")
		}
	})
}

// number is one entry of a VNU payload.
type number struct {
	MSISDN  string `json:"msisdn"`
	At      string `json:"updatedTimestamp,omitempty"`
	Country string `json:"countryCode,omitempty"`
	Status  string `json:"operationalStatus,omitempty"`
	Ref     string `json:"referenceId,omitempty"`
}

// vnu is a VIRTUAL_NUMBER_UPDATE webhook body.
func vnu(t *testing.T, subAccount, kind string, numbers ...number) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"namespace": "VOICE", "eventType": wire.EventVirtualNumberUpdate, "description": "Status of account virtual number(s) updated",
		"payload": map[string]any{
			"subAccountId": subAccount, "updateEventType": kind, "totalNumbers": len(numbers), "virtualNumbers": numbers,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// publish records event the way the ingestor does, as received now; it
// returns the record id.
func (r *rig) publish(event []byte) string {
	r.t.Helper()
	r.seq++
	return r.publishAs(fmt.Sprintf("vnu-%s-%d", r.t.Name(), r.seq), event)
}

func (r *rig) publishAs(id string, event []byte) string {
	r.t.Helper()
	rec := wire.Record{Version: wire.RecordVersion, ID: id, EventType: wire.EventVirtualNumberUpdate,
		ReceivedAt: time.Now().UTC(), Instance: "ingest-test", Event: event}
	r.publishRaw(wire.Subject(wire.EventVirtualNumberUpdate, "acme"), id, rec.AppendJSON(nil))
	return id
}

func (r *rig) publishRaw(subject, msgID string, data []byte) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID)); err != nil {
		r.t.Fatalf("publish: %v", err)
	}
}

// handled waits until the feed applied and refused that many records.
func (r *rig) handled(applied, refused uint64) poolfeed.Stats {
	r.t.Helper()
	var st poolfeed.Stats
	natstest.CheckFor(r.t, waitFor, 10*time.Millisecond, func() error {
		st = r.feed.Stats()
		if st.Applied != applied || st.Refused != refused {
			return fmt.Errorf("stats %+v, want %d applied and %d refused", st, applied, refused)
		}
		return nil
	})
	return st
}

// statuses reads the pool's numbers of subAccount, number -> status, from
// the bucket.
func (r *rig) statuses(subAccount string) map[string]string {
	r.t.Helper()
	views, _, err := r.store.ListNumbers(session.NumberFilter{SubAccountID: subAccount}, session.Page{Limit: 1000}, time.Now())
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]string{}
	for _, v := range views {
		n, err := r.store.GetNumber(context.Background(), v.Number.Number, nil)
		if err != nil {
			r.t.Fatal(err)
		}
		out[n.Number.Number] = n.Status
	}
	return out
}

func (r *rig) wantStatuses(subAccount string, want map[string]string) {
	r.t.Helper()
	natstest.CheckFor(r.t, waitFor, 10*time.Millisecond, func() error {
		if got := r.statuses(subAccount); fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("pool of %s = %v, want %v", subAccount, got, want)
		}
		return nil
	})
}

// audits reads the number_update audit records in the stream.
func (r *rig) audits() []wire.Audit {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := r.js.OrderedConsumer(ctx, broker.DefaultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.AuditSubject(wire.AuditNumberUpdate)},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []wire.Audit
	for range info.NumPending {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			r.t.Fatal(err)
		}
		rec, err := wire.ParseRecord(msg.Data())
		if err != nil {
			r.t.Fatal(err)
		}
		var ev struct {
			EventType string     `json:"eventType"`
			Payload   wire.Audit `json:"payload"`
		}
		if err := json.Unmarshal(rec.Event, &ev); err != nil {
			r.t.Fatal(err)
		}
		if rec.EventType != wire.EventSessionAudit || ev.EventType != wire.EventSessionAudit || rec.ID != ev.Payload.ID || rec.Instance == "" {
			r.t.Fatalf("audit record %s: %+v", msg.Subject(), rec)
		}
		out = append(out, ev.Payload)
	}
	return out
}

// numberOf decodes an audit's before or after.
func numberOf(t *testing.T, raw json.RawMessage) *session.Number {
	t.Helper()
	if len(raw) == 0 {
		return nil
	}
	var n session.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		t.Fatal(err)
	}
	return &n
}

func (r *rig) counter(result string) float64 {
	return testutil.ToFloat64(counterVec(r.t, r.reg, "callflow_pool_updates_total", "result", result))
}

// counterVec finds one series of a counter in reg.
func counterVec(t *testing.T, reg *prometheus.Registry, name, label, value string) prometheus.Collector {
	t.Helper()
	return gathered{t, reg, name, label, value}
}

// gathered is one series of a gathered metric, as a collector testutil
// reads.
type gathered struct {
	t                  *testing.T
	reg                *prometheus.Registry
	name, label, value string
}

func (g gathered) Describe(chan<- *prometheus.Desc) {}

func (g gathered) Collect(ch chan<- prometheus.Metric) {
	mfs, err := g.reg.Gather()
	if err != nil {
		g.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != g.name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == g.label && l.GetValue() == g.value {
					v := m.GetCounter().GetValue()
					if m.GetGauge() != nil {
						v = m.GetGauge().GetValue()
					}
					ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(g.name, "", nil, nil), prometheus.UntypedValue, v)
					return
				}
			}
		}
	}
	g.t.Fatalf("no series %s{%s=%q}", g.name, g.label, g.value)
}

const (
	n1 = "+6568330001"
	n2 = "+6568330002"
	n3 = "+6568330003"
)

func ts(minute int) string {
	return time.Date(2026, 3, 1, 10, minute, 0, 0, time.UTC).Format(time.RFC3339)
}

// A SNAPSHOT fills an empty pool, with no admin call; every number added
// is an audit record by 8x8, naming the webhook's record.
func TestSnapshotFillsEmptyPool(t *testing.T) {
	r := newRig(t)
	id := r.publish(vnu(t, "acme", "SNAPSHOT",
		number{MSISDN: n1, At: ts(0), Country: "SG", Status: "Active", Ref: "range-1"},
		number{MSISDN: n2, At: ts(1), Country: "SG", Status: "Unhealthy", Ref: "range-1"},
		number{MSISDN: "6568330003", At: ts(2), Country: "sg", Status: "EXPIRING"},
	))
	st := r.handled(1, 0)
	if st.Changed != 3 || st.Retried != 0 || st.AuditFailures != 0 {
		t.Errorf("stats %+v, want 3 changed", st)
	}
	r.wantStatuses("acme", map[string]string{n1: "Active", n2: "Unhealthy", n3: "Expiring"})
	n, err := r.store.GetNumber(context.Background(), n1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.CountryCode != "SG" || n.ReferenceID != "range-1" || n.StatusAt == nil || !n.StatusAt.Equal(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("number %+v", n.Number)
	}

	audits := r.audits()
	if len(audits) != 3 {
		t.Fatalf("%d audit records, want 3: %+v", len(audits), audits)
	}
	for _, a := range audits {
		after := numberOf(t, a.After)
		if a.Operation != wire.AuditNumberUpdate || a.SubAccountID != "acme" || a.Actor.Author != wire.Author8x8 || a.Actor.Source != id ||
			a.Before != nil || after == nil || after.Number != a.VirtualNumber || after.SubAccountID != "acme" || a.Actor.Token != "" {
			t.Errorf("audit %+v", a)
		}
	}
	if got := r.counter(poolfeed.ResultApplied); got != 1 {
		t.Errorf("callflow_pool_updates_total{result=applied} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(counterVec(t, r.reg, "callflow_pool_number_changes_total", "status", "Active")); got != 1 {
		t.Errorf("callflow_pool_number_changes_total{status=Active} = %v, want 1", got)
	}
}

// UPDATES change the statuses they list and leave the others; an older
// update than what a number holds changes nothing.
func TestUpdatesChangeStatusesOlderChangeNothing(t *testing.T) {
	r := newRig(t)
	r.publish(vnu(t, "acme", "SNAPSHOT",
		number{MSISDN: n1, At: ts(0), Status: "Active"},
		number{MSISDN: n2, At: ts(0), Status: "Active"},
	))
	r.handled(1, 0)
	id := r.publish(vnu(t, "acme", "UPDATES", number{MSISDN: n2, At: ts(10), Status: "Unhealthy"}))
	r.handled(2, 0)
	r.wantStatuses("acme", map[string]string{n1: "Active", n2: "Unhealthy"})

	// 8x8's update of 10:05 comes after the one of 10:10.
	r.publish(vnu(t, "acme", "UPDATES", number{MSISDN: n2, At: ts(5), Status: "Active"}))
	st := r.handled(3, 0)
	r.wantStatuses("acme", map[string]string{n1: "Active", n2: "Unhealthy"})
	if st.Changed != 3 {
		t.Errorf("%d numbers changed, want 3 (two added, one made Unhealthy)", st.Changed)
	}
	var found bool
	for _, a := range r.audits() {
		if a.Actor.Source != id {
			continue
		}
		found = true
		if b, af := numberOf(t, a.Before), numberOf(t, a.After); a.VirtualNumber != n2 || b == nil || b.Status != "Active" || af == nil || af.Status != "Unhealthy" {
			t.Errorf("audit of the status change %+v", a)
		}
	}
	if !found {
		t.Errorf("no audit record of the status change by %s", id)
	}
}

// A SNAPSHOT is the whole pool: a registered number missing from it
// becomes Inactive (one registered by an admin, and one 8x8 added later
// than the snapshot's numbers last changed), numbers of other sub-accounts
// stay as they are.
func TestSnapshotDeactivatesMissing(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	acme, other := "acme", "other"
	for _, reg := range []struct{ number, sub string }{{n1, acme}, {n2, acme}, {"+6568339999", other}} {
		if _, _, err := r.store.PutNumber(ctx, reg.number, session.NumberRequest{SubAccountID: &reg.sub}, nil); err != nil {
			t.Fatal(err)
		}
	}
	r.publish(vnu(t, acme, "UPDATES", number{MSISDN: n3, At: ts(30), Status: "Active"}))
	r.handled(1, 0)
	r.wantStatuses(acme, map[string]string{n1: "Active", n2: "Active", n3: "Active"})

	// The snapshot lists n1 only, last changed at 10:00.
	id := r.publish(vnu(t, acme, "SNAPSHOT", number{MSISDN: n1, At: ts(0), Status: "Active"}))
	r.handled(2, 0)
	r.wantStatuses(acme, map[string]string{n1: "Active", n2: "Inactive", n3: "Inactive"})
	r.wantStatuses(other, map[string]string{"+6568339999": "Active"})
	deactivated := map[string]bool{}
	for _, a := range r.audits() {
		if a.Actor.Source == id && numberOf(t, a.After).Status == "Inactive" && numberOf(t, a.Before).Status == "Active" {
			deactivated[a.VirtualNumber] = true
		}
	}
	if !deactivated[n2] || !deactivated[n3] {
		t.Errorf("deactivations audited: %v, want %s and %s", deactivated, n2, n3)
	}
}

// The same record delivered again (8x8 sending it twice, a redelivery)
// changes nothing the second time and writes no audit record.
func TestSameRecordTwiceChangesNothing(t *testing.T) {
	r := newRig(t)
	body := vnu(t, "acme", "SNAPSHOT", number{MSISDN: n1, At: ts(0), Status: "Active"}, number{MSISDN: n2, At: ts(0), Status: "Inactive"})
	r.publishAs("vnu-twice", body)
	r.handled(1, 0)
	audits := len(r.audits())
	// Stored again under another message id, past the duplicate window's
	// reach: the record itself is the same.
	rec := wire.Record{Version: wire.RecordVersion, ID: "vnu-twice", EventType: wire.EventVirtualNumberUpdate, ReceivedAt: time.Now().UTC(), Event: body}
	r.publishRaw(wire.Subject(wire.EventVirtualNumberUpdate, "acme"), "vnu-twice-again", rec.AppendJSON(nil))
	st := r.handled(2, 0)
	if st.Changed != 2 {
		t.Errorf("%d numbers changed, want 2 (the first delivery's)", st.Changed)
	}
	if got := len(r.audits()); got != audits || audits != 2 {
		t.Errorf("%d audit records after the second delivery, %d after the first; want 2 and 2", got, audits)
	}
	r.wantStatuses("acme", map[string]string{n1: "Active", n2: "Inactive"})
}

// A record that is not a usable pool update is acknowledged and counted,
// never retried; the records after it are applied.
func TestBadRecordsAckedAndCounted(t *testing.T) {
	r := newRig(t)
	subject := wire.Subject(wire.EventVirtualNumberUpdate, "acme")
	r.publishRaw(subject, "garbage", []byte("not a record"))
	r.publishAs("no-sub-account", []byte(`{"namespace":"VOICE","eventType":"VIRTUAL_NUMBER_UPDATE","payload":{"updateEventType":"UPDATES","virtualNumbers":[]}}`))
	r.publishAs("bad-sub-account", vnu(t, "has space", "UPDATES", number{MSISDN: n1}))
	r.publishAs("not-json-event", []byte(`"a string"`))
	r.publish(vnu(t, "acme", "UPDATES", number{MSISDN: n1, At: ts(0), Status: "Active"}))
	r.handled(1, 4)
	r.wantStatuses("acme", map[string]string{n1: "Active"})
	if got := r.counter(poolfeed.ResultRefused); got != 4 {
		t.Errorf("callflow_pool_updates_total{result=refused} = %v, want 4", got)
	}
	// All acknowledged: nothing waits on the consumer, nothing comes back.
	natstest.CheckFor(t, waitFor, 20*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := r.js.Consumer(ctx, broker.DefaultStream, poolfeed.DefaultDurable)
		if err != nil {
			return err
		}
		info := c.CachedInfo()
		if info.NumPending != 0 || info.NumAckPending != 0 || info.NumRedelivered != 0 {
			return fmt.Errorf("consumer pending %d, ack pending %d, redelivered %d", info.NumPending, info.NumAckPending, info.NumRedelivered)
		}
		return nil
	})
	if st := r.feed.Stats(); st.Retried != 0 || st.Applied != 1 || st.Refused != 4 {
		t.Errorf("stats %+v", st)
	}
	if !strings.Contains(r.logs.String(), "not a usable pool update") {
		t.Error("no log line for the refused records")
	}
}

// While the bucket is unavailable the update is retried with backoff, not
// acknowledged; once the bucket is back it is applied.
func TestBucketUnavailableRetried(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := r.js.DeleteKeyValue(ctx, session.DefaultBucket); err != nil {
		t.Fatal(err)
	}
	r.publish(vnu(t, "acme", "UPDATES", number{MSISDN: n1, At: ts(0), Status: "Active"}))
	natstest.CheckFor(t, waitFor, 10*time.Millisecond, func() error {
		if st := r.feed.Stats(); st.Retried < 3 {
			return fmt.Errorf("stats %+v, want 3 retries at least", st)
		}
		return nil
	})
	if st := r.feed.Stats(); st.Applied != 0 {
		t.Fatalf("applied without a bucket: %+v", st)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := r.feed.Check(cctx)
	ccancel()
	if err == nil || !strings.Contains(err.Error(), "wait for storage") {
		t.Errorf("Check = %v, want the storage error", err)
	}
	// The bucket back as the store makes it.
	if _, err := r.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: session.DefaultBucket, History: 1, Storage: jetstream.FileStorage, LimitMarkerTTL: session.DefaultMarkerTTL,
	}); err != nil {
		t.Fatal(err)
	}
	r.handled(1, 0)
	r.wantStatuses("acme", map[string]string{n1: "Active"})
	if got := r.counter(poolfeed.ResultRetried); got < 3 {
		t.Errorf("callflow_pool_updates_total{result=retried} = %v, want 3 at least", got)
	}
	if len(r.audits()) != 1 {
		t.Error("no audit record of the update applied after the outage")
	}
	cctx, ccancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if err := r.feed.Check(cctx); err != nil {
		t.Errorf("Check after recovery = %v", err)
	}
}

// The NATS server restarts: the feed picks up where it was, with the
// consumer it had, and applies what comes after.
func TestNATSRestart(t *testing.T) {
	r := newRig(t)
	r.publish(vnu(t, "acme", "UPDATES", number{MSISDN: n1, At: ts(0), Status: "Active"}))
	r.handled(1, 0)
	r.ns.Shutdown()
	r.ns.WaitForShutdown()
	r.ns = natstest.RunServerWith(t, r.opts)
	natstest.CheckFor(t, waitFor, 10*time.Millisecond, func() error {
		if !r.nc.IsConnected() {
			return errors.New("not reconnected")
		}
		return nil
	})
	r.publish(vnu(t, "acme", "UPDATES", number{MSISDN: n2, At: ts(0), Status: "Unhealthy"}))
	r.handled(2, 0)
	r.wantStatuses("acme", map[string]string{n1: "Active", n2: "Unhealthy"})
}

// The consumer deleted under the feed is made again, and the updates
// after it are applied; the ones before are applied again, changing
// nothing.
func TestConsumerDeletedRecreated(t *testing.T) {
	r := newRig(t)
	r.publish(vnu(t, "acme", "UPDATES", number{MSISDN: n1, At: ts(0), Status: "Active"}))
	r.handled(1, 0)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := r.js.DeleteConsumer(ctx, broker.DefaultStream, poolfeed.DefaultDurable); err != nil {
		t.Fatal(err)
	}
	r.publish(vnu(t, "acme", "UPDATES", number{MSISDN: n2, At: ts(0), Status: "Active"}))
	// The first record again (delivered from the start), and the second.
	st := r.handled(3, 0)
	if st.Changed != 2 {
		t.Errorf("%d numbers changed, want 2", st.Changed)
	}
	if r.feed.Restarts() == 0 {
		t.Error("no restart of the pull counted")
	}
	r.wantStatuses("acme", map[string]string{n1: "Active", n2: "Active"})
	if _, err := r.js.Consumer(ctx, broker.DefaultStream, poolfeed.DefaultDurable); err != nil {
		t.Errorf("consumer not made again: %v", err)
	}
}

// Two processes share the durable: each record is applied once between
// them (nothing is redelivered), and the pool is the same for both.
func TestTwoFeedsShareTheDurable(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, js2 := natstest.Connect(t, r.ns)
	store2, err := session.Open(ctx, js2, session.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store2.Close)
	feed2, err := poolfeed.New(js2, store2, &recorder{js: js2}, poolfeed.Config{StallAfter: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r.run(feed2)
	const records = 20
	for i := range records {
		r.publish(vnu(t, "acme", "UPDATES", number{MSISDN: fmt.Sprintf("+65683310%02d", i), At: ts(i), Status: "Active"}))
	}
	natstest.CheckFor(t, waitFor, 10*time.Millisecond, func() error {
		a, b := r.feed.Stats(), feed2.Stats()
		if a.Applied+b.Applied != records {
			return fmt.Errorf("applied %d + %d, want %d", a.Applied, b.Applied, records)
		}
		return nil
	})
	if got := len(r.statuses("acme")); got != records {
		t.Errorf("%d numbers in the pool, want %d", got, records)
	}
	if got := len(r.audits()); got != records {
		t.Errorf("%d audit records, want %d", got, records)
	}
}

// callflow_pool_numbers counts the pool by sub-account and status at
// scrape, every status of a sub-account included; an empty pool is zeros.
func TestNumbersGauge(t *testing.T) {
	var pools map[string]map[string]int
	reg := prometheus.NewRegistry()
	reg.MustRegister(poolfeed.NumbersCollector(func() map[string]map[string]int { return pools }))
	got := func() map[string]float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				var key []string // status/sub_account: labels come sorted by name
				for _, l := range m.GetLabel() {
					key = append(key, l.GetValue())
				}
				out[strings.Join(key, "/")] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	if g := got(); fmt.Sprint(g) != fmt.Sprint(map[string]float64{"Active/": 0, "Expiring/": 0, "Inactive/": 0, "Unhealthy/": 0, "other/": 0}) {
		t.Errorf("empty pool: %v", g)
	}
	pools = map[string]map[string]int{"acme": {"Active": 3, "Inactive": 1, "Suspended": 2, "Blocked": 1}, "b": {"Unhealthy": 1}}
	wantSeries := map[string]float64{
		"Active/acme": 3, "Unhealthy/acme": 0, "Expiring/acme": 0, "Inactive/acme": 1, "other/acme": 3,
		"Active/b": 0, "Unhealthy/b": 1, "Expiring/b": 0, "Inactive/b": 0, "other/b": 0,
	}
	if g := got(); fmt.Sprint(g) != fmt.Sprint(wantSeries) {
		t.Errorf("got %v, want %v", g, wantSeries)
	}
}
