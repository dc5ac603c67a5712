package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/callflow/callflow/archiver"
	"github.com/callflow/callflow/internal/broker"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"
)

func runArchiver(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "replay":
			return runReplay(ctx, args[1:], stdout, stderr)
		case "schema":
			return runSchema(args[1:], stdout, stderr)
		case "erase":
			return runErase(ctx, args[1:], stdout, stderr)
		}
	}
	return runRole("archiver")(ctx, args, stdout, stderr)
}

// runSchema prints the ClickHouse schema the archiver applies.
func runSchema(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("archiver schema", "archiver schema [--clickhouse-database NAME]", stderr)
	db := fs.String("clickhouse-database", archiver.DefaultDatabase, "database to name in the schema")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	_, err := io.WriteString(stdout, archiver.SchemaSQL(*db))
	return err
}

// runReplay archives a range of the stream again, showing progress.
func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := newFlagSet("archiver replay", `archiver replay --since TIME | --start-seq N [flags]

  Archives the records of the stream from a time or a sequence up to the
  last one present when it starts, with a consumer of its own that it
  deletes when done (the archivers' durable consumer is untouched).`, stderr)
	o.registerNATS(fs, false)
	o.registerStream(fs)
	o.registerArchiver(fs, false)
	o.registerProcess(fs)
	o.registerCollector(fs)
	since := fs.String("since", "", "replay records stored since this time (RFC 3339, or a duration ago such as 24h)")
	startSeq := fs.Uint64("start-seq", 0, "replay records from this stream sequence")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	var rc archiver.ReplayConfig
	usage := func(msg string) error {
		fmt.Fprintf(stderr, "callflow archiver replay: %s\n", msg)
		return errUsage
	}
	switch {
	case *since != "" && *startSeq != 0:
		return usage("give --since or --start-seq, not both")
	case *since != "":
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return usage(err.Error())
		}
		rc.Since = t
	case *startSeq != 0:
		rc.StartSeq = *startSeq
	default:
		return usage("give --since TIME or --start-seq N")
	}
	log, err := o.logger(stderr)
	if err != nil {
		return err
	}
	if err := o.readSecrets(); err != nil {
		return err
	}
	gc, err := resolveGC(o.memoryLimit, o.gcPercent, os.Getenv, cgroupRoot)
	if err != nil {
		return usage(err.Error())
	}
	gc.apply(log)
	acfg, err := o.archiverConfig()
	if err != nil {
		return err
	}
	acfg.Logger = log
	conn := o.connConfig()
	conn.Name, conn.Logger = "callflow-replay", log
	nc, err := broker.Connect(conn)
	if err != nil {
		return err
	}
	defer broker.Drain(nc, 5*time.Second)
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	a, err := archiver.Open(js, acfg)
	if err != nil {
		return err
	}
	defer a.Close()
	rc.Progress = progressReporter(stderr)
	n, err := a.Replay(ctx, rc)
	if errors.Is(err, archiver.ErrNothingToReplay) {
		_, err = fmt.Fprintln(stdout, "nothing to replay")
		return err
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "replayed %d records\n", n)
	return err
}

// progressReporter draws a progress bar on a terminal and prints plain
// progress lines (at most one every 2s) otherwise.
func progressReporter(w io.Writer) func(done, total uint64) {
	if isTerminal(w) {
		var bar *progressbar.ProgressBar
		return func(done, total uint64) {
			if bar == nil {
				bar = progressbar.NewOptions64(int64(total), progressbar.OptionSetWriter(w),
					progressbar.OptionSetDescription("replaying"), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
					progressbar.OptionSetItsString("records"), progressbar.OptionThrottle(100*time.Millisecond))
			}
			bar.ChangeMax64(int64(total))
			_ = bar.Set64(int64(done))
			if done >= total {
				_ = bar.Finish()
				fmt.Fprintln(w)
			}
		}
	}
	var last time.Time
	return func(done, total uint64) {
		if done < total && time.Since(last) < 2*time.Second {
			return
		}
		last = time.Now()
		fmt.Fprintf(w, "replayed %d of %d records (%s%%)\n", done, total, strconv.FormatFloat(100*float64(done)/float64(max(total, 1)), 'f', 1, 64))
	}
}

// parseSince reads an RFC 3339 time or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time (2026-11-25T08:00:00Z) or a duration such as 24h", s)
}
