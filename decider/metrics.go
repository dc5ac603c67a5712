package decider

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the deciders' Prometheus collectors, shared by every decider
// instance of a process.
type Metrics struct {
	requests *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them with reg (nil
// registers nothing).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "callflow_decider_requests_total",
		Help: "Decide requests handled by this process's deciders, by outcome (connect, out_of_session, error).",
	}, []string{"outcome"})}
	for _, o := range []string{"connect", "out_of_session", "error"} {
		m.requests.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.requests)
	}
	return m
}
