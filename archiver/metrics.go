package archiver

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the archiver's Prometheus collectors.
type Metrics struct {
	batchRows  prometheus.Histogram
	insertTime prometheus.Histogram
	visibility prometheus.Histogram
	reg        prometheus.Registerer
}

// NewMetrics creates the collectors and registers them with reg (nil
// registers nothing).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "callflow_archiver_batch_rows",
			Help:    "Records per batch sent to ClickHouse.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9), // 1 .. 65536
		}),
		insertTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "callflow_archiver_insert_duration_seconds",
			Help:    "Time to store one batch in ClickHouse, retries included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
	}
	m.visibility = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "callflow_archiver_visibility_seconds",
		Help:    "Time from the ingestor receiving a webhook to its row being stored in ClickHouse (queryable).",
		Buckets: []float64{.05, .1, .25, .5, .75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 3600},
	})
	if reg != nil {
		reg.MustRegister(m.batchRows, m.insertTime, m.visibility)
	}
	return m
}

// register exposes the archiver's counters and its consumer's lag, read
// when scraped.
func (m *Metrics) register(a *Archiver) {
	if m.reg == nil {
		return
	}
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	m.reg.MustRegister(
		counter("callflow_archiver_rows_total", "Rows inserted into call_events.", &a.stats.rows),
		counter("callflow_archiver_rejected_total", "Records set aside in rejected_records (poison).", &a.stats.rejected),
		counter("callflow_archiver_retries_total", "Failed ClickHouse attempts retried (an outage).", &a.stats.retries),
		counter("callflow_archiver_redeliveries_total", "Records delivered again by JetStream (an archiver stopped before acknowledging them).", &a.stats.redelivered),
		&lagCollector{a: a},
	)
}

var (
	pendingDesc    = prometheus.NewDesc("callflow_archiver_consumer_pending", "Records in the stream not yet delivered to any archiver (the archive's lag).", nil, nil)
	ackPendingDesc = prometheus.NewDesc("callflow_archiver_consumer_ack_pending", "Records delivered to archivers and not yet acknowledged.", nil, nil)
)

// lagCollector asks JetStream for the durable consumer's state once per
// scrape; while NATS is disconnected it reports nothing at once. Before
// this archiver has made its consumer (ClickHouse not reached yet), it
// reads the durable another archiver, or an earlier run, made; when there
// is none yet, every record of the stream waits to be archived (the
// durable will deliver them all), so the lag is the stream's count. The
// lag thus exists from the start, and its alert can fire for an archive
// that never reached ClickHouse.
type lagCollector struct{ a *Archiver }

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- ackPendingDesc
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	if !a.js.Conn().IsConnected() {
		return // a scrape would wait out the timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var pending, ackPending uint64
	if cons := a.consumer.Load(); cons != nil {
		info, err := (*cons).Info(ctx)
		if err != nil {
			return
		}
		pending, ackPending = info.NumPending, uint64(info.NumAckPending)
	} else {
		cons, err := a.js.Consumer(ctx, a.cfg.Stream, a.cfg.Durable)
		switch {
		case err == nil:
			info, err := cons.Info(ctx)
			if err != nil {
				return
			}
			pending, ackPending = info.NumPending, uint64(info.NumAckPending)
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			stream, err := a.js.Stream(ctx, a.cfg.Stream)
			if err != nil {
				return
			}
			pending = stream.CachedInfo().State.Msgs
		default:
			return
		}
	}
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(pending))
	ch <- prometheus.MustNewConstMetric(ackPendingDesc, prometheus.GaugeValue, float64(ackPending))
}

// consumerRef holds the durable consumer once Run has created it.
type consumerRef = atomic.Pointer[jetstream.Consumer]
