package main

// The fault harness: a whole callflow deployment of real processes (the
// binary built by TestMain) around an in-process NATS server, driven by the
// load tool with its audit, so that a test can break one part while calls
// flow and then check the promise of issue 4: every call answered, every
// answered webhook in ClickHouse exactly once.
//
//	rig := newFaultRig(t, faultConfig{})
//	load := rig.startLoad(t, faultLoadConfig{})
//	load.waitStarted(t)
//	... break something, repair it ...
//	rep := load.wait(t)
//	rig.requireExactlyOnce(t, rep)

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callflow/callflow/decider"
	"github.com/callflow/callflow/internal/bench"
	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/testlog"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// faultConfig says what a faultRig runs. The zero value is an in-process
// NATS server, one ingest, two decider processes and an archiver writing
// to a fresh database of the shared test ClickHouse.
type faultConfig struct {
	// NATSURL points every role at these NATS servers (comma-separated)
	// instead of the rig's in-process one (a cluster, say). StopNATS and
	// StartNATS need the in-process server.
	NATSURL string
	// Deciders is the number of decider processes (default 2; -1 for
	// none) and DecidersEach their --deciders (default 1).
	Deciders     int
	DecidersEach int
	// NoArchiver runs no archiver (the load's audit then covers the
	// stream only).
	NoArchiver bool
	// PrivateClickHouse starts a ClickHouse server of the test's own
	// (rig.CH) that it may stop and start, instead of a database on the
	// shared one.
	PrivateClickHouse bool
	// Extra flags for each role, after the rig's own (a flag given twice
	// takes the last value, so these override the rig's defaults).
	IngestArgs, DeciderArgs, ArchiverArgs []string
	// Env is added to the environment of every process.
	Env []string
}

// The rig's flags, before faultConfig's extra ones.
var (
	// Fault tests want the breaker to probe again soon after the deciders
	// return, not after the default 5s.
	faultIngestArgs = []string{"--breaker-open-for", "2s", "--log-format", "json"}
	// What a killed archiver held is redelivered after the ack wait.
	faultArchiverArgs = []string{"--batch-max-age", "200ms", "--archiver-ack-wait", "5s", "--log-format", "json"}
	faultDeciderArgs  = []string{"--log-format", "json"}
)

// faultRig is a running deployment. Its fields are for tests to read;
// processes are (re)started and broken through its methods. Everything it
// starts is stopped when the test ends.
type faultRig struct {
	cfg faultConfig

	// NATSURL is what every role connects to. NATS is the in-process
	// server (nil when faultConfig.NATSURL was given); StartNATS starts it
	// again on the same port (natsPort) and store (natsDir).
	NATSURL  string
	NATS     *server.Server
	natsDir  string
	natsPort int

	// CHAddr and DB are where the archiver writes; CH is the private
	// server when faultConfig.PrivateClickHouse.
	CHAddr, DB string
	CH         *chtest.Server

	// HTTPAddr serves the webhook; IngestAdmin /readyz, /metrics and the
	// session API: ports the first ingest chose, kept across restarts, as
	// is DataDir, the ingest's --data-dir (its spool).
	HTTPAddr, IngestAdmin, DataDir string
	Ingest                         *proc

	// Deciders are the decider processes started so far (killed ones
	// included), DeciderAdmins their admin addresses.
	Deciders      []*proc
	DeciderAdmins []string

	Archiver      *proc
	ArchiverAdmin string
}

// newFaultRig starts NATS, ClickHouse (when private), the ingest, the
// deciders and the archiver, and waits until each is ready.
func newFaultRig(t *testing.T, cfg faultConfig) *faultRig {
	t.Helper()
	if cfg.Deciders == 0 {
		cfg.Deciders = 2
	}
	if cfg.DecidersEach == 0 {
		cfg.DecidersEach = 1
	}
	r := &faultRig{cfg: cfg, NATSURL: cfg.NATSURL}
	if r.NATSURL == "" {
		// On a port the server picks; StartNATS brings it back on that
		// port, where the clients reconnect to.
		r.natsDir = t.TempDir()
		r.NATS = natstest.RunServerWith(t, natstest.Options(r.natsDir))
		r.natsPort = r.NATS.Addr().(*net.TCPAddr).Port
		r.NATSURL = r.NATS.ClientURL()
	}
	if !cfg.NoArchiver {
		if cfg.PrivateClickHouse {
			r.CH = chtest.StartServer(t)
			r.CHAddr = r.CH.Addr
		} else {
			r.CHAddr = chtest.Addr(t)
		}
		r.DB = chtest.Database(t, r.CHAddr)
	}

	r.DataDir = t.TempDir()
	r.StartIngest(t)
	for cfg.Deciders > 0 && len(r.Deciders) < cfg.Deciders {
		r.StartDecider(t)
	}
	if !cfg.NoArchiver {
		r.StartArchiver(t)
	}
	return r
}

// StartIngest starts the ingest on the rig's data directory and waits
// until it is ready: the first time on ports of its choosing, again
// (after it was stopped) on the same addresses, where the load keeps
// sending.
func (r *faultRig) StartIngest(t *testing.T) *proc {
	t.Helper()
	httpAddr, admin := r.HTTPAddr, r.IngestAdmin
	if httpAddr == "" {
		httpAddr, admin = anyPort, anyPort
	}
	args := []string{"ingest", "--nats-url", r.NATSURL, "--http-addr", httpAddr, "--admin-addr", admin,
		"--data-dir", r.DataDir}
	args = append(append(args, faultIngestArgs...), r.cfg.IngestArgs...)
	if r.HTTPAddr == "" {
		r.Ingest = start(t, r.cfg.Env, args...)
	} else {
		r.Ingest = startOn(t, r.cfg.Env, []string{r.HTTPAddr, r.IngestAdmin}, args...)
	}
	a := waitReady(t, r.Ingest)
	r.HTTPAddr, r.IngestAdmin = a.Webhook, a.Admin
	return r.Ingest
}

// StartDecider starts one more decider process and waits until it is
// ready (its deciders registered, after their session snapshot).
func (r *faultRig) StartDecider(t *testing.T) *proc {
	t.Helper()
	args := []string{"decider", "--nats-url", r.NATSURL, "--admin-addr", anyPort, "--data-dir", t.TempDir(),
		"--deciders", strconv.Itoa(r.cfg.DecidersEach)}
	args = append(append(args, faultDeciderArgs...), r.cfg.DeciderArgs...)
	p := start(t, r.cfg.Env, args...)
	a := waitReady(t, p)
	r.Deciders = append(r.Deciders, p)
	r.DeciderAdmins = append(r.DeciderAdmins, a.Admin)
	return p
}

// StartArchiver starts the archiver (again) and waits until it is ready,
// which needs ClickHouse up.
func (r *faultRig) StartArchiver(t *testing.T) *proc {
	t.Helper()
	if r.DB == "" {
		t.Fatal("the rig runs without an archiver")
	}
	args := []string{"archiver", "--nats-url", r.NATSURL, "--admin-addr", anyPort, "--data-dir", t.TempDir(),
		"--clickhouse-addr", r.CHAddr, "--clickhouse-database", r.DB}
	args = append(append(args, faultArchiverArgs...), r.cfg.ArchiverArgs...)
	r.Archiver = start(t, r.cfg.Env, args...)
	r.ArchiverAdmin = waitReady(t, r.Archiver).Admin
	return r.Archiver
}

// Kill sends SIGKILL to p and waits for it to exit.
func (r *faultRig) Kill(t *testing.T, p *proc) {
	t.Helper()
	r.Signal(t, p, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("process %d still running 10s after SIGKILL", p.cmd.Process.Pid)
	}
}

// Signal sends sig to p: SIGSTOP hangs it (its connections stay open, it
// answers nothing), SIGCONT resumes it.
func (r *faultRig) Signal(t *testing.T, p *proc, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %d: %v", sig, p.cmd.Process.Pid, err)
	}
}

// StopNATS shuts the in-process NATS server down (its store stays).
func (r *faultRig) StopNATS(t *testing.T) {
	t.Helper()
	if r.NATS == nil {
		t.Fatal("the rig has no in-process NATS server to stop")
	}
	r.NATS.Shutdown()
	r.NATS.WaitForShutdown()
}

// StartNATS starts the in-process NATS server again, on the same port with
// the same store. Another socket may have taken the port while no server
// held it: the start is retried while the port is in use, for at most
// childStartTimeout.
func (r *faultRig) StartNATS(t *testing.T) {
	t.Helper()
	if r.natsDir == "" {
		t.Fatal("the rig has no in-process NATS server to start")
	}
	deadline := time.Now().Add(childStartTimeout)
	for attempt := 1; ; attempt++ {
		opts := natstest.Options(r.natsDir)
		opts.Port = r.natsPort
		s, err := startNATSServer(opts, time.Until(deadline))
		if err == nil {
			t.Cleanup(s.Shutdown)
			r.NATS = s
			return
		}
		if !errors.Is(err, errPortInUse) || time.Now().After(deadline) {
			t.Fatalf("start NATS again on port %d: %v", r.natsPort, err)
		}
		if attempt == 1 {
			t.Logf("NATS cannot listen on port %d yet (%v); retrying", r.natsPort, err)
		}
		time.Sleep(100 * time.Millisecond) // poll until the holder lets go
	}
}

// errPortInUse is the error of a server whose port another socket holds.
var errPortInUse = errors.New("address already in use")

// startNATSServer starts a server with opts and waits until it accepts
// connections, at most within; a server whose listener could not bind
// fails at once, with errPortInUse when the port was taken.
func startNATSServer(opts *server.Options, within time.Duration) (*server.Server, error) {
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	fatal := natsFatalLog(make(chan string, 1))
	s.SetLogger(fatal, false, false)
	go s.Start()
	deadline := time.Now().Add(within)
	for !s.ReadyForConnections(50 * time.Millisecond) {
		select {
		case msg := <-fatal:
			s.Shutdown()
			if strings.Contains(msg, "address already in use") {
				return nil, fmt.Errorf("%w: %s", errPortInUse, msg)
			}
			return nil, errors.New(msg)
		default:
		}
		if time.Now().After(deadline) {
			s.Shutdown()
			return nil, fmt.Errorf("not accepting connections after %s", within)
		}
	}
	return s, nil
}

// natsFatalLog is a NATS server logger that keeps the first fatal error
// (a listener that could not bind) and drops everything else, as the
// tests' servers log nothing.
type natsFatalLog chan string

func (l natsFatalLog) Fatalf(format string, v ...any) {
	select {
	case l <- fmt.Sprintf(format, v...):
	default:
	}
}
func (natsFatalLog) Noticef(string, ...any) {}
func (natsFatalLog) Warnf(string, ...any)   {}
func (natsFatalLog) Errorf(string, ...any)  {}
func (natsFatalLog) Debugf(string, ...any)  {}
func (natsFatalLog) Tracef(string, ...any)  {}

// Connect opens a client connection to the rig's NATS, closed when the
// test ends.
func (r *faultRig) Connect(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(r.NATSURL, nats.Name("callflow-fault-test"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to %s: %v", r.NATSURL, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// Metric returns the sum of every series of the metric name that the
// process with admin address addr exports, and whether it has one. With
// labels (each `key="value"`), only the series that carry all of them are
// summed.
func (r *faultRig) Metric(addr, name string, labels ...string) (float64, bool, error) {
	return metricSum(addr, name, labels...)
}

// metricSum is faultRig.Metric, for any process.
func metricSum(addr, name string, labels ...string) (float64, bool, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		set := rest[:strings.LastIndexByte(rest, '}')+1]
		if !hasLabels(set, labels) {
			continue
		}
		fields := strings.Fields(rest[len(set):])
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, false, fmt.Errorf("%s: %v", line, err)
		}
		sum += v
		found = true
	}
	return sum, found, sc.Err()
}

// hasLabels reports whether the label set {k="v",...} of a series holds
// every one of labels.
func hasLabels(set string, labels []string) bool {
	for _, l := range labels {
		if !strings.Contains(set, "{"+l) && !strings.Contains(set, ","+l) {
			return false
		}
	}
	return true
}

// Breaker states as callflow_decider_breaker_state reports them.
const (
	breakerClosed   = 0
	breakerHalfOpen = 1
	breakerOpen     = 2
)

// BreakerState reads the ingest's callflow_decider_breaker_state.
func (r *faultRig) BreakerState() (int, error) {
	v, ok, err := r.Metric(r.IngestAdmin, "callflow_decider_breaker_state")
	if err == nil && !ok {
		err = errors.New("the ingest exports no callflow_decider_breaker_state")
	}
	return int(v), err
}

// WaitBreaker waits until the ingest reports the breaker in state want.
func (r *faultRig) WaitBreaker(t *testing.T, want int, within time.Duration) {
	t.Helper()
	names := map[int]string{breakerClosed: "closed", breakerHalfOpen: "half-open", breakerOpen: "open"}
	natstest.CheckFor(t, within, 25*time.Millisecond, func() error {
		got, err := r.BreakerState()
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("breaker %s (%d), waiting for %s", names[got], got, names[want])
		}
		return nil
	})
}

// Readyz returns the status code of addr's /readyz and its checks.
func (r *faultRig) Readyz(addr string) (int, map[string]string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body struct{ Checks map[string]string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, body.Checks, nil
}

// faultLoadConfig shapes the load a fault test runs. Zero fields take the
// defaults: modest enough for -race on two cores.
type faultLoadConfig struct {
	// Rate is in calls a second (default 150), for Duration (default
	// 20s).
	Rate     float64
	Duration time.Duration
	// Sessions are created through the admin API before the load, so
	// that most calls are in session (default 20; -1 for none).
	Sessions int
	// AuditWait bounds how long the audit waits for the stream and
	// ClickHouse to hold every answered event (default 90s).
	AuditWait time.Duration
	// Tune has the last word on the load tool's configuration.
	Tune func(*bench.Config)
}

// faultLoad is a load running in the background (bench.Run: sessions,
// open-loop load, then the audit).
type faultLoad struct {
	RunID   string
	cfg     bench.Config
	log     *testlog.Buffer // the load tool's progress lines
	out     bytes.Buffer
	done    chan struct{}
	rep     *bench.Report
	err     error
	cancel  context.CancelFunc
	timeout time.Duration
}

var faultRunSeq struct {
	sync.Mutex
	n int
}

// startLoad runs the load tool against the rig in the background, with
// the audit of the stream and (with an archiver) of ClickHouse through
// FINAL. It is cancelled and waited for when the test ends.
func (r *faultRig) startLoad(t *testing.T, lc faultLoadConfig) *faultLoad {
	t.Helper()
	if lc.Rate == 0 {
		lc.Rate = 150
	}
	if lc.Duration == 0 {
		lc.Duration = 20 * time.Second
	}
	switch lc.Sessions {
	case 0:
		lc.Sessions = 20
	case -1:
		lc.Sessions = 0
	}
	if lc.AuditWait == 0 {
		lc.AuditWait = 90 * time.Second
	}
	faultRunSeq.Lock()
	faultRunSeq.n++
	runID := fmt.Sprintf("%d.%d", time.Now().UnixMilli(), faultRunSeq.n)
	faultRunSeq.Unlock()
	cfg := bench.Config{
		URL:         "http://" + r.HTTPAddr + "/vca",
		Rate:        lc.Rate,
		Duration:    lc.Duration,
		Connections: 128,
		// A call is answered within the decide timeout plus the record
		// timeout; anything slower is an error worth seeing.
		Timeout:     10 * time.Second,
		Drain:       15 * time.Second,
		Sessions:    lc.Sessions,
		SessionTTL:  10 * time.Minute,
		AdminURL:    "http://" + r.IngestAdmin,
		Mix:         bench.DefaultMix,
		Audit:       true,
		NATSURL:     r.NATSURL,
		AuditWait:   lc.AuditWait,
		ReportEvery: 2 * time.Second,
		RunID:       runID,
	}
	if r.DB != "" {
		cfg.ClickHouseAddr, cfg.ClickHouseDatabase = r.CHAddr, r.DB
	}
	if lc.Tune != nil {
		lc.Tune(&cfg)
	}
	l := &faultLoad{RunID: cfg.RunID, cfg: cfg, log: &testlog.Buffer{}, done: make(chan struct{})}
	// Sessions and their probe, the load, the drain, the audit's waits
	// (stream and ClickHouse), and a margin.
	l.timeout = time.Minute + cfg.Duration + cfg.Drain + 2*(cfg.AuditWait+30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	l.cancel = cancel
	go func() {
		defer close(l.done)
		l.rep, l.err = bench.Run(ctx, cfg, &l.out, l.log)
	}()
	t.Cleanup(func() {
		l.cancel()
		select {
		case <-l.done:
		case <-time.After(time.Minute):
			t.Errorf("the load tool still runs a minute after it was cancelled")
		}
		if t.Failed() {
			t.Logf("load tool (run %s):\n%s\n%s", l.RunID, l.log.String(), l.out.String())
		}
	})
	return l
}

// waitStarted waits until the sessions are created and visible and the
// load proper has begun.
func (l *faultLoad) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-l.log.Written("callflow bench: load on "): // printed by bench.Run right before the measured load
	case <-l.done:
		t.Fatalf("the load ended before it started: %v\n%s", l.err, l.log.String())
	case <-time.After(time.Minute):
		t.Fatalf("the load did not start within a minute:\n%s", l.log.String())
	}
}

// running reports whether the load is still under way.
func (l *faultLoad) running() bool {
	select {
	case <-l.done:
		return false
	default:
		return true
	}
}

// wait waits for the load and its audit and returns the report. A report
// whose audit failed is returned too: requireExactlyOnce says why.
func (l *faultLoad) wait(t *testing.T) *bench.Report {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(l.timeout + 10*time.Second):
		t.Fatalf("the load did not finish within %s", l.timeout)
	}
	t.Logf("load tool report (run %s):\n%s", l.RunID, l.out.String())
	if l.rep == nil {
		t.Fatalf("load tool: %v\n%s", l.err, l.log.String())
	}
	if l.err != nil && !errors.Is(l.err, bench.ErrFailed) {
		t.Fatalf("load tool: %v", l.err)
	}
	return l.rep
}

// runLoad runs a load to its end (no fault) and returns its report.
func (r *faultRig) runLoad(t *testing.T, lc faultLoadConfig) *bench.Report {
	t.Helper()
	l := r.startLoad(t, lc)
	return l.wait(t)
}

// requireExactlyOnce is the check every fault test ends with: every call
// got an answer (every request sent, answered 200, no HTTP, timeout or
// connection error, every answer a usable one), and every webhook answered
// 200 is in the stream and in ClickHouse exactly once: the audit's set of
// event ids through FINAL, and the FINAL count and the distinct ids of the
// run beside the number answered.
func (r *faultRig) requireExactlyOnce(t *testing.T, rep *bench.Report) {
	t.Helper()
	r.requireExactlyOnceExcept(t, rep)
}

// requireExactlyOnceExcept is requireExactlyOnce for a load that was
// expected to see some requests fail with the load tool's error kinds
// tolerated (e.g. "connection": refused while no ingest listened, the
// ingest having been stopped on purpose): those are sent and not
// answered, and nothing else may fail. Every request answered 200 must
// still be stored exactly once, and nothing unanswered may be stored (no
// extra: a request the system took must have had its answer delivered).
// With nothing tolerated it is requireExactlyOnce.
func (r *faultRig) requireExactlyOnceExcept(t *testing.T, rep *bench.Report, tolerated ...string) {
	t.Helper()
	sys := rep.System
	if sys == nil {
		t.Fatal("the report has no load result")
	}
	if rep.Sessions != nil && !rep.Sessions.Visible {
		t.Errorf("the deciders did not connect the probe calls before the load")
	}
	var excused uint64
	for _, kind := range tolerated {
		excused += sys.Errors[kind]
	}
	if sys.ErrorCount() != excused || sys.Interrupted {
		t.Errorf("calls without an answer: errors %v (interrupted %v), e.g. %v; tolerated only %v",
			sys.Errors, sys.Interrupted, sys.ErrorSamples, tolerated)
	}
	if sys.Scheduled == 0 || sys.Requests != sys.Scheduled || sys.Answered+excused != sys.Requests {
		t.Errorf("%d calls scheduled, %d sent, %d answered 200, %d failed as tolerated (%v): every other scheduled call must be answered",
			sys.Scheduled, sys.Requests, sys.Answered, excused, tolerated)
	}
	if sys.Answered == 0 {
		t.Errorf("no call answered")
	}
	if sys.Answers["bad"] != 0 || sys.Answers["other"] != 0 {
		t.Errorf("answers 8x8 could not use: %v", sys.Answers)
	}
	if sys.Wrong["in_session_not_connected"] != 0 || sys.Wrong["out_of_session_connected"] != 0 {
		t.Errorf("answers contradicting the sessions: %v", sys.Wrong)
	}
	a := rep.Audit
	if a == nil {
		t.Fatal("the report has no audit")
	}
	if a.Expected != sys.Answered {
		t.Errorf("audit expected %d events, the load had %d answered", a.Expected, sys.Answered)
	}
	stores := []*bench.StoreAudit{a.Stream}
	if r.DB != "" {
		if a.ClickHouse == nil {
			t.Fatal("the audit did not read ClickHouse")
		}
		stores = append(stores, a.ClickHouse)
	}
	for _, s := range stores {
		if s == nil {
			t.Fatal("the audit misses a store")
		}
		if !s.OK() || s.Found != a.Expected || s.Extra != 0 {
			t.Errorf("%s: %d found of %d answered, %d missing (e.g. %v), %d duplicates (e.g. %v), %d extra, error %q",
				s.Where, s.Found, a.Expected, s.Missing, s.MissingSample, s.Duplicates, s.DuplicateSample, s.Extra, s.Error)
		}
	}
	if r.DB == "" {
		return
	}
	// The same from the table directly: the run's rows through FINAL, and
	// its distinct ids without it (summaries carry the run's prefix in
	// their sessionId; probes before the load are not counted).
	conn := chtest.Conn(t, r.CHAddr)
	where := r.runWhere(rep.RunID)
	final := chtest.Count(t, conn, "SELECT count() FROM "+r.DB+".call_events FINAL WHERE "+where)
	distinct := chtest.Count(t, conn, "SELECT uniqExact(event_id) FROM "+r.DB+".call_events WHERE "+where)
	if final != a.Expected || distinct != a.Expected {
		t.Errorf("ClickHouse holds %d rows of the run through FINAL and %d distinct event ids; %d were answered",
			final, distinct, a.Expected)
	}
}

// runWhere selects the rows of a load run in call_events, without its
// probe calls.
func (r *faultRig) runWhere(runID string) string {
	prefix := "bench-" + runID + "-"
	return fmt.Sprintf("(event_id LIKE '%[1]s%%' OR session_id LIKE '%[1]s%%') AND event_id NOT LIKE '%[1]sprobe-%%'", prefix)
}

// faultDecision is how one CALL_ACTION of a run was answered, as archived.
type faultDecision struct {
	Source, Outcome, Reason string
	LatencyMicros           uint32
	// ReceivedAt is in whole seconds (ClickHouse DateTime).
	ReceivedAt time.Time
}

// decisions reads the decisions of a run's calls from ClickHouse (after
// the audit found them all there).
func (r *faultRig) decisions(t *testing.T, runID string) []faultDecision {
	t.Helper()
	if r.DB == "" {
		t.Fatal("decisions are read from ClickHouse; the rig runs without an archiver")
	}
	conn := chtest.Conn(t, r.CHAddr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := conn.Query(ctx, "SELECT decision_source, decision_outcome, fallback_reason, decision_latency_us, toUInt32(received_at) FROM "+
		r.DB+".call_events FINAL WHERE event_type = 'CALL_ACTION' AND "+r.runWhere(runID))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []faultDecision
	for rows.Next() {
		var d faultDecision
		var at uint32
		if err := rows.Scan(&d.Source, &d.Outcome, &d.Reason, &d.LatencyMicros, &at); err != nil {
			t.Fatal(err)
		}
		d.ReceivedAt = time.Unix(int64(at), 0)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Terminate sends SIGTERM to p and waits for it to exit (see WaitExit).
func (r *faultRig) Terminate(t *testing.T, p *proc, within time.Duration) (time.Duration, error) {
	t.Helper()
	began := time.Now()
	r.Signal(t, p, syscall.SIGTERM)
	err := r.WaitExit(t, p, within)
	return time.Since(began), err
}

// WaitExit waits up to within for p to exit and returns its exit error
// (nil for status 0). It fails the test when p is still running by then.
func (r *faultRig) WaitExit(t *testing.T, p *proc, within time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(within):
		t.Fatalf("process %d still running after %s", p.cmd.Process.Pid, within)
		return nil
	}
}

// exited reports whether p has exited, and how, without waiting.
func exited(p *proc) (bool, error) {
	select {
	case err := <-p.done:
		p.done <- err // for whoever waits next
		return true, err
	default:
		return false, nil
	}
}

// PingDeciders counts the decider services that answer a micro PING on
// nc: the deciders registered with the NATS server.
func (r *faultRig) PingDeciders(nc *nats.Conn) (int, error) {
	sub, err := nc.SubscribeSync(nats.NewInbox())
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	subject, err := micro.ControlSubject(micro.PingVerb, decider.DefaultServiceName, "")
	if err != nil {
		return 0, err
	}
	if err := nc.PublishRequest(subject, sub.Subject, nil); err != nil {
		return 0, err
	}
	want := len(r.Deciders) * r.cfg.DecidersEach
	n := 0
	for n < want {
		if _, err := sub.NextMsg(time.Second); err != nil {
			break
		}
		n++
	}
	return n, nil
}

// logEntries returns p's JSON log lines whose "msg" is msg, decoded.
func logEntries(p *proc, msg string) []map[string]any {
	return logEntriesIn(p.log(), msg)
}

// logEntriesIn returns the JSON log lines of logs whose "msg" is msg.
func logEntriesIn(logs, msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, msg) {
			continue
		}
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// logNumber is the number field key of a decoded log line (-1 when it
// has none).
func logNumber(e map[string]any, key string) float64 {
	if v, ok := e[key].(float64); ok {
		return v
	}
	return -1
}

// CreateSession creates a masking session through the ingest's admin API
// and returns the status code (201 when created) and the body.
func (r *faultRig) CreateSession(virtual string, participants [2]string, ttl time.Duration) (int, string, error) {
	body, _ := json.Marshal(map[string]any{
		"virtualNumber": virtual,
		"participants":  participants[:],
		"ttlSeconds":    int(ttl.Seconds()),
	})
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post("http://"+r.IngestAdmin+"/v1/sessions", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// PostCall posts a CALL_ACTION with event id id from source to the
// virtual number to the ingest and classifies the answer as the load
// tool does; a transport error or a status other than 200 is an error.
func (r *faultRig) PostCall(t *testing.T, id, source, virtual string) (bench.Answer, error) {
	t.Helper()
	body := withPayload(t, wire.EventCallAction, map[string]any{
		"eventId": id, "callId": id + "-call", "sessionId": id + "-vcs",
		"source": source, "destination": virtual,
	})
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post("http://"+r.HTTPAddr+"/vca", "application/json", bytes.NewReader(body))
	if err != nil {
		return bench.AnswerBad, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return bench.AnswerBad, err
	}
	if resp.StatusCode != http.StatusOK {
		return bench.AnswerBad, fmt.Errorf("%s: %s", resp.Status, b)
	}
	return bench.ClassifyCallflow(b), nil
}

// checkStoredOnce fails t unless the run's audit found every event
// answered 200 exactly once in the stream and in ClickHouse (events stored
// but unanswered, a client's timeout, are no error); who prefixes the
// messages ("" for none).
func checkStoredOnce(t *testing.T, who string, rep *bench.Report) {
	t.Helper()
	a := rep.Audit
	switch {
	case a == nil:
		t.Fatalf("%sno audit in the report", who)
	case a.Expected != rep.System.Answered:
		t.Errorf("%saudit expected %d events, %d were answered 200", who, a.Expected, rep.System.Answered)
	}
	for _, s := range []*bench.StoreAudit{a.Stream, a.ClickHouse} {
		if s == nil || !s.OK() || s.Found != a.Expected {
			t.Errorf("%saudit of %+v: want every one of the %d answered events exactly once", who, s, a.Expected)
		}
	}
}
