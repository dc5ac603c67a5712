package poolfeed

import (
	"sort"

	"github.com/callflow/callflow/internal/session"
	"github.com/prometheus/client_golang/prometheus"
)

// Results of a pool update record (callflow_pool_updates_total).
const (
	// ResultApplied: applied to the pool, whether or not it changed
	// anything, and acknowledged.
	ResultApplied = "applied"
	// ResultRefused: not a usable pool update; acknowledged and skipped.
	ResultRefused = "refused"
	// ResultRetried: a delivery that met a storage error; the record is
	// delivered again later.
	ResultRetried = "retried"
)

// statusOther labels a number status 8x8 sent that is none of
// session.NumberStatuses.
const statusOther = "other"

// Metrics are the feed's Prometheus metrics.
type Metrics struct {
	updates       *prometheus.CounterVec
	changes       *prometheus.CounterVec
	auditFailures prometheus.Counter
}

// NewMetrics creates the feed's metrics and registers them with reg (none
// when nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callflow_pool_updates_total",
			Help: "VIRTUAL_NUMBER_UPDATE records the pool feed handled, by result: applied (and acknowledged), refused (not a usable pool update; acknowledged), retried (a storage error; delivered again later).",
		}, []string{"result"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callflow_pool_number_changes_total",
			Help: "Pool numbers 8x8's updates changed (added, status or country changed, deactivated by a snapshot), by the status they have after.",
		}, []string{"status"}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callflow_pool_audit_failures_total",
			Help: "Audit records of pool changes made by 8x8's updates that could be kept neither in JetStream nor in the spool.",
		}),
	}
	for _, r := range []string{ResultApplied, ResultRefused, ResultRetried} {
		m.updates.WithLabelValues(r)
	}
	for _, s := range append(session.NumberStatuses[:len(session.NumberStatuses):len(session.NumberStatuses)], statusOther) {
		m.changes.WithLabelValues(s)
	}
	if reg != nil {
		reg.MustRegister(m.updates, m.changes, m.auditFailures)
	}
	return m
}

// changed counts a number changed to status.
func (m *Metrics) changed(status string) { m.changes.WithLabelValues(statusLabel(status)).Inc() }

// statusLabel is status when it is one of session.NumberStatuses, else
// "other": the label's values stay few whatever 8x8 sends.
func statusLabel(status string) string {
	for _, s := range session.NumberStatuses {
		if status == s {
			return s
		}
	}
	return statusOther
}

var numbersDesc = prometheus.NewDesc("callflow_pool_numbers",
	"Numbers of the pool by sub-account and status (Active, Unhealthy, Expiring, Inactive, other), from this process's index, read at scrape. "+
		"Every status of a sub-account that has numbers is reported, 0 included; an empty pool reports its statuses as 0 under sub_account=\"\".",
	[]string{"sub_account", "status"}, nil)

// numbersCollector reports the pool's numbers at scrape.
type numbersCollector struct {
	stats func() map[string]map[string]int
}

// NumbersCollector reports callflow_pool_numbers{sub_account, status} from
// stats (session.Store.PoolStats) at each scrape.
func NumbersCollector(stats func() map[string]map[string]int) prometheus.Collector {
	return numbersCollector{stats}
}

// Describe implements prometheus.Collector.
func (c numbersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- numbersDesc }

// Collect implements prometheus.Collector.
func (c numbersCollector) Collect(ch chan<- prometheus.Metric) {
	pools := c.stats()
	if len(pools) == 0 {
		// Zeros, so that the series exist (and a dashboard shows an
		// empty pool as empty, not as no data).
		pools = map[string]map[string]int{"": {}}
	}
	accounts := make([]string, 0, len(pools))
	for a := range pools {
		accounts = append(accounts, a)
	}
	sort.Strings(accounts)
	for _, a := range accounts {
		counts := map[string]int{statusOther: 0}
		for _, s := range session.NumberStatuses {
			counts[s] = 0
		}
		for s, n := range pools[a] {
			counts[statusLabel(s)] += n
		}
		for s, n := range counts {
			ch <- prometheus.MustNewConstMetric(numbersDesc, prometheus.GaugeValue, float64(n), a, s)
		}
	}
}
