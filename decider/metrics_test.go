package decider

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Flow answers are counted by flow and step, with a bounded number of
// series: pairs past the bound share flow "_other".
func TestFlowStepsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.flowSteps.inc("main-menu", "welcome")
	m.flowSteps.inc("main-menu", "welcome")
	m.flowSteps.inc("main-menu", "driver")
	if got := testutil.ToFloat64(m.flowSteps.vec.WithLabelValues("main-menu", "welcome")); got != 2 {
		t.Errorf("main-menu/welcome = %v, want 2", got)
	}
	for i := range maxFlowStepSeries + 5 {
		m.flowSteps.inc("flow", fmt.Sprint(i))
	}
	if n := testutil.CollectAndCount(m.flowSteps.vec); n != maxFlowStepSeries+1 {
		t.Errorf("%d series, want %d and one _other", n, maxFlowStepSeries+1)
	}
	// 2 pairs counted before, so the last 7 of the loop went to _other.
	if got := testutil.ToFloat64(m.flowSteps.vec.WithLabelValues("_other", "_other")); got != 7 {
		t.Errorf("_other = %v, want 7", got)
	}
}
