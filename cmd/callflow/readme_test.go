package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/chtest"
)

// guides are the documents whose shell examples must run as written.
var guides = []string{"README.md", "OPERATIONS.md"}

// example is one ```sh block of a guide.
type example struct {
	file string
	line int // of the opening fence
	code string
	skip string // why it is not run, from <!-- not run: why -->
}

// notRun marks the block that follows as one the test does not run, with
// the reason: <!-- not run: starts the whole test suite -->.
var notRun = regexp.MustCompile(`^<!--\s*not run:\s*(.+?)\s*-->$`)

// examples returns the ```sh blocks of a Markdown file, in order.
func examples(t *testing.T, file string) []example {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []example
	var cur *example
	var code strings.Builder
	prev := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && line == "```sh":
			cur = &example{file: filepath.Base(file), line: n}
			if m := notRun.FindStringSubmatch(strings.TrimSpace(prev)); m != nil {
				cur.skip = m[1]
			}
			code.Reset()
		case cur != nil && line == "```":
			cur.code = code.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			code.WriteString(line + "\n")
		}
		if strings.TrimSpace(line) != "" {
			prev = line
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// serveLine is a line that starts the product; it runs in the background
// while the examples after it talk to it.
var serveLine = regexp.MustCompile(`^(go run \./cmd/callflow|callflow) serve\b(.*)$`)

// script turns the examples into one bash script, run in order in one
// shell (an example may use what an earlier one set, as a reader's shell
// would): `go run ./cmd/callflow` runs the binary built for the tests, and
// a serve line starts in the background and is waited for.
func script(exs []example) string {
	var b strings.Builder
	b.WriteString(`set -euo pipefail
serve_pid=""
trap 'if [ -n "$serve_pid" ]; then kill -TERM "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null || true; fi' EXIT
wait_ready() {
  for _ in $(seq 1 600); do
    if curl -fsS -o /dev/null "http://127.0.0.1:8081/readyz" 2>/dev/null; then return 0; fi
    if ! kill -0 "$serve_pid" 2>/dev/null; then echo "serve exited; its log:" >&2; cat "$SERVE_LOG" >&2; return 1; fi
    sleep 0.1
  done
  echo "serve not ready after 60s; its log:" >&2; cat "$SERVE_LOG" >&2; return 1
}
`)
	for _, ex := range exs {
		if ex.skip != "" {
			continue
		}
		fmt.Fprintf(&b, "\necho '== %s:%d' >&2\n", ex.file, ex.line)
		for _, line := range strings.Split(strings.TrimRight(ex.code, "\n"), "\n") {
			if m := serveLine.FindStringSubmatch(line); m != nil {
				fmt.Fprintf(&b, "callflow serve%s >\"$SERVE_LOG\" 2>&1 &\nserve_pid=$!\nwait_ready\n", m[2])
				continue
			}
			b.WriteString(strings.ReplaceAll(line, "go run ./cmd/callflow", "callflow") + "\n")
		}
	}
	return b.String()
}

// TestGuideExamples runs every shell example of the guides, as written,
// against a real serve (embedded NATS, the test ClickHouse): a broken
// example fails CI. Examples run from the repository's root, with the
// built binary as `callflow` on PATH; serve keeps its data in a temporary
// directory. It needs the default ports the examples use (8080, 8081,
// 4222) free.
func TestGuideExamples(t *testing.T) {
	chAddr := chtest.Addr(t) // interactions need ClickHouse
	chDB := chtest.Database(t, chAddr)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("the examples need curl: %v", err)
	}
	for _, addr := range []string{"127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:4222"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the examples use %s, which is busy: %v", addr, err)
		}
		ln.Close()
	}
	var all []example
	for _, g := range guides {
		all = append(all, examples(t, filepath.Join("..", "..", g))...)
	}
	run := 0
	for _, ex := range all {
		if ex.skip == "" {
			run++
		}
	}
	if run == 0 {
		t.Fatal("no example to run")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binary, filepath.Join(bin, "callflow")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "examples.sh")
	if err := os.WriteFile(path, []byte(script(all)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", path)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+dir,
		"SERVE_LOG="+filepath.Join(dir, "serve.log"),
		"CALLFLOW_DATA_DIR="+filepath.Join(dir, "data"),
		"CALLFLOW_CLICKHOUSE_ADDR="+chAddr,
		"CALLFLOW_CLICKHOUSE_DATABASE="+chDB,
		"CALLFLOW_LOG_FORMAT=text",
	)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the examples failed (%v); the last block started is the one that failed:\n%s", err, out)
	}
	t.Logf("%d examples ran:\n%s", run, out)
}
