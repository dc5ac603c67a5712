package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/session"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkSessionState measures how callflow's state scales (SCALING.md):
// into a nats-server process of its own, a pool of 10,000 numbers of one
// sub-account is registered, then sessions are created, each allocated a
// number from the pool by session.Store.Create (the admin API's create,
// without HTTP: BenchmarkCreateSessions in internal/admin has that), by
// 32 clients at once. At each checkpoint the create rate of the last
// window is reported, and a `callflow decider` process is started on the
// bucket: the time until it is ready (its index loaded) and its memory.
//
//	CALLFLOW_SCALING_SESSIONS=1000000 go test ./cmd/callflow -run '^$' \
//	  -bench BenchmarkSessionState -benchtime 1x -timeout 90m
//
// Checkpoints are 10,000, 100,000 and 1,000,000 sessions, up to
// CALLFLOW_SCALING_SESSIONS (default 100,000).
func BenchmarkSessionState(b *testing.B) {
	upTo := 100_000
	if v := os.Getenv("CALLFLOW_SCALING_SESSIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("CALLFLOW_SCALING_SESSIONS=%q: want a positive count", v)
		}
		upTo = n
	}
	const poolSize = 10_000
	const clients = 32
	url := startNATSForBench(b)
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	st, err := session.Open(ctx, js, session.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()

	sub := "acme"
	started := time.Now()
	for i := range poolSize {
		number := fmt.Sprintf("+6568%06d", i)
		if _, _, err := st.PutNumber(ctx, number, session.NumberRequest{SubAccountID: &sub}, nil); err != nil {
			b.Fatalf("register %s: %v", number, err)
		}
	}
	b.Logf("pool of %d numbers registered in %s", poolSize, time.Since(started).Round(time.Millisecond))

	var created atomic.Int64
	create := func(to int) {
		var wg sync.WaitGroup
		var next atomic.Int64
		next.Store(created.Load())
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > int64(to) {
						return
					}
					req := session.Request{SubAccountID: sub, Participants: []string{
						fmt.Sprintf("+6581%07d", i), fmt.Sprintf("+6582%07d", i)}}
					cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					_, err := st.Create(cctx, req)
					cancel()
					if err != nil {
						b.Errorf("create %d: %v", i, err)
						return
					}
					created.Add(1)
				}
			}()
		}
		wg.Wait()
	}
	b.ResetTimer()
	for _, checkpoint := range []int{10_000, 100_000, 1_000_000} {
		if checkpoint > upTo {
			break
		}
		// Up to the checkpoint, then a measured window of 5,000 creates
		// around it (the allocations at that state).
		create(checkpoint - 5_000)
		t0 := time.Now()
		create(checkpoint)
		rate := 5_000 / time.Since(t0).Seconds()
		if b.Failed() {
			return
		}
		info, err := js.Stream(ctx, "KV_"+session.DefaultBucket)
		if err != nil {
			b.Fatal(err)
		}
		bytes := info.CachedInfo().State.Bytes
		ready, rss, hwm := deciderStartup(b, url)
		b.Logf("%d sessions on %d numbers: %.0f creates/s (32 clients); bucket %d MiB; decider ready in %s, RSS %d MiB (peak %d MiB)",
			checkpoint, poolSize, rate, bytes>>20, ready.Round(time.Millisecond), rss>>20, hwm>>20)
		label := strconv.Itoa(checkpoint/1000) + "k"
		b.ReportMetric(rate, "creates/s@"+label)
		b.ReportMetric(ready.Seconds(), "decider-ready-s@"+label)
		b.ReportMetric(float64(rss>>20), "decider-MiB@"+label)
	}
}

// startNATSForBench starts a nats-server process with JetStream in a
// temporary directory and returns its URL; it is stopped when b ends.
func startNATSForBench(b *testing.B) string {
	bin, err := natsServerBinary()
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	dir := b.TempDir()
	cmd := exec.Command(bin, "-js", "-a", "127.0.0.1", "-p", port, "-sd", filepath.Join(dir, "js"))
	log, err := os.Create(filepath.Join(dir, "nats.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); log.Close() })
	url := "nats://127.0.0.1:" + port
	for deadline := time.Now().Add(30 * time.Second); ; {
		nc, err := nats.Connect(url)
		if err == nil {
			nc.Close()
			return url
		}
		if time.Now().After(deadline) {
			b.Fatalf("nats-server not up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deciderStartup starts a decider process on url and returns how long it
// took to be ready (its session index loaded, /readyz 200) and its
// resident memory then, and at its peak; the process is stopped.
func deciderStartup(b *testing.B, url string) (ready time.Duration, rss, hwm int64) {
	b.Helper()
	t0 := time.Now()
	cmd := exec.Command(binary, "decider", "--nats-url", url, "--deciders", "2", "--admin-addr", "127.0.0.1:0", "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	admin := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.Index(line, `"admin_addr":"`); i >= 0 && strings.Contains(line, "callflow running") {
				rest := line[i+len(`"admin_addr":"`):]
				admin <- rest[:strings.IndexByte(rest, '"')]
			}
		}
	}()
	var addr string
	select {
	case addr = <-admin:
	case <-time.After(10 * time.Minute):
		b.Fatal("decider not running after 10 minutes")
	}
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Since(t0) > 10*time.Minute {
			b.Fatal("decider not ready after 10 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ready = time.Since(t0)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			if f[0] == "VmRSS:" {
				rss = kb << 10
			} else {
				hwm = kb << 10
			}
		}
	}
	return ready, rss, hwm
}

// BenchmarkStreamCeiling measures what one records stream takes on the
// three-node cluster of deploy/nats (nats-server processes), and the
// remedy SCALING.md weighs when one stream is the ceiling: the records
// partitioned by subject over several streams, each led by another node.
// Publishers on every node send records of 1,500 bytes (a webhook with
// its decision) with a Nats-Msg-Id each, asynchronously (as many calls at
// once would), and every acknowledgement is waited for.
//
//	go test ./cmd/callflow -run '^$' -bench BenchmarkStreamCeiling -benchtime 100000x
func BenchmarkStreamCeiling(b *testing.B) {
	nodes := startNATSProcesses(b)
	var nacked atomic.Int64 // acknowledgements that were errors
	var jss []jetstream.JetStream
	for _, nd := range nodes {
		nc, err := nats.Connect(nd.client)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096),
			jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { nacked.Add(1) }))
		if err != nil {
			b.Fatal(err)
		}
		jss = append(jss, js)
	}
	payload := make([]byte, 1500)
	ctx := context.Background()
	for _, replicas := range []int{1, 3} {
		for _, streams := range []int{1, 2, 3} {
			b.Run(fmt.Sprintf("replicas=%d/streams=%d", replicas, streams), func(b *testing.B) {
				for p := range streams {
					_, err := jss[0].CreateStream(ctx, jetstream.StreamConfig{
						Name: fmt.Sprintf("CEILING_%d", p), Subjects: []string{fmt.Sprintf("ceiling.%d.>", p)},
						Replicas: replicas, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute, MaxBytes: 1 << 30,
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				defer func() {
					for p := range streams {
						_ = jss[0].DeleteStream(ctx, fmt.Sprintf("CEILING_%d", p))
					}
				}()
				var failed atomic.Int64
				var next atomic.Int64
				var wg sync.WaitGroup
				cpuBefore := make([]time.Duration, len(nodes))
				for i, nd := range nodes {
					cpuBefore[i] = processCPU(b, nd.cmd.Process.Pid)
				}
				b.ResetTimer()
				for _, js := range jss {
					for range 2 {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for {
								i := next.Add(1)
								if i > int64(b.N) {
									break
								}
								id := strconv.FormatInt(i, 10)
								msg := &nats.Msg{Subject: fmt.Sprintf("ceiling.%d.CALL_ACTION.%s", i%int64(streams), id), Data: payload,
									Header: nats.Header{jetstream.MsgIDHeader: {id}}}
								if _, err := js.PublishMsgAsync(msg, jetstream.WithStallWait(30*time.Second)); err != nil {
									failed.Add(1)
								}
							}
						}()
					}
				}
				wg.Wait()
				for _, js := range jss {
					select {
					case <-js.PublishAsyncComplete():
					case <-time.After(2 * time.Minute):
						b.Fatal("acknowledgements still pending after 2 minutes")
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
				// CPU of the servers per 1,000 records: all three, and the
				// busiest (where a stream's leader is).
				var total, busiest time.Duration
				for i, nd := range nodes {
					used := processCPU(b, nd.cmd.Process.Pid) - cpuBefore[i]
					total += used
					busiest = max(busiest, used)
				}
				b.ReportMetric(total.Seconds()*1000/float64(b.N), "server-cpu-s/1k")
				b.ReportMetric(busiest.Seconds()*1000/float64(b.N), "busiest-node-cpu-s/1k")
				if n, m := failed.Load(), nacked.Swap(0); n+m > 0 {
					b.Errorf("%d publishes failed, %d acknowledged with an error", n, m)
				}
			})
		}
	}
}

// processCPU is the user and system CPU time process pid has used.
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}
