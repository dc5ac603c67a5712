package ingest

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/callflow/callflow/ingest/spool"
	"github.com/callflow/callflow/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Metrics are the ingestor's Prometheus collectors. Label values are
// bounded: event types outside the known set count as "other", and no
// phone number or id is ever a label.
type Metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	decisions     *prometheus.CounterVec
	fallbacks     *prometheus.CounterVec
	deciderTime   prometheus.Histogram
	publishTime   prometheus.Histogram
	publishFailed *prometheus.CounterVec
	spooled       *prometheus.CounterVec
	refused       *prometheus.CounterVec
	recordsLost   *prometheus.CounterVec
	reg           prometheus.Registerer
	// answeredOK caches the series of 200 answers per event label: the
	// label lookups would otherwise cost a hash and an allocation a call.
	answeredOK map[string]okSeries
}

type okSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// latencyBuckets span a cached in-memory answer (100µs) to the decide
// timeout and beyond (5s), in seconds.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// NewMetrics creates the collectors and registers them with reg (nil
// registers nothing, as in tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callflow_webhook_requests_total",
			Help: "Webhook requests answered, by event type (invalid when the body was refused) and HTTP status code.",
		}, []string{"event_type", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "callflow_webhook_duration_seconds",
			Help:    "Time from receiving a webhook to answering it, by event type.",
			Buckets: latencyBuckets,
		}, []string{"event_type"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callflow_decisions_total",
			Help: "CALL_ACTION decisions, by source (decider, fallback) and outcome (connect, out_of_session, fallback).",
		}, []string{"source", "outcome"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callflow_fallbacks_total",
			Help: "Calls answered with the fallback, by reason (breaker_open, timeout, no_responders, bad_reply, decider_error, unavailable).",
		}, []string{"reason"}),
		deciderTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "callflow_decider_request_duration_seconds",
			Help:    "Time to get a decision from the deciders (or to give up), as the ingestor sees it.",
			Buckets: latencyBuckets,
		}),
		publishTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "callflow_record_publish_duration_seconds",
			Help:    "Time from publishing a record to JetStream's acknowledgement.",
			Buckets: latencyBuckets,
		}),
		publishFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callflow_record_publish_failures_total",
			Help: "Records JetStream did not acknowledge in time, by reason (timeout, error); they go to the spool.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callflow_webhook_refused_total",
			Help: "Webhook requests refused before being read as an event, by reason (unauthorized, network, body_too_large, header_too_large, timeout, malformed_http).",
		}, []string{"reason"}),
		spooled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callflow_spool_appended_total",
			Help: "Records written to the on-disk spool, by reason (timeout, error, disconnected, degraded).",
		}, []string{"reason"}),
		recordsLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callflow_records_lost_total",
			Help: "Records neither JetStream nor the spool could keep, by reason (spool_full, spool_error). Should stay 0.",
		}, []string{"reason"}),
	}
	// Series present at 0 from the start, so that rate() and alerts work
	// before the first event of each kind.
	for _, r := range []string{ReasonBreakerOpen, ReasonTimeout, ReasonNoResponders, ReasonBadReply, ReasonDeciderError, ReasonUnavailable} {
		m.fallbacks.WithLabelValues(r)
	}
	m.decisions.WithLabelValues(wire.SourceDecider, wire.OutcomeConnect)
	m.decisions.WithLabelValues(wire.SourceDecider, wire.OutcomeOutOfSession)
	m.decisions.WithLabelValues(wire.SourceFallback, wire.OutcomeFallback)
	for _, r := range []string{SpoolTimeout, SpoolError} {
		m.publishFailed.WithLabelValues(r)
	}
	for _, r := range []string{SpoolTimeout, SpoolError, SpoolDisconnected, SpoolDegraded} {
		m.spooled.WithLabelValues(r)
	}
	for _, r := range []string{RefusedUnauthorized, RefusedNetwork, RefusedBodyTooLarge, RefusedHeaderLarge, RefusedTimeout, RefusedMalformed} {
		m.refused.WithLabelValues(r)
	}
	m.recordsLost.WithLabelValues("spool_full")
	m.recordsLost.WithLabelValues("spool_error")
	m.answeredOK = map[string]okSeries{}
	for _, et := range []string{wire.EventCallAction, wire.EventCallStatus, wire.EventSessionSummary, wire.EventVirtualNumberUpdate, "other"} {
		m.answeredOK[et] = okSeries{m.requests.WithLabelValues(et, "200"), m.duration.WithLabelValues(et)}
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.decisions, m.fallbacks, m.deciderTime, m.publishTime, m.publishFailed, m.spooled, m.recordsLost, m.refused)
	}
	return m
}

// eventLabel bounds the event_type label to the known types.
func eventLabel(eventType string) string {
	switch eventType {
	case wire.EventCallAction, wire.EventCallStatus, wire.EventSessionSummary, wire.EventVirtualNumberUpdate:
		return eventType
	}
	return "other"
}

func (m *Metrics) answered(eventType string, code int, since time.Time) {
	if ok, cached := m.answeredOK[eventType]; cached && code == 200 {
		ok.requests.Inc()
		ok.duration.Observe(time.Since(since).Seconds())
		return
	}
	m.requests.WithLabelValues(eventType, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(eventType).Observe(time.Since(since).Seconds())
}

// registerSpool exposes the spool's state, read when scraped.
func (m *Metrics) registerSpool(sp *spool.Spool) {
	if m.reg == nil {
		return
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "callflow_spool_records",
			Help: "Records in the on-disk spool waiting to be republished to JetStream (should be 0).",
		}, func() float64 { return float64(sp.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "callflow_spool_bytes",
			Help: "Bytes the spool takes on disk.",
		}, func() float64 { return float64(sp.Stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "callflow_spool_limit_bytes",
			Help: "The spool's bound on disk (--spool-max-bytes); past it records are lost.",
		}, func() float64 { return float64(sp.MaxBytes()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "callflow_spool_replayed_total",
			Help: "Spooled records republished to JetStream and acknowledged.",
		}, func() float64 { return float64(sp.Stats().Replayed) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "callflow_spool_damaged_bytes_total",
			Help: "Bytes of spool segments that could not be read (a tail torn by a crash, or frames damaged on disk), found at start or by replay, set aside in *.damaged files beside the segments; the records in them are not sent (should be 0).",
		}, func() float64 { return float64(sp.Stats().Damaged) }),
	)
}

const rejectedHelp = "Webhook connections turned away at a connection limit: max_conns (--http-max-conns, 503) or max_conns_per_ip (--http-max-conns-per-ip, 429)."

// registerServer exposes the breaker's state and the connections the
// listener turned away, read when scraped.
func (m *Metrics) registerServer(d *deciders, srv *fasthttp.Server, perIP *atomic.Uint64) {
	if m.reg == nil {
		return
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "callflow_decider_breaker_state",
			Help: "State of the circuit breaker in front of the deciders: 0 closed, 1 half-open, 2 open (calls get the fallback).",
		}, func() float64 { return float64(d.state()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "callflow_webhook_open_connections",
			Help: "Connections the webhook listener holds open (compare callflow_webhook_max_connections).",
		}, func() float64 { return float64(srv.GetOpenConnectionsCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "callflow_webhook_max_connections",
			Help: "The webhook listener's connection limit (--http-max-conns); past it new connections get 503.",
		}, func() float64 { return float64(srv.Concurrency) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "callflow_webhook_rejected_connections_total",
			Help:        rejectedHelp,
			ConstLabels: prometheus.Labels{"limit": "max_conns"},
		}, func() float64 { return float64(srv.GetRejectedConnectionsCount()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "callflow_webhook_rejected_connections_total",
			Help:        rejectedHelp,
			ConstLabels: prometheus.Labels{"limit": "max_conns_per_ip"},
		}, func() float64 { return float64(perIP.Load()) }),
	)
}
