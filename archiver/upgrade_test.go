package archiver

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/wire"
)

// previousSchema is the schema of the release before number masking
// (commit 88e9a05), kept as test data: the upgrade starts from it.
func previousSchema(t *testing.T, database string) (stmts []string, events tableDef) {
	t.Helper()
	b, err := os.ReadFile("testdata/schema-88e9a05.sql")
	if err != nil {
		t.Fatal(err)
	}
	stmts = SplitSQL(strings.ReplaceAll(string(b), "{database}", database))
	for _, s := range stmts {
		if td, ok := parseCreateTable(s); ok && td.table == "call_events" {
			return stmts, td
		}
	}
	t.Fatal("no call_events in the previous schema")
	return nil, tableDef{}
}

func createPrevious(t *testing.T, conn driver.Conn, database string) tableDef {
	t.Helper()
	stmts, events := previousSchema(t, database)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range stmts {
		if err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("previous schema: %v\n%s", err, s)
		}
	}
	return events
}

// insertPrevious inserts rows as the previous archiver did: its columns
// only.
func insertPrevious(t *testing.T, conn driver.Conn, database string, cols []columnDef, datas [][]byte) {
	t.Helper()
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
		if eventColumns[i].name() != c.name {
			t.Fatalf("column %d: the previous schema has %s, this archiver inserts %s there", i, c.name, eventColumns[i].name())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+database+".call_events ("+strings.Join(names, ", ")+")")
	if err != nil {
		t.Fatal(err)
	}
	for i, data := range datas {
		r, err := newRow(data, uint64(1000+i))
		if err != nil {
			t.Fatal(err)
		}
		if err := batch.Append(r.values()[:len(cols)]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

// fingerprint is the count and a hash of every value of the previous
// columns of the rows matching where: equal before and after the upgrade
// only if no row was lost or changed.
func (e *env) fingerprint(t *testing.T, cols []columnDef, where string) string {
	t.Helper()
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	var n, sum uint64
	q := "SELECT count(), sum(cityHash64(" + strings.Join(names, ", ") + ")) FROM " + e.db + ".call_events WHERE " + where
	if err := e.ch.QueryRow(context.Background(), q).Scan(&n, &sum); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return fmt.Sprintf("%d rows, hash %x", n, sum)
}

// columnsInOrder lists a table's columns as "name type", in order.
func columnsInOrder(t *testing.T, conn driver.Conn, database, table string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT name, type FROM system.columns WHERE database = ? AND table = ?", database, table) // in table order (18.16 has no position column)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		out = append(out, name+" "+typ)
	}
	return out
}

// schemaColumns lists a table's columns in this schema as "name type".
func schemaColumns(t *testing.T, database, table string) []string {
	t.Helper()
	for _, s := range Schema(database) {
		if td, ok := parseCreateTable(s); ok && td.table == table {
			var out []string
			for _, c := range td.columns {
				out = append(out, c.name+" "+c.typ())
			}
			return out
		}
	}
	t.Fatalf("no table %s in the schema", table)
	return nil
}

// TestUpgradeInPlace: an archiver started on the previous release's
// tables, with rows in them, adds the new columns without losing or
// changing a row, fills them for new records, keeps working when the
// migration runs again, and takes rows from an archiver of the previous
// release still running during a rolling upgrade.
func TestUpgradeInPlace(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	prev := createPrevious(t, e.ch, e.db)
	var olds [][]byte
	for i := range 40 {
		_, _, data := record(i, wire.EventCallAction)
		olds = append(olds, data)
	}
	insertPrevious(t, e.ch, e.db, prev.columns, olds)
	before := e.fingerprint(t, prev.columns, "1")
	if n := e.count(t, "SELECT toUInt64(uniqMerge(calls)) FROM DB.calls_per_minute"); n != 40 {
		t.Fatalf("previous calls_per_minute counts %d, want 40", n)
	}

	// The new archiver starts, with a masking session's records waiting.
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	fixture := maskingFixture(t0)
	e.publishAll(t, fixture)
	_, stop := e.run(t, e.config(t))
	e.waitRows(t, "SELECT count() FROM DB.call_events", uint64(40+len(fixture)))
	stop()

	// The table is what a new install creates: the previous columns
	// untouched, in place, the new ones after them.
	if got, want := columnsInOrder(t, e.ch, e.db, "call_events"), schemaColumns(t, e.db, "call_events"); !reflect.DeepEqual(got, want) {
		t.Fatalf("call_events after the upgrade:\n got %v\nwant %v", got, want)
	}
	if after := e.fingerprint(t, prev.columns, "event_id LIKE 'ev-%'"); after != before {
		t.Errorf("the previous rows changed: %s before, %s after", before, after)
	}
	if n := e.count(t, "SELECT count() FROM DB.call_events WHERE event_id LIKE 'ev-%' AND (masking_session_id != '' OR virtual_number != '' OR out_of_session_policy != '' OR connected_to != '')"); n != 0 {
		t.Errorf("%d previous rows read non-empty new columns", n)
	}
	var raw, callflow string
	if err := e.ch.QueryRow(context.Background(), "SELECT raw, callflow FROM "+e.db+".call_events WHERE event_id = 'ev-000007'").Scan(&raw, &callflow); err != nil {
		t.Fatal(err)
	}
	if want, _ := wire.ParseRecord(olds[7]); raw != string(want.Event) || callflow != string(want.Decision.Callflow) {
		t.Errorf("previous row ev-000007: raw %s callflow %s", raw, callflow)
	}
	if n := e.count(t, "SELECT toUInt64(uniqMerge(calls)) FROM DB.calls_per_minute"); n != 40+8 {
		t.Errorf("calls_per_minute counts %d calls, want the previous 40 and the fixture's 8", n)
	}
	// New records fill the new columns.
	if m, vn, _, to, _ := e.maskingColumns(t, "a1"); m != exampleMaskingSession || vn != fxNumber || to != fxCallee {
		t.Errorf("new record a1: masking %q, number %q, connected to %q", m, vn, to)
	}
	if _, _, policy, to, _ := e.maskingColumns(t, "a7"); policy != wire.PolicySubAccount || to != "+6533333333" {
		t.Errorf("new record a7: policy %q, connected to %q", policy, to)
	}

	// The migration again, twice: nothing changes.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range 2 {
		if err := applySchema(ctx, e.ch, e.db, testLogger(t)); err != nil {
			t.Fatalf("schema applied again: %v", err)
		}
	}
	if got, want := columnsInOrder(t, e.ch, e.db, "call_events"), schemaColumns(t, e.db, "call_events"); !reflect.DeepEqual(got, want) {
		t.Fatalf("call_events after applying the schema again:\n got %v\nwant %v", got, want)
	}
	if n := e.count(t, "SELECT count() FROM DB.call_events"); n != uint64(40+len(fixture)) {
		t.Errorf("%d rows after applying the schema again", n)
	}

	// An archiver of the previous release, still running, inserts the
	// callee's answer of x8-s3 with its own column list: the new columns
	// take their defaults and the interaction views see it.
	status := callStatus("st3-late", "x8-s3", "c-b3", "CALL_CONNECTED", "OUTBOUND", t0.Add(90*time.Minute+9*time.Second), 0)
	insertPrevious(t, e.ch, e.db, prev.columns, [][]byte{status.data})
	h, err := OpenHistory(ClickHouseConfig{Addrs: []string{e.addr}, Database: e.db})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	page, err := h.Interactions(ctx, exampleMaskingSession, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	var answered []string
	for _, in := range page.Interactions {
		if in.Answered {
			answered = append(answered, in.SessionID)
		}
	}
	if want := []string{"x8-s4", "x8-s3", "x8-s1"}; !reflect.DeepEqual(answered, want) {
		t.Errorf("answered interactions %v, want %v", answered, want)
	}
}

// TestUpgradeConcurrent: archivers starting together on the previous
// tables, one of which an operator already began to alter by hand, all
// succeed and leave the schema's columns once each.
func TestUpgradeConcurrent(t *testing.T) {
	addr := chtest.Addr(t)
	conn := chtest.Conn(t, addr)
	db := chtest.Database(t, addr)
	createPrevious(t, conn, db)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "ALTER TABLE "+db+".call_events ADD COLUMN masking_session_id String"); err != nil {
		t.Fatal(err)
	}
	const archivers = 4
	errs := make([]error, archivers)
	var wg sync.WaitGroup
	for i := range archivers {
		c := chtest.Conn(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = applySchema(ctx, c, db, testLogger(t))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("archiver %d: %v", i, err)
		}
	}
	for _, table := range []string{"call_events", "number_status", "interaction_calls"} {
		if got, want := columnsInOrder(t, conn, db, table), schemaColumns(t, db, table); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", table, got, want)
		}
	}
}

// TestParseCreateTable: the migration reads every CREATE TABLE of the
// schema, and each column's type.
func TestParseCreateTable(t *testing.T) {
	tables := map[string]int{}
	for _, s := range Schema("db") {
		if td, ok := parseCreateTable(s); ok {
			if td.database != "db" {
				t.Errorf("%s: database %q", td.table, td.database)
			}
			tables[td.table] = len(td.columns)
		}
	}
	want := map[string]int{"call_events": len(eventColumns), "rejected_records": 6, "number_status": len(numberColumns), "interaction_calls": 10}
	if !reflect.DeepEqual(tables, want) {
		t.Errorf("tables and column counts %v, want %v", tables, want)
	}
	td, _ := parseCreateTable("CREATE TABLE IF NOT EXISTS d.t (a String, b Array(Tuple(String, UInt8)) DEFAULT [], c DateTime) ENGINE = Memory")
	got := fmt.Sprint(td.columns)
	if wantCols := "[{a String} {b Array(Tuple(String, UInt8)) DEFAULT []} {c DateTime}]"; got != wantCols {
		t.Errorf("columns %s, want %s", got, wantCols)
	}
	if typ := td.columns[1].typ(); typ != "Array(Tuple(String, UInt8))" {
		t.Errorf("type of b: %q", typ)
	}
	if _, ok := parseCreateTable("CREATE MATERIALIZED VIEW IF NOT EXISTS d.v TO d.t AS SELECT 1"); ok {
		t.Error("a view read as a table")
	}
}
