package archiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/callflow/callflow/wire"
)

// Retention and erasure: the archive keeps call history by calendar month
// (every table is partitioned by toYYYYMM), so history older than the
// months kept goes by dropping whole partitions, which costs ClickHouse
// nothing but the unlinking of files and works the same on 18.16 and on
// current releases; one person's history goes by a mutation (ALTER TABLE
// ... DELETE), which rewrites the parts holding their rows.

// retentionEvery is how often an archiver with a retention drops the
// partitions that have aged out (and once as it starts).
const retentionEvery = 6 * time.Hour

// Partition is one monthly partition of an archive table.
type Partition struct {
	// Table is the table (a materialized view's inner table by its own
	// name, e.g. ".inner.calls_per_minute").
	Table string
	// Month is the partition, as YYYYMM.
	Month int
}

// RetentionCutoff returns the first month kept when months are kept at
// now: the current month and the months-1 before it. months must be >= 1.
func RetentionCutoff(now time.Time, months int) int {
	y, m, _ := now.UTC().Date()
	first := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC).AddDate(0, -(months - 1), 0)
	return first.Year()*100 + int(first.Month())
}

// DropPartitionsBefore drops every monthly partition of database's tables
// older than month (YYYYMM), and returns what it dropped. Tables whose
// partitions are not months are left alone. A partition another archiver
// dropped meanwhile is not an error. On a cluster (cluster set), the
// partitions are those of every shard's local tables, and each is dropped
// ON CLUSTER (a replicated table's drop reaches its replicas).
func DropPartitionsBefore(ctx context.Context, conn driver.Conn, database, cluster string, month int) ([]Partition, error) {
	parts, on := "system.parts", ""
	if cluster != "" {
		// One replica of every shard answers (another when one is down).
		parts, on = "cluster('"+cluster+"', system.parts)", " ON CLUSTER "+cluster
	}
	rows, err := conn.Query(ctx, "SELECT DISTINCT table, partition_id FROM "+parts+" WHERE database = ? AND active", database)
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", database, err)
	}
	var old []Partition
	for rows.Next() {
		var table, id string
		if err := rows.Scan(&table, &id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list partitions of %s: %w", database, err)
		}
		if m, ok := yyyymm(id); ok && m < month {
			old = append(old, Partition{Table: table, Month: m})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", database, err)
	}
	var dropped []Partition
	for _, p := range old {
		q := fmt.Sprintf("ALTER TABLE %s.`%s`%s DROP PARTITION %d", database, strings.ReplaceAll(p.Table, "`", ""), on, p.Month)
		if err := conn.Exec(ctx, q); err != nil {
			return dropped, fmt.Errorf("drop partition %d of %s.%s: %w", p.Month, database, p.Table, err)
		}
		dropped = append(dropped, p)
	}
	return dropped, nil
}

// yyyymm reads a partition id that is a month.
func yyyymm(id string) (int, bool) {
	if len(id) != 6 {
		return 0, false
	}
	m, err := strconv.Atoi(id)
	if err != nil || m%100 < 1 || m%100 > 12 {
		return 0, false
	}
	return m, true
}

// retain drops the partitions older than the retention now and every
// retentionEvery until ctx ends; a failure is logged and tried again at
// the next turn.
func (a *Archiver) retain(ctx context.Context) {
	t := time.NewTicker(retentionEvery)
	defer t.Stop()
	for {
		cutoff := RetentionCutoff(time.Now(), a.cfg.RetentionMonths)
		dropped, err := DropPartitionsBefore(ctx, a.conn, a.cfg.ClickHouse.Database, a.cfg.ClickHouse.Cluster, cutoff)
		if len(dropped) > 0 {
			a.log.Info("dropped archive partitions past the retention", "months_kept", a.cfg.RetentionMonths,
				"before", cutoff, "partitions", len(dropped), "first", dropped[0].Month, "tables", partitionTables(dropped))
		}
		if err != nil && ctx.Err() == nil {
			a.log.Warn("archive retention failed; trying again later", "error", err, "in", retentionEvery)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func partitionTables(ps []Partition) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range ps {
		if !seen[p.Table] {
			seen[p.Table] = true
			out = append(out, p.Table)
		}
	}
	return out
}

// ErrVirtualNumber is returned by Erase for a number of the pool: its
// history is every call made on it, not a person's.
var ErrVirtualNumber = errors.New("is a virtual number of the pool")

// Erased is what Erase removed, by table.
type Erased map[string]uint64

// eraseTargets are the tables holding a person's number, with the
// columns it appears in. call_events' raw body and callflow hold it too
// (8x8's payload, the answer's makeCall).
var eraseTargets = []struct {
	table   string
	columns []string
}{
	{"call_events", []string{"source", "destination", "connected_to", "raw", "callflow"}},
	{"interaction_calls", []string{"source", "connected_to"}},
	{"rejected_records", []string{"data"}},
}

// Erase deletes every archived row that carries number (a caller's or a
// callee's, in E.164; with or without the leading +) from the archive in
// database, waits until ClickHouse has carried the deletions out (bounded
// by ctx), and returns how many rows each table lost. It refuses a
// virtual number of the pool (ErrVirtualNumber). The per-minute counts
// hold no numbers and are kept. Rows archived after Erase returns, from
// records still in the stream (JetStream keeps them for --stream-max-age)
// or replayed, carry the number again: erase it from the stream's
// retention window too (OPERATIONS.md).
//
// On a cluster (cluster set), the deletion runs ON CLUSTER on the local
// tables, and Erase waits until the Distributed tables show no row with
// the number. Its counts are read through the Distributed tables before
// the deletion, from one replica per shard: rows a replica has not yet
// fetched from its partner are deleted but may not be counted.
func Erase(ctx context.Context, conn driver.Conn, database, cluster, number string, log *slog.Logger) (Erased, error) {
	n, err := wire.NormalizeNumber(number)
	if err != nil {
		return nil, fmt.Errorf("erase %q: %w", number, err)
	}
	digits := n[1:] // NormalizeNumber returns +digits, nothing else
	// A digit run equal to the number, not part of a longer one.
	pattern := "(^|[^0-9])" + digits + "([^0-9]|$)"
	var pool uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+database+".number_status WHERE msisdn IN (?, ?)", n, digits).Scan(&pool); err != nil {
		return nil, fmt.Errorf("erase %s: look up the pool: %w", n, err)
	}
	if pool > 0 {
		return nil, fmt.Errorf("erase %s: %w; erasing it would erase every call made on it", n, ErrVirtualNumber)
	}
	out := Erased{}
	for _, target := range eraseTargets {
		conds := make([]string, len(target.columns))
		for i, c := range target.columns {
			conds[i] = fmt.Sprintf("match(%s, '%s')", c, pattern)
		}
		where := strings.Join(conds, " OR ")
		table := database + "." + target.table
		var rows uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+table+" WHERE "+where).Scan(&rows); err != nil {
			return out, fmt.Errorf("erase %s from %s: %w", n, table, err)
		}
		if rows == 0 {
			out[target.table] = 0
			continue
		}
		if cluster == "" {
			if err := conn.Exec(ctx, "ALTER TABLE "+table+" DELETE WHERE "+where); err != nil {
				return out, fmt.Errorf("erase %s from %s: %w", n, table, err)
			}
			if err := waitZero(ctx, conn, "the deletion is still running in ClickHouse (system.mutations)",
				"SELECT count() FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0", database, target.table); err != nil {
				return out, fmt.Errorf("erase %s from %s: %w", n, table, err)
			}
		} else {
			if err := conn.Exec(ctx, "ALTER TABLE "+table+localSuffix+" ON CLUSTER "+cluster+" DELETE WHERE "+where); err != nil {
				return out, fmt.Errorf("erase %s from %s: %w", n, table, err)
			}
			if err := waitZero(ctx, conn, "the deletion is still running on the cluster (system.mutations of each shard)",
				"SELECT count() FROM "+table+" WHERE "+where); err != nil {
				return out, fmt.Errorf("erase %s from %s: %w", n, table, err)
			}
		}
		var left uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+table+" WHERE "+where).Scan(&left); err != nil {
			return out, fmt.Errorf("erase %s from %s: %w", n, table, err)
		}
		if left != 0 {
			return out, fmt.Errorf("erase %s from %s: %d rows still carry it after the deletion", n, table, left)
		}
		out[target.table] = rows
		if log != nil {
			log.Info("erased a number's history", "number", wire.MaskNumber(n), "table", target.table, "rows", rows)
		}
	}
	return out, nil
}

// waitZero polls count (a query answering one number, args bound) until
// it answers 0, or ctx ends; running says what is still running then.
func waitZero(ctx context.Context, conn driver.Conn, running, count string, args ...any) error {
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		var left uint64
		if err := conn.QueryRow(ctx, count, args...).Scan(&left); err != nil {
			return err
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", running, ctx.Err())
		case <-time.After(wait):
		}
	}
}
