package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/callflow/callflow/archiver"
)

const eraseSynopsis = `archiver erase --number +E164 [--clickhouse-addr ADDR] [flags]

  Deletes every archived row that carries the number (as caller, callee or
  forwarded-to; in 8x8's payload or callflow's answer) from call_events,
  interaction_calls and rejected_records, waits until ClickHouse has carried
  the deletion out, checks that no row still carries it, and prints the rows
  each table lost. A virtual number of the pool is refused. Records still in
  the CALLS stream carry the number until they age out (--stream-max-age):
  see OPERATIONS.md, "Erasing one person's history".`

// runErase erases one phone number's history from the archive.
func runErase(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := newFlagSet("archiver erase", eraseSynopsis, stderr)
	o.registerClickHouse(fs, archiver.DefaultAddr, "ClickHouse native-protocol addresses, comma-separated, of the archive")
	o.registerProcess(fs)
	number := fs.String("number", "", "the phone number to erase, E.164 (+6591234567)")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to wait for ClickHouse to carry the deletion out")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if *number == "" {
		fmt.Fprintln(stderr, "callflow archiver erase: --number is required")
		return errUsage
	}
	if *timeout <= 0 {
		return fmt.Errorf("--timeout must be > 0, got %s", *timeout)
	}
	log, err := o.logger(stderr)
	if err != nil {
		return err
	}
	if err := o.readSecrets(); err != nil {
		return err
	}
	o.clickhouseCompress = "none"
	ch, err := o.clickhouseConfig()
	if err != nil {
		return err
	}
	ch.DialTimeout, ch.QueryTimeout = 5*time.Second, *timeout
	conn, err := archiver.Connect(ch)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	erased, err := archiver.Erase(ctx, conn, ch.Database, ch.Cluster, *number, log)
	for _, table := range []string{"call_events", "interaction_calls", "rejected_records"} {
		if n, ok := erased[table]; ok {
			fmt.Fprintf(stdout, "%s\t%d rows erased\n", table, n)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (--timeout %s); run it again to finish", err, *timeout)
	}
	return err
}
