package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/callflow/callflow/internal/bench"
)

const benchSynopsis = `bench [flags]

  Sends 8x8 webhooks to --url and reports throughput, latency percentiles,
  errors and answers. Open loop at --rate calls/s (latency from each
  request's scheduled send time), or closed loop with --rate 0
  (--connections requests in flight, each sent when the previous answer
  came back). Creates --sessions masking sessions through the admin API
  first, and removes them when it ends (done, failed or interrupted).
  --baseline measures a bare fasthttp responder with the same load first,
  --chain the same service written the straightforward way; --audit checks
  afterwards that every answered event is stored exactly once; --soak is a
  long open-loop run with progress lines and the audit.

  examples:
    callflow bench --rate 0 --connections 32 --duration 10s --baseline --chain
    callflow bench --rate 5000 --duration 60s --baseline --json
    callflow bench --soak --rate 2000 --duration 10m --clickhouse-addr 127.0.0.1:9000 --pids 1234`

const benchChainSynopsis = `bench chain [--http-addr ADDR]

  Runs the straightforward chain that 'callflow bench --chain' measures
  callflow against, on its own, until interrupted: fasthttp, encoding/json,
  one NATS request to two queue-group responders and one synchronous
  JetStream publish with Nats-Msg-Id before each answer, on an embedded NATS
  server with JetStream in a temporary directory. Prints the URL it answers
  on, so that any load tool can be pointed at it.`

// runBench wires the flags of `callflow bench` to package bench.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "chain" {
		return runBenchChain(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("bench", benchSynopsis, stderr)
	var c bench.Config
	fs.StringVar(&c.URL, "url", bench.DefaultURL, "webhook URL to load; must be loopback unless --allow-remote")
	fs.Float64Var(&c.Rate, "rate", 1000, "open loop: calls per second; 0 runs closed loop")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "how long to generate load")
	fs.IntVar(&c.Connections, "connections", bench.DefaultConnections, "closed loop: concurrent requests; open loop: connections at most")
	fs.DurationVar(&c.Timeout, "timeout", 2*time.Second, "timeout of each request")
	fs.DurationVar(&c.Warmup, "warmup", 0, "run the same load this long before measuring, on each target, and discard its figures")
	fs.DurationVar(&c.Drain, "drain", 5*time.Second, "after --duration, how long requests still queued or in flight are waited for")
	fs.IntVar(&c.Sessions, "sessions", bench.DefaultSessions, "masking sessions to create through the admin API first (0: none, every call is out of session)")
	fs.DurationVar(&c.SessionTTL, "session-ttl", time.Hour, "lifetime of the sessions created, whole seconds, raised to outlast the run (0: no expiry); bench removes them when it ends, the TTL covers a removal that fails")
	fs.StringVar(&c.AdminURL, "admin-url", bench.DefaultAdminURL, "base URL of the admin API, for the sessions; loopback unless --allow-remote")
	fs.StringVar(&c.AdminToken, "admin-token", "", "bearer token for the admin API")
	fs.Float64Var(&c.Mix.InSession, "mix-in-session", bench.DefaultMix.InSession, "weight of CALL_ACTIONs from session participants to their virtual number")
	fs.Float64Var(&c.Mix.OutOfSession, "mix-out-of-session", bench.DefaultMix.OutOfSession, "weight of CALL_ACTIONs from numbers in no session")
	fs.Float64Var(&c.Mix.Status, "mix-status", bench.DefaultMix.Status, "weight of CALL_STATUS events")
	fs.Float64Var(&c.Mix.Summary, "mix-summary", bench.DefaultMix.Summary, "weight of SESSION_SUMMARY events")
	fs.BoolVar(&c.Baseline, "baseline", false, "first run the same load against a bare fasthttp responder on 127.0.0.1 and print the ratios")
	fs.BoolVar(&c.Chain, "chain", false, "also run the same load against the service written the straightforward way, as a process of its own ('callflow bench chain': fasthttp, encoding/json, one NATS request to two queue responders, one synchronous JetStream publish with Nats-Msg-Id, on an embedded NATS server of its own) and print the ratios")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON object instead of text")
	fs.BoolVar(&c.Audit, "audit", false, "afterwards check that every event answered 200 is in the stream (and ClickHouse) exactly once")
	fs.StringVar(&c.NATSURL, "nats-url", bench.DefaultNATSURL, "audit: NATS server URLs, comma-separated")
	fs.StringVar(&c.Stream, "stream", bench.DefaultStream, "audit: JetStream stream of call records")
	fs.StringVar(&c.ClickHouseAddr, "clickhouse-addr", "", "audit: ClickHouse native-protocol addresses, comma-separated; empty skips the ClickHouse check")
	fs.StringVar(&c.ClickHouseDatabase, "clickhouse-database", bench.DefaultDatabase, "audit: ClickHouse database of call_events")
	fs.StringVar(&c.ClickHouseUser, "clickhouse-user", "default", "audit: ClickHouse user")
	fs.StringVar(&c.ClickHousePassword, "clickhouse-password", "", "audit: ClickHouse password")
	fs.DurationVar(&c.AuditWait, "audit-wait", 30*time.Second, "audit: how long to wait for the stream and the archive to catch up")
	fs.BoolVar(&c.Soak, "soak", false, "soak: an open-loop run of --duration with progress lines, the audit and --pids memory")
	fs.DurationVar(&c.ReportEvery, "report-every", 10*time.Second, "interval of progress lines on stderr (runs longer than it, and soaks; 0: none)")
	pids := fs.String("pids", "", "comma-separated process ids whose peak memory (VmHWM) and RSS are reported")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow a --url or --admin-url host that is not loopback. Without it bench refuses any other address, so that load (and the sessions it creates) is never aimed at a production system by mistake; set it only to load a test system on another machine")
	fs.StringVar(&c.RunID, "run-id", "", "run id in event ids bench-<run-id>-<n> and session numbers (default: the start time in Unix milliseconds)")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	for _, p := range strings.Split(*pids, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pid, err := strconv.Atoi(p)
		if err != nil {
			fmt.Fprintf(stderr, "callflow bench: --pids: %q is not a process id\n", p)
			return errUsage
		}
		c.PIDs = append(c.PIDs, pid)
	}
	if c.Chain {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("--chain: %w", err)
		}
		c.ChainCommand = []string{exe, "bench", "chain"}
	}
	_, err := bench.Run(ctx, c, stdout, stderr)
	if errors.Is(err, bench.ErrConfig) {
		fmt.Fprintf(stderr, "callflow bench: %v\n", err)
		return errUsage
	}
	return err
}

// runBenchChain is `callflow bench chain`.
func runBenchChain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench chain", benchChainSynopsis, stderr)
	addr := fs.String("http-addr", "127.0.0.1:0", "address the chain's webhook listens on (port 0: any free port)")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	return bench.ServeChain(ctx, *addr, stdout)
}
