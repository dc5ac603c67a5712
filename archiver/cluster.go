package archiver

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The archive on a ClickHouse cluster (ClickHouseConfig.Cluster): every
// table of the single-server schema becomes a replicated local table on
// each server, <table>_local (Replicated*MergeTree, one ZooKeeper path per
// shard, the {shard} and {replica} macros of each server's config), and a
// Distributed table under the table's own name, so that analysts and the
// interactions API query the names they always used. Views read and
// write the local tables, on the server that received the rows. The
// schema is applied with ON CLUSTER, so every server gets it from one
// archiver.

// localSuffix names a table's local part on a cluster.
const localSuffix = "_local"

// shardingKeys are the Distributed tables' sharding keys: every copy of
// an event (8x8 sending it twice, a redelivery, a replay) lands on the
// same shard, where the replacing merge and FINAL see them together.
var shardingKeys = map[string]string{
	"call_events":       "cityHash64(event_id)",
	"interaction_calls": "cityHash64(event_id)",
	"rejected_records":  "cityHash64(stream_sequence)",
	"number_status":     "cityHash64(msisdn)",
	"calls_per_minute":  "cityHash64(sub_account_id)",
}

var (
	clusterDatabase = regexp.MustCompile(`(?is)^CREATE\s+DATABASE\s+IF\s+NOT\s+EXISTS\s+(\w+)$`)
	clusterTable    = regexp.MustCompile(`(?is)^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)\.(\w+)\s*(\(.*\))\s*ENGINE\s*=\s*(\w+)(\([^)]*\))?(.*)$`)
	clusterViewInto = regexp.MustCompile(`(?is)^CREATE\s+MATERIALIZED\s+VIEW\s+IF\s+NOT\s+EXISTS\s+(\w+)\.(\w+)\s+TO\s+(\w+)\.(\w+)\s+(AS\s+SELECT.*)$`)
	clusterView     = regexp.MustCompile(`(?is)^CREATE\s+MATERIALIZED\s+VIEW\s+IF\s+NOT\s+EXISTS\s+(\w+)\.(\w+)\s+ENGINE\s*=\s*(\w+)(\([^)]*\))?(.*?)\s(AS\s+SELECT.*)$`)
)

// clusterStatement is one statement of the cluster schema, with the
// table whose columns follow the single-server schema's when it creates
// one (for the columns added to an older archive).
type clusterStatement struct {
	sql string
	// local is the local table a CREATE TABLE makes (its columns as the
	// single-server table's), distributed the Distributed table over it.
	local, distributed *tableDef
	// distributedSQL creates distributed.
	distributedSQL string
}

// ClusterSchema returns the schema's statements for database on cluster,
// in order: what Schema returns, each table split into a replicated local
// table and a Distributed one, every statement ON CLUSTER.
func ClusterSchema(database, cluster string) []string {
	var out []string
	for _, st := range clusterSchema(database, cluster) {
		out = append(out, st.sql)
		if st.distributedSQL != "" {
			out = append(out, st.distributedSQL)
		}
	}
	return out
}

func clusterSchema(database, cluster string) []clusterStatement {
	on := " ON CLUSTER " + cluster
	var out []clusterStatement
	for _, stmt := range Schema(database) {
		switch {
		case clusterDatabase.MatchString(stmt):
			out = append(out, clusterStatement{sql: stmt + on})
		case clusterTable.MatchString(stmt):
			m := clusterTable.FindStringSubmatch(stmt)
			db, table, columns, engine, args, rest := m[1], m[2], m[3], m[4], m[5], m[6]
			local := table + localSuffix
			st := clusterStatement{
				sql: fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s\n%s\nENGINE = %s%s",
					db, local, on, columns, replicated(db, local, engine, args), rest),
				distributedSQL: distributedTable(db, table, cluster),
			}
			if t, ok := parseCreateTable(stmt); ok {
				lt, dt := t, t
				lt.table, lt.cluster = local, cluster
				dt.cluster = cluster
				st.local, st.distributed = &lt, &dt
			}
			out = append(out, st)
		case clusterViewInto.MatchString(stmt):
			m := clusterViewInto.FindStringSubmatch(stmt)
			out = append(out, clusterStatement{sql: fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s.%s%s TO %s.%s\n%s",
				m[1], m[2], on, m[3], m[4]+localSuffix, localSources(m[5], database))})
		case clusterView.MatchString(stmt):
			m := clusterView.FindStringSubmatch(stmt)
			db, view, engine, args, rest, query := m[1], m[2], m[3], m[4], m[5], m[6]
			local := view + localSuffix
			out = append(out, clusterStatement{
				sql: fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s.%s%s\nENGINE = %s%s\n%s",
					db, local, on, replicated(db, local, engine, args), rest, localSources(query, database)),
				distributedSQL: distributedTable(db, view, cluster),
			})
		default:
			// The schema has no other kind of statement; a new kind must
			// be taught here before it ships (TestClusterSchema).
			out = append(out, clusterStatement{sql: stmt + on})
		}
	}
	return out
}

// replicated is engine (e.g. ReplacingMergeTree, with its arguments or
// none) as its Replicated form for table, one ZooKeeper path per shard.
func replicated(db, table, engine, args string) string {
	inner := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(args, "("), ")"))
	zk := fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s', '{replica}'", db, table)
	if inner != "" {
		zk += ", " + inner
	}
	return "Replicated" + engine + "(" + zk + ")"
}

// distributedTable is the Distributed table named table over its local
// part on every shard of cluster.
func distributedTable(db, table, cluster string) string {
	key := shardingKeys[table]
	if key == "" {
		key = "rand()"
	}
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s ON CLUSTER %s AS %s.%s ENGINE = Distributed(%s, %s, %s, %s)",
		db, table, cluster, db, table+localSuffix, cluster, db, table+localSuffix, key)
}

// localSources makes a view's query read the local tables: a view runs
// on the server that receives the rows.
func localSources(query, db string) string {
	return regexp.MustCompile(`(?i)\bFROM\s+`+regexp.QuoteMeta(db)+`\.(\w+)`).ReplaceAllString(query, "FROM "+db+".${1}"+localSuffix)
}

// clusterSettings are the connection settings of the archive on cluster
// (none on one server): an insert into a Distributed table returns once
// every shard has stored its rows, so a record is acknowledged to
// JetStream only when ClickHouse has it (an asynchronous insert would
// keep rows in the receiving server's queue, lost with its disk). Reads
// that combine tables say GLOBAL in their text instead of a setting
// (distributed_product_mode is an enum, which the native protocol of
// 18.16 cannot carry as a connection setting).
func clusterSettings(cluster string) clickhouse.Settings {
	if cluster == "" {
		return nil
	}
	return clickhouse.Settings{"insert_distributed_sync": 1}
}

// applyClusterSchema applies the cluster schema. When every table and
// column is already on the server it is connected to, it does nothing:
// ON CLUSTER statements wait for every server, and an archiver must start
// while a replica is down. Otherwise it runs the statements, adds the
// columns local tables lack (ALTER ... ON CLUSTER, replicated to every
// replica), and recreates a Distributed table whose columns are fewer
// than its local table's (it holds no rows: inserts are synchronous).
func applyClusterSchema(ctx context.Context, conn driver.Conn, database, cluster string, log *slog.Logger) error {
	stmts := clusterSchema(database, cluster)
	if done, err := clusterSchemaInPlace(ctx, conn, stmts); err != nil {
		return err
	} else if done {
		return nil
	}
	for _, st := range stmts {
		if err := conn.Exec(ctx, st.sql); err != nil {
			return fmt.Errorf("apply schema on cluster %s: %w", cluster, err)
		}
		if st.local != nil {
			if err := addMissingColumns(ctx, conn, *st.local, log); err != nil {
				return err
			}
		}
		if st.distributedSQL == "" {
			continue
		}
		if err := conn.Exec(ctx, st.distributedSQL); err != nil {
			return fmt.Errorf("apply schema on cluster %s: %w", cluster, err)
		}
		if st.distributed == nil {
			continue
		}
		have, err := tableColumns(ctx, conn, database, st.distributed.table)
		if err != nil {
			return err
		}
		if len(have) >= len(st.distributed.columns) {
			continue
		}
		drop := fmt.Sprintf("DROP TABLE IF EXISTS %s.%s ON CLUSTER %s", database, st.distributed.table, cluster)
		if err := conn.Exec(ctx, drop); err != nil {
			return fmt.Errorf("recreate %s.%s with the new columns: %w", database, st.distributed.table, err)
		}
		if err := conn.Exec(ctx, st.distributedSQL); err != nil {
			return fmt.Errorf("recreate %s.%s with the new columns: %w", database, st.distributed.table, err)
		}
		log.Info("clickhouse distributed table recreated with the local table's new columns", "table", st.distributed.table)
	}
	return nil
}

// clusterSchemaInPlace reports whether every table of stmts exists on the
// connected server with every column.
func clusterSchemaInPlace(ctx context.Context, conn driver.Conn, stmts []clusterStatement) (bool, error) {
	for _, st := range stmts {
		for _, t := range []*tableDef{st.local, st.distributed} {
			if t == nil {
				continue
			}
			have, err := tableColumns(ctx, conn, t.database, t.table)
			if err != nil {
				return false, err
			}
			for _, c := range t.columns {
				if _, ok := have[c.name]; !ok {
					return false, nil
				}
			}
		}
	}
	// The views: their tables exist once the last statement has run.
	var views uint64
	last := stmts[len(stmts)-1]
	m := regexp.MustCompile(`(?i)VIEW\s+IF\s+NOT\s+EXISTS\s+(\w+)\.(\w+)`).FindStringSubmatch(last.sql)
	if m == nil {
		return false, nil
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", m[1], m[2]).Scan(&views); err != nil {
		return false, fmt.Errorf("look for %s.%s: %w", m[1], m[2], err)
	}
	return views == 1, nil
}
