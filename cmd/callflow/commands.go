package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
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
	"config":   {"print the effective configuration of a role (secrets redacted), or the table of every setting", runConfigCommand},
	"archiver": {"archive the records stream into ClickHouse; 'archiver replay' re-archives a range, 'archiver erase' erases one phone number's history", runArchiver},
	"sessions": {"create, get, list, update, close or delete number-masking sessions, or read their interactions, through the admin API", runSessions},
	"numbers":  {"add, get, list or remove the virtual numbers of the pool through the admin API", runNumbers},
	"flows":    {"apply, get, list or delete IVR flows through the admin API, or simulate a call through the deciders", runFlows},
	"probe":    {"GET a URL and exit 0 on a 2xx answer (container health checks)", runProbe},
	"bench":    {"generate webhook load against a URL and report latency, throughput and answers", runBench},
	"version":  {"print the version and commit of this build", runVersion},
}

// errUsage is returned after a usage message has been printed.
var errUsage = errors.New("usage")

// run dispatches args to a subcommand and returns the exit code: 0
// success (or help asked for), 1 an error of the work, 2 a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || isHelp(args[0]) {
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
	fmt.Fprintln(w, "\nRun 'callflow <command> --help' for its flags and environment variables, and")
	fmt.Fprintln(w, "'callflow <command> <action> --help' for an action of sessions, numbers, flows and archiver.")
	fmt.Fprintf(w, "\n%s\n", exitCodes)
}

// runConfigCommand is `callflow config`: --help (or -h) as its first or
// second argument prints its usage and exits 0; `config print ROLE --help`
// prints the role's flags.
func runConfigCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) || len(args) > 1 && isHelp(args[1]) {
		fmt.Fprintf(stderr, "Usage: callflow %s\n\nRun 'callflow config print ROLE --help' for the role's flags.\n\n%s\n", configSynopsis, exitCodes)
		return flag.ErrHelp
	}
	return runConfig(ctx, args, stdout, stderr)
}

// version is set at build time with -ldflags "-X main.version=..."; it
// wins over the module version the Go toolchain records.
var version = ""

// build is what the binary knows of how it was built.
type build struct {
	// version is -X main.version's, else the module's ("(devel)" for go
	// run and go test).
	version string
	// revision, time and modified are the VCS stamp go build records in
	// a repository: the commit, its time, and whether the tree had
	// changes; revision is "" without a stamp.
	revision, time string
	modified       bool
}

// readBuild reads the build information of the running binary.
func readBuild() build {
	b := build{version: version}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if b.version == "" {
			b.version = "(devel)"
		}
		return b
	}
	if b.version == "" {
		b.version = bi.Main.Version
	}
	if b.version == "" {
		b.version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.revision = s.Value
		case "vcs.time":
			b.time = s.Value
		case "vcs.modified":
			b.modified = s.Value == "true"
		}
	}
	return b
}

// String is the line `callflow version` prints after "callflow ".
func (b build) String() string {
	if b.revision == "" {
		return b.version + " commit unknown (no VCS stamp: built by go run or go test, outside a repository, or with -buildvcs=false)"
	}
	s := b.version + " commit " + b.revision
	if b.modified {
		s += " modified"
	}
	if b.time != "" {
		s += " (" + b.time + ")"
	}
	return s
}

// buildVersion is the version processes report (the build_info metric,
// the deciders' NATS service, which wants semantic versioning): the
// build's version without a leading "v"; one that is not x.y.z[...]
// ("(devel)" under go run, a -X main.version=dev) becomes the pre-release
// of 0.0.0 ("0.0.0-devel", "0.0.0-dev").
func buildVersion() string {
	v := strings.TrimPrefix(readBuild().version, "v")
	if semver.MatchString(v) {
		return v
	}
	clean := strings.Trim(strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return -1
	}, v), ".-")
	if clean == "" {
		clean = "dev"
	}
	return "0.0.0-" + clean
}

// semver matches the start of a semantic version, with an optional
// pre-release and build of its characters.
var semver = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "version", stderr)
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	_, err := fmt.Fprintln(stdout, "callflow", readBuild())
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
