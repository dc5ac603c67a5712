package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Result is the outcome of one load run against one URL.
type Result struct {
	// Name is "system" (the --url) or "baseline".
	Name        string  `json:"name"`
	URL         string  `json:"url"`
	Mode        string  `json:"mode"` // "open" or "closed"
	Rate        float64 `json:"rate,omitempty"`
	Connections int     `json:"connections"`
	// Duration is the configured duration, Elapsed the time from the
	// first send to the last answer, in seconds.
	Duration float64 `json:"duration_s"`
	Elapsed  float64 `json:"elapsed_s"`
	// Scheduled is, in open loop, the number of requests due in Duration.
	Scheduled uint64 `json:"scheduled,omitempty"`
	// Requests were sent; Answered got a 200.
	Requests uint64 `json:"requests"`
	Answered uint64 `json:"answered"`
	// Throughput is answers (200) per second of Elapsed.
	Throughput float64 `json:"throughput"`
	// Latency is the time to an HTTP answer (any status), counted in open
	// loop from the scheduled send time, in milliseconds.
	Latency Summary `json:"latency_ms"`
	// ServiceTime (open loop) counts from the actual send; SendLag is how
	// late sends were against the schedule (a busy system, or a starved
	// load generator).
	ServiceTime *Summary `json:"service_time_ms,omitempty"`
	SendLag     *Summary `json:"send_lag_ms,omitempty"`
	// Errors by kind: http_<status>, timeout, connection, other, and
	// drain_cut (in flight when Duration + Drain ran out) and not_sent
	// (open loop: due but not sent by then).
	Errors       map[string]uint64 `json:"errors"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	// Answers to the 200s by kind: connect, out_of_session, fallback, ack,
	// other, bad.
	Answers    map[string]uint64 `json:"answers"`
	SentByKind map[string]uint64 `json:"sent_by_kind"`
	// Wrong counts answers that contradict the request (checked against
	// the real system only).
	Wrong       map[string]uint64 `json:"wrong_answers,omitempty"`
	Interrupted bool              `json:"interrupted,omitempty"`
	// BenchCPU is the CPU this process used during the run, in cores
	// (CPU seconds per second of Elapsed): the load generator, and for
	// the baseline the baseline server too. On a shared machine it is CPU
	// the system under test did not have.
	BenchCPU float64 `json:"bench_cpu_cores"`

	latency *Histogram
	indexes uint64 // request indexes handed out (0..indexes-1)
}

// ErrorCount is the number of failed requests.
func (r *Result) ErrorCount() uint64 {
	var n uint64
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// LatencyHistogram is the latency distribution of the run.
func (r *Result) LatencyHistogram() *Histogram { return r.latency }

// Ratio compares the system with the baseline of the same run.
type Ratio struct {
	// Throughput is the system's answers/s over the baseline's.
	Throughput float64 `json:"throughput"`
	P50        Pair    `json:"p50_ms"`
	P99        Pair    `json:"p99_ms"`
	P999       Pair    `json:"p99_9_ms"`
	Max        Pair    `json:"max_ms"`
}

// Pair is one figure of the system beside the baseline's.
type Pair struct {
	System   float64 `json:"system"`
	Baseline float64 `json:"baseline"`
}

// Machine describes where the run happened.
type Machine struct {
	Host       string `json:"host"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	GoVersion  string `json:"go_version"`
	CPUModel   string `json:"cpu_model,omitempty"`
}

// RunConfig is the configuration echoed in the report (no secrets).
type RunConfig struct {
	URL         string  `json:"url"`
	Mode        string  `json:"mode"`
	Rate        float64 `json:"rate"`
	Duration    string  `json:"duration"`
	Connections int     `json:"connections"`
	Timeout     string  `json:"timeout"`
	Warmup      string  `json:"warmup"`
	Drain       string  `json:"drain"`
	Sessions    int     `json:"sessions"`
	Mix         Mix     `json:"mix"`
	Baseline    bool    `json:"baseline"`
	Chain       bool    `json:"chain"`
	Audit       bool    `json:"audit"`
	Soak        bool    `json:"soak"`
}

// SessionsResult is the session creation before the load.
type SessionsResult struct {
	Created int     `json:"created"`
	Seconds float64 `json:"seconds"`
	// Visible says the deciders connected a probe call before the load.
	Visible bool `json:"visible"`
	// Removed is how many were deleted after the run; RemoveError the
	// first failure to delete one (those left expire with their TTL).
	Removed     int    `json:"removed"`
	RemoveError string `json:"remove_error,omitempty"`
}

// Report is everything one invocation found.
type Report struct {
	RunID    string          `json:"run_id"`
	Started  time.Time       `json:"started"`
	Machine  Machine         `json:"machine"`
	Config   RunConfig       `json:"config"`
	Sessions *SessionsResult `json:"sessions,omitempty"`
	Baseline *Result         `json:"baseline,omitempty"`
	Chain    *Result         `json:"chain,omitempty"`
	System   *Result         `json:"system"`
	Ratio    *Ratio          `json:"ratio,omitempty"`
	// RatioChain compares the system with the straightforward chain.
	RatioChain *Ratio       `json:"ratio_chain,omitempty"`
	Audit      *AuditResult `json:"audit,omitempty"`
	Processes  []ProcMem    `json:"processes,omitempty"`
}

func newRatio(sys, base *Result) *Ratio {
	r := &Ratio{
		P50:  Pair{sys.Latency.P50, base.Latency.P50},
		P99:  Pair{sys.Latency.P99, base.Latency.P99},
		P999: Pair{sys.Latency.P999, base.Latency.P999},
		Max:  Pair{sys.Latency.Max, base.Latency.Max},
	}
	if base.Throughput > 0 {
		r.Throughput = round3(sys.Throughput / base.Throughput)
	}
	return r
}

func round3(v float64) float64 {
	return float64(int64(v*1000+0.5)) / 1000
}

func machine() Machine {
	host, _ := os.Hostname()
	m := Machine{Host: host, CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// WriteJSON prints the report as one JSON object.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// fmtMs prints a figure in milliseconds with a sensible precision.
func fmtMs(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2fs", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.3fms", v)
	}
}

func fmtDur(d time.Duration) string { return fmtMs(float64(d) / 1e6) }

func fmtSummary(s *Summary) string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, %d samples)",
		fmtMs(s.P50), fmtMs(s.P90), fmtMs(s.P99), fmtMs(s.P999), fmtMs(s.Max), fmtMs(s.Mean), s.Count)
}

// counts prints a map as "k v, k v" in a fixed order, keys in order
// first, then the rest sorted.
func counts(m map[string]uint64, order []string, skipZero bool) string {
	var parts []string
	seen := map[string]bool{}
	for _, k := range order {
		seen[k] = true
		if v := m[k]; v > 0 || !skipZero {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
	}
	var rest []string
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		if v := m[k]; v > 0 || !skipZero {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (r *Result) writeText(w io.Writer) {
	title := r.Name + " " + r.URL
	fmt.Fprintf(w, "\n%s\n", title)
	load := fmt.Sprintf("closed loop, %d connections", r.Connections)
	if r.Mode == "open" {
		load = fmt.Sprintf("open loop at %g/s (%d scheduled), up to %d connections", r.Rate, r.Scheduled, r.Connections)
	}
	if r.Interrupted {
		load += ", INTERRUPTED"
	}
	fmt.Fprintf(w, "  load        %s for %gs\n", load, r.Duration)
	fmt.Fprintf(w, "  requests    %d sent, %d answered 200 in %.2fs: %.1f answers/s\n", r.Requests, r.Answered, r.Elapsed, r.Throughput)
	fmt.Fprintf(w, "  bench cpu   %.2f cores used by this process\n", r.BenchCPU)
	from := "from the send"
	if r.Mode == "open" {
		from = "from the scheduled send"
	}
	fmt.Fprintf(w, "  latency     %s\n              (%s; answered requests of any status)\n", fmtSummary(&r.Latency), from)
	if r.ServiceTime != nil {
		fmt.Fprintf(w, "  service     %s\n", fmtSummary(r.ServiceTime))
		fmt.Fprintf(w, "  send lag    p99 %s  max %s  (sends later than scheduled: a busy system or a starved load generator)\n",
			fmtMs(r.SendLag.P99), fmtMs(r.SendLag.Max))
	}
	fmt.Fprintf(w, "  errors      %s\n", counts(r.Errors, []string{"timeout", "connection", "drain_cut", "not_sent"}, true))
	keys := make([]string, 0, len(r.ErrorSamples))
	for k := range r.ErrorSamples {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "                %s: %s\n", k, oneLine(r.ErrorSamples[k]))
	}
	fmt.Fprintf(w, "  answers     %s\n", counts(r.Answers, answerNames[:], false))
	fmt.Fprintf(w, "  sent        %s\n", counts(r.SentByKind, kindNames[:], false))
	if r.Wrong != nil {
		fmt.Fprintf(w, "  wrong       %s\n", counts(r.Wrong, []string{"in_session_not_connected", "out_of_session_connected"}, false))
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

// WriteText prints the report for people.
func (rep *Report) WriteText(w io.Writer) {
	c := rep.Config
	mode := fmt.Sprintf("closed loop, %d connections", c.Connections)
	if c.Mode == "open" {
		mode = fmt.Sprintf("open loop at %g/s", c.Rate)
	}
	fmt.Fprintf(w, "callflow bench run %s: %s for %s against %s\n", rep.RunID, mode, c.Duration, c.URL)
	m := rep.Machine
	fmt.Fprintf(w, "machine     %s, %d CPUs (%s), GOMAXPROCS %d, %s\n", m.Host, m.CPUs, m.CPUModel, m.GOMAXPROCS, m.GoVersion)
	fmt.Fprintf(w, "mix         in-session %g, out-of-session %g, status %g, summary %g\n", c.Mix.InSession, c.Mix.OutOfSession, c.Mix.Status, c.Mix.Summary)
	if c.Warmup != "" && c.Warmup != "0s" {
		fmt.Fprintf(w, "warm-up     %s of the same load before each run, not counted\n", c.Warmup)
	}
	if s := rep.Sessions; s != nil {
		vis := "the deciders connected a probe call"
		if !s.Visible {
			vis = "WARNING: no probe call was connected before the load"
		}
		fmt.Fprintf(w, "sessions    %d created in %.2fs; %s; %d removed afterwards%s\n", s.Created, s.Seconds, vis, s.Removed, errSuffix(s.RemoveError))
	}
	for _, r := range []*Result{rep.Baseline, rep.Chain, rep.System} {
		if r != nil {
			r.writeText(w)
		}
	}
	writeRatio(w, "baseline", rep.Ratio, rep.System, rep.Baseline)
	writeRatio(w, "chain", rep.RatioChain, rep.System, rep.Chain)
	if a := rep.Audit; a != nil {
		a.writeText(w)
	}
	if len(rep.Processes) > 0 {
		fmt.Fprintf(w, "\nprocesses\n")
		for _, p := range rep.Processes {
			if p.Error != "" {
				fmt.Fprintf(w, "  pid %d: %s\n", p.PID, p.Error)
				continue
			}
			fmt.Fprintf(w, "  pid %d (%s): peak RSS %s (VmHWM); RSS %s at start, %s at end, %s highest sampled\n",
				p.PID, p.Name, mib(p.PeakRSS), mib(p.RSSStart), mib(p.RSSEnd), mib(p.RSSMax))
		}
	}
}

// writeRatio prints the system beside a reference of the same run.
func writeRatio(w io.Writer, name string, r *Ratio, sys, ref *Result) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "\nsystem / %s\n", name)
	fmt.Fprintf(w, "  throughput  %.3f of the %s (%.1f vs %.1f answers/s)\n", r.Throughput, name, sys.Throughput, ref.Throughput)
	for _, p := range []struct {
		name string
		v    Pair
	}{{"p50", r.P50}, {"p99", r.P99}, {"p99.9", r.P999}, {"max", r.Max}} {
		fmt.Fprintf(w, "  %-10s  %s vs %s\n", p.name, fmtMs(p.v.System), fmtMs(p.v.Baseline))
	}
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// writeProgress prints one progress line.
func writeProgress(w io.Writer, p Progress, procs []ProcMem) {
	var b strings.Builder
	fmt.Fprintf(&b, "[%6s] sent %d answered %d  %.0f/s  p99 %s (since start %s, max %s)  errors %d  fallbacks %d",
		p.Elapsed.Truncate(time.Second), p.Sent, p.Answered, p.Rate, fmtDur(p.P99), fmtDur(p.TotalP99), fmtDur(p.Max), p.Errors, p.Fallbacks)
	if p.Wrong > 0 {
		fmt.Fprintf(&b, "  wrong %d", p.Wrong)
	}
	for _, pm := range procs {
		if pm.Error == "" {
			fmt.Fprintf(&b, "  rss[%d] %s", pm.PID, mib(pm.RSSEnd))
		}
	}
	fmt.Fprintln(w, b.String())
}
