// Package chtest gives tests a real ClickHouse server.
//
// scripts/test.sh starts a throwaway server and exports
// CALLFLOW_TEST_CLICKHOUSE (host:port of its native protocol) and
// CALLFLOW_TEST_CLICKHOUSE_SERVER (the server binary). When the address is
// set, tests that need ClickHouse fail if it does not answer; only when it
// is unset do they skip, saying how to run them.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Environment variables set by scripts/test.sh.
const (
	EnvAddr   = "CALLFLOW_TEST_CLICKHOUSE"
	EnvServer = "CALLFLOW_TEST_CLICKHOUSE_SERVER"
)

// Addr returns the shared test server's address, failing the test when it
// is set but does not answer, and skipping it when it is unset.
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		t.Skipf("%s is not set: run ./scripts/test.sh, which starts a throwaway ClickHouse", EnvAddr)
	}
	conn := Conn(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("%s=%s does not answer: %v", EnvAddr, addr, err)
	}
	return addr
}

// Conn opens a connection to addr, closed when the test ends.
func Conn(t testing.TB, addr string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("clickhouse open %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Database returns the name of a fresh database for one test, dropped when
// the test ends, so that tests sharing the server do not see each other.
func Database(t testing.TB, addr string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "callflow_test_" + hex.EncodeToString(b[:])
	conn := Conn(t, addr)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name)
	})
	return name
}

// Count runs a query returning one number.
func Count(t testing.TB, conn driver.Conn, query string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n uint64
	if err := conn.QueryRow(ctx, query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// Server is a private ClickHouse server a test may stop and start, so that
// faults it injects do not disturb other tests.
type Server struct {
	Addr   string
	bin    string
	config string
	dir    string
	cmd    *exec.Cmd
}

// StartServer starts a private server from the binary in
// CALLFLOW_TEST_CLICKHOUSE_SERVER, on free loopback ports, stored in a
// temporary directory; it is killed when the test ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	Addr(t) // same skip-or-fail rule as the shared server
	bin := os.Getenv(EnvServer)
	if bin == "" {
		t.Fatalf("%s is set but %s is not: run ./scripts/test.sh", EnvAddr, EnvServer)
	}
	dir := t.TempDir()
	tcp, http := freePort(t), freePort(t)
	for _, d := range []string{"data", "tmp", "user_files", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	users := `<?xml version="1.0"?><yandex><profiles><default/></profiles><users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users><quotas><default/></quotas></yandex>`
	config := fmt.Sprintf(`<?xml version="1.0"?><yandex>
<logger><level>warning</level><log>%[1]s/log/server.log</log><errorlog>%[1]s/log/error.log</errorlog></logger>
<listen_host>127.0.0.1</listen_host><tcp_port>%[2]d</tcp_port><http_port>%[3]d</http_port>
<path>%[1]s/data/</path><tmp_path>%[1]s/tmp/</tmp_path><user_files_path>%[1]s/user_files/</user_files_path>
<users_config>%[1]s/users.xml</users_config><default_profile>default</default_profile><default_database>default</default_database>
<mark_cache_size>67108864</mark_cache_size><uncompressed_cache_size>67108864</uncompressed_cache_size>
</yandex>`, dir, tcp, http)
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(tcp), bin: bin, config: filepath.Join(dir, "config.xml"), dir: dir}
	if err := os.WriteFile(s.config, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(t) })
	s.Start(t)
	return s
}

// Start starts the server (again) and waits until it answers.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command(s.bin, "--config-file="+s.config)
	s.cmd.Dir = s.dir
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start clickhouse: %v", err)
	}
	if err := awaitPing(t, s.Addr, 30*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log", "error.log"))
		t.Fatalf("clickhouse on %s not answering after 30s: %v\n%s", s.Addr, err, log)
	}
}

// awaitPing pings the server at addr until it answers, and returns the
// last error when it has not within the bound.
func awaitPing(t testing.TB, addr string, within time.Duration) error {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := conn.Ping(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills the server, as a crash or an outage would.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
