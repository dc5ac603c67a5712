package decider

import (
	"strconv"
	"sync"

	"github.com/callflow/callflow/wire"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the deciders' Prometheus collectors, shared by every decider
// instance of a process.
type Metrics struct {
	requests     *prometheus.CounterVec
	updates      *prometheus.CounterVec
	deferred     prometheus.Gauge
	flowRestarts *prometheus.CounterVec
	flowSteps    *flowStepCounter
}

// requestOutcomes are the outcome label values of
// callflow_decider_requests_total: the decisions, and "error" for a
// request that does not parse.
var requestOutcomes = []string{wire.OutcomeConnect, wire.OutcomeOutOfSession, wire.OutcomeForward, wire.OutcomeFollowUp, wire.OutcomeFlow, "error"}

// NewMetrics creates the collectors and registers them with reg (nil
// registers nothing).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callflow_decider_requests_total",
			Help: "Decide requests handled by this process's deciders, by outcome (connect, out_of_session, forward, follow_up, flow, error).",
		}, []string{"outcome"}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callflow_session_updates_total",
			Help: "Connected calls this process's deciders counted in their masking session after the answer, by result: recorded, not_found (the session was deleted), failed (storage error or timeout), dropped (write queue full, or left at stop).",
		}, []string{"result"}),
		deferred: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "callflow_session_counts_deferred",
			Help: "Sessions whose connected calls this process's deciders hold to count later (sessions without maxCalls or an idle expiry: their calls are merged for up to --session-count-delay, then written).",
		}),
		flowRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callflow_flow_restarts_total",
			Help: "Flow states this process's deciders could not continue, by reason (undecodable: a flow clientActionId that does not decode; not_attached: its flow is not the number's; version_gone: its version is no longer kept; step_missing: no such step; step_unusable: a step 8x8 could not carry out) and result (restarted: the number's flow from its start, once; ended: a goodbye and a hangup).",
		}, []string{"reason", "result"}),
		flowSteps: &flowStepCounter{vec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callflow_flow_steps_total",
			Help: "Flow answers this process's deciders gave, by flow and the step answered (where callers are in each IVR flow); past " + strconv.Itoa(maxFlowStepSeries) + " flow and step pairs, further ones count under flow \"_other\".",
		}, []string{"flow", "step"})},
	}
	for _, o := range requestOutcomes {
		m.requests.WithLabelValues(o)
	}
	for _, r := range updateResults {
		m.updates.WithLabelValues(r)
	}
	newRestartCounters(m.flowRestarts) // every series from zero
	// The overflow series exists from the start, so that the metric is
	// exported before the first flow answer.
	m.flowSteps.vec.WithLabelValues("_other", "_other")
	if reg != nil {
		reg.MustRegister(m.requests, m.updates, m.deferred, m.flowRestarts, m.flowSteps.vec)
	}
	return m
}

// maxFlowStepSeries bounds the flow and step pairs callflow_flow_steps_total
// keeps apart: flows are data, and a metric's series must stay bounded.
const maxFlowStepSeries = 2000

// flowStepCounter counts flow answers by flow and step, with at most
// maxFlowStepSeries pairs; later pairs share flow "_other".
type flowStepCounter struct {
	vec  *prometheus.CounterVec
	mu   sync.Mutex
	seen map[[2]string]prometheus.Counter
}

func (c *flowStepCounter) inc(flow, step string) {
	c.mu.Lock()
	ctr, ok := c.seen[[2]string{flow, step}]
	if !ok {
		if c.seen == nil {
			c.seen = make(map[[2]string]prometheus.Counter)
		}
		if len(c.seen) < maxFlowStepSeries {
			ctr = c.vec.WithLabelValues(flow, step)
			c.seen[[2]string{flow, step}] = ctr
		} else {
			ctr = c.vec.WithLabelValues("_other", "_other")
		}
	}
	c.mu.Unlock()
	ctr.Inc()
}
