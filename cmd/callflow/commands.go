package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"sort"
	"time"
)

// command is one subcommand of the binary.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"serve":    {"run everything in one process: embedded NATS, ingestor, deciders, archiver, admin API", runRole("serve")},
	"ingest":   {"run the webhook ingestor and session API against --nats-url", runRole("ingest")},
	"decider":  {"run deciders against --nats-url; start more anywhere to scale out", runRole("decider")},
	"config":   {"print the effective configuration of a role (secrets redacted), or the table of every setting", runConfig},
	"archiver": {"archive the records stream into ClickHouse; 'archiver replay' re-archives a range", runArchiver},
	"sessions": {"create, get, list, update, close or delete number-masking sessions, or read their interactions, through the admin API", runSessions},
	"numbers":  {"add, get, list or remove the virtual numbers of the pool through the admin API", runNumbers},
	"flows":    {"apply, get, list or delete IVR flows through the admin API, or simulate a call through the deciders", runFlows},
	"probe":    {"GET a URL and exit 0 on a 2xx answer (container health checks)", runProbe},
	"bench":    {"generate webhook load against a URL and report latency, throughput and answers", runBench},
	"version":  {"print the version", runVersion},
}

// errUsage is returned after a usage message has been printed.
var errUsage = errors.New("usage")

// run dispatches args to a subcommand and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "callflow: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	err := cmd.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "callflow %s: %v\n", args[0], err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "callflow answers 8x8 number-masking voice webhooks.")
	fmt.Fprintln(w, "\nUsage: callflow <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'callflow <command> --help' for its flags and environment variables.")
}

// version is set at build time with -ldflags "-X main.version=..."; it
// falls back to the module version recorded by the Go toolchain.
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "0.0.0-dev"
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	_, err := fmt.Fprintln(stdout, "callflow", buildVersion())
	return err
}

// runProbe is a health check for images without curl: it GETs the URL and
// succeeds on a 2xx answer.
func runProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("probe", "probe [--timeout D] URL", stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "request timeout")
	if err := parseFlags(fs, args, true); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fs.Arg(0), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "%s %s\n", resp.Status, body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", fs.Arg(0), resp.Status)
	}
	return nil
}
