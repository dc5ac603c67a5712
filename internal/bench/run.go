package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// probeWait bounds how long the load waits for the deciders to see the
// sessions it created.
const probeWait = 10 * time.Second

// auditMargin is how far before the run the stream is read from, for
// clock differences between this machine and the NATS server.
const auditMargin = 10 * time.Second

// Run does one `callflow bench`: creates the sessions, runs the baseline
// (when asked) and the load, audits (when asked) and prints the report to
// stdout, as text or JSON; progress lines and notices go to stderr. The
// report is returned too; an error means the run could not be done (a bad
// configuration, the admin API refusing sessions), not that the system
// under test failed: that is in the report.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, configError{err}
	}
	started := time.Now()
	runID := cfg.RunID
	if runID == "" {
		runID = strconv.FormatInt(started.UnixMilli(), 10)
	}
	mode := "closed"
	if cfg.Rate > 0 {
		mode = "open"
	}
	rep := &Report{
		RunID:   runID,
		Started: started.UTC(),
		Machine: machine(),
		Config: RunConfig{
			URL: cfg.URL, Mode: mode, Rate: cfg.Rate, Duration: cfg.Duration.String(), Connections: cfg.Connections,
			Timeout: cfg.Timeout.String(), Warmup: cfg.Warmup.String(), Drain: cfg.Drain.String(), Sessions: cfg.Sessions, Mix: cfg.Mix,
			Baseline: cfg.Baseline, Chain: cfg.Chain, Audit: cfg.Audit, Soak: cfg.Soak,
		},
	}
	procs := newProcWatch(procfs.DefaultMountPoint, cfg.PIDs)
	fmt.Fprintf(stderr, "callflow bench: run %s, event ids bench-%s-<n>\n", runID, runID)

	cleanup := func() {}
	sessions := MakeSessions(runID, cfg.Sessions)
	traffic, err := NewTraffic(runID, started, sessions, cfg.Mix)
	if err != nil {
		return nil, err
	}
	if len(sessions) > 0 {
		t0 := time.Now()
		created, err := CreateSessions(ctx, cfg.AdminURL, cfg.AdminToken, sessions, sessionTTL(cfg), cfg.Timeout)
		rep.Sessions = &SessionsResult{Created: len(created), Seconds: time.Since(t0).Round(time.Millisecond).Seconds()}
		// The sessions go when the run ends, however it ends: before the
		// report on success, on the way out otherwise.
		cleanup = func() { removeSessions(ctx, cfg, created, rep.Sessions, stderr) }
		defer func() { cleanup() }()
		if err != nil {
			return nil, fmt.Errorf("%d of %d sessions created: %w", len(created), len(sessions), err)
		}
		rep.Sessions.Visible = probeSessions(ctx, cfg.URL, traffic, sessions, cfg.Timeout, probeWait)
		if !rep.Sessions.Visible {
			fmt.Fprintf(stderr, "callflow bench: WARNING: no probe call to a new session was connected within %s; in-session calls may be answered out of session\n", probeWait)
		}
	}

	spec := LoadSpec{
		Rate: cfg.Rate, Duration: cfg.Duration, Connections: cfg.Connections,
		Timeout: cfg.Timeout, Drain: cfg.Drain,
	}
	if cfg.ReportEvery > 0 && (cfg.Soak || cfg.Duration > cfg.ReportEvery) {
		spec.ReportEvery = cfg.ReportEvery
	}

	for _, ref := range references(cfg) {
		res, err := runReference(ctx, cfg, spec, ref, runID, started, sessions, stderr)
		if err != nil {
			return nil, err
		}
		*ref.result(rep) = res
	}

	sspec := spec
	sspec.Name, sspec.URL = "system", cfg.URL
	sspec.TrackAnswered = cfg.Audit
	sspec.CheckAnswers = true
	sspec.OnProgress = func(p Progress) {
		procs.sample(false)
		writeProgress(stderr, p, procs.snapshot())
	}
	fmt.Fprintf(stderr, "callflow bench: load on %s\n", cfg.URL)
	if err := warmup(ctx, cfg, sspec, runID+"w", started, sessions, stderr); err != nil {
		return nil, err
	}
	loadStart := time.Now()
	res, answered, err := Load(ctx, sspec, traffic)
	if err != nil {
		return nil, err
	}
	rep.System = res
	if rep.Baseline != nil {
		rep.Ratio = newRatio(res, rep.Baseline)
	}
	if rep.Chain != nil {
		rep.RatioChain = newRatio(res, rep.Chain)
	}

	if cfg.Audit {
		fmt.Fprintf(stderr, "callflow bench: auditing (waiting up to %s for the stores)\n", cfg.AuditWait)
		actx := context.WithoutCancel(ctx)
		if ctx.Err() != nil {
			// Interrupted: audit what was answered, without waiting.
			cfg.AuditWait = 0
		}
		a, err := runAudit(actx, auditSpec{
			natsURL: cfg.NATSURL, stream: cfg.Stream,
			chAddr: cfg.ClickHouseAddr, chDB: cfg.ClickHouseDatabase, chUser: cfg.ClickHouseUser, chPassword: cfg.ClickHousePassword,
			wait: cfg.AuditWait, since: loadStart.Add(-auditMargin),
		}, traffic, res.indexes, answered)
		if err != nil {
			return nil, err
		}
		rep.Audit = a
	}
	cleanup()
	cleanup = func() {}
	procs.sample(false)
	if len(cfg.PIDs) > 0 {
		rep.Processes = procs.snapshot()
	}
	if cfg.JSON {
		if err := rep.WriteJSON(stdout); err != nil {
			return rep, err
		}
	} else {
		rep.WriteText(stdout)
	}
	return rep, rep.verdict()
}

// sessionTTL is the sessions' lifetime: as asked, but never shorter than
// the run, or in-session calls of a long soak would turn out of session
// halfway; whole seconds, rounded up.
func sessionTTL(cfg Config) time.Duration {
	if cfg.SessionTTL <= 0 {
		return 0
	}
	need := 2*(cfg.Warmup+cfg.Duration+cfg.Drain) + 10*time.Minute
	return max(cfg.SessionTTL, need.Truncate(time.Second)+time.Second)
}

// removeSessions deletes the sessions a run created, bounded in time; a
// failure is reported in res and on stderr, not fatal: what is left
// expires with its TTL.
func removeSessions(ctx context.Context, cfg Config, ids []string, res *SessionsResult, stderr io.Writer) {
	if len(ids) == 0 {
		return
	}
	removed, err := RemoveSessions(ctx, cfg.AdminURL, cfg.AdminToken, ids, cfg.Timeout)
	res.Removed = removed
	if err != nil {
		res.RemoveError = err.Error()
		fmt.Fprintf(stderr, "callflow bench: WARNING: %d of the %d sessions created were not removed (they expire with --session-ttl): %v\n", len(ids)-removed, len(ids), err)
	}
}

// reference is a server measured with the same load before the system:
// the bare fasthttp responder, the straightforward chain.
type reference struct {
	name   string
	start  func() (url string, stop func() error, err error)
	result func(*Report) **Result
}

// references are the ones cfg asks for, in the order they run.
func references(cfg Config) []reference {
	var refs []reference
	if cfg.Baseline {
		refs = append(refs, reference{
			name: "baseline",
			start: func() (string, func() error, error) {
				b, err := StartBaseline()
				if err != nil {
					return "", nil, err
				}
				return b.URL(), b.Close, nil
			},
			result: func(r *Report) **Result { return &r.Baseline },
		})
	}
	if cfg.Chain {
		refs = append(refs, reference{
			name: "chain",
			start: func() (string, func() error, error) {
				if len(cfg.ChainCommand) > 0 {
					return startChainProcess(cfg.ChainCommand)
				}
				c, err := StartChain("127.0.0.1:0")
				if err != nil {
					return "", nil, err
				}
				return c.URL(), c.Close, nil
			},
			result: func(r *Report) **Result { return &r.Chain },
		})
	}
	return refs
}

// runReference starts ref, warms it up and loads it as the system will be,
// with the same bodies under ids of its own, and stops it.
func runReference(ctx context.Context, cfg Config, spec LoadSpec, ref reference, runID string, started time.Time, sessions []Session, stderr io.Writer) (*Result, error) {
	url, stop, err := ref.start()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref.name, err)
	}
	defer stop()
	spec.Name, spec.URL = ref.name, url
	spec.OnProgress = func(p Progress) { fmt.Fprint(stderr, ref.name+" "); writeProgress(stderr, p, nil) }
	traffic, err := NewTraffic(runID+ref.name[:1], started, sessions, cfg.Mix)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "callflow bench: %s on %s\n", ref.name, url)
	if err := warmup(ctx, cfg, spec, runID+ref.name[:1]+"w", started, sessions, stderr); err != nil {
		return nil, err
	}
	res, _, err := Load(ctx, spec, traffic)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref.name, err)
	}
	return res, nil
}

// warmup runs spec for cfg.Warmup with traffic of its own run id (so its
// events are not the measured run's, nor audited) and prints a line.
func warmup(ctx context.Context, cfg Config, spec LoadSpec, runID string, started time.Time, sessions []Session, stderr io.Writer) error {
	if cfg.Warmup <= 0 {
		return nil
	}
	t, err := NewTraffic(runID, started, sessions, cfg.Mix)
	if err != nil {
		return err
	}
	spec.Name, spec.Duration, spec.ReportEvery, spec.TrackAnswered = "warmup", cfg.Warmup, 0, false
	res, _, err := Load(ctx, spec, t)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "callflow bench: warm-up of %s on %s: %d answered, %d errors, p99 %s (not counted)\n",
		cfg.Warmup, spec.URL, res.Answered, res.ErrorCount(), fmtMs(res.Latency.P99))
	return nil
}

// ErrFailed is returned, after the report is printed, when the audit found
// a store not holding every answered event exactly once, or when no
// request was answered at all: scripts and soaks can rely on the exit code.
var ErrFailed = errors.New("bench failed")

func (rep *Report) verdict() error {
	var why []string
	if rep.System != nil && rep.System.Answered == 0 && !rep.System.Interrupted {
		why = append(why, "no request was answered 200 (see errors)")
	}
	if a := rep.Audit; a != nil {
		for _, s := range []*StoreAudit{a.Stream, a.ClickHouse} {
			if s != nil && !s.OK() {
				why = append(why, fmt.Sprintf("audit of %s: %d missing, %d duplicates%s", s.Where, s.Missing, s.Duplicates, errSuffix(s.Error)))
			}
		}
	}
	if len(why) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrFailed, strings.Join(why, "; "))
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " (" + e + ")"
}
