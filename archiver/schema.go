package archiver

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed schema.sql
var schemaSQL string

// Schema returns the schema's statements for database, in order.
func Schema(database string) []string {
	return SplitSQL(SchemaSQL(database))
}

// SplitSQL splits a file of statements on ';', dropping '--' comment lines
// (which may contain ';') and blank statements.
func SplitSQL(sql string) []string {
	var code []string
	for _, l := range strings.Split(sql, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
			code = append(code, l)
		}
	}
	var out []string
	for _, stmt := range strings.Split(strings.Join(code, "\n"), ";") {
		if stmt = strings.TrimSpace(stmt); stmt != "" {
			out = append(out, stmt)
		}
	}
	return out
}

// SchemaSQL returns the schema as one SQL file for database, comments kept.
func SchemaSQL(database string) string {
	return strings.ReplaceAll(schemaSQL, "{database}", database)
}

// applySchema creates the database, tables and views that are missing, and
// brings existing tables up to the schema's columns (see addMissingColumns)
// before the views that read them are created. Every step is idempotent, so
// archivers starting together, or an archiver started twice, are harmless.
func applySchema(ctx context.Context, conn driver.Conn, database string, log *slog.Logger) error {
	for _, stmt := range Schema(database) {
		if err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("apply schema: %w", err)
		}
		if t, ok := parseCreateTable(stmt); ok {
			if err := addMissingColumns(ctx, conn, t, log); err != nil {
				return err
			}
		}
	}
	return nil
}

// tableDef is a CREATE TABLE statement's table and columns, in order.
type tableDef struct {
	database, table string
	columns         []columnDef
	// cluster, when set, is the cluster its columns are added on (ALTER
	// ... ON CLUSTER).
	cluster string
}

// columnDef is one column of a CREATE TABLE: its name and the rest of its
// definition (type, and default when there is one).
type columnDef struct {
	name, def string
}

// typ is the column's type: its definition up to the first space outside
// parentheses (where a DEFAULT, MATERIALIZED, CODEC or COMMENT clause
// begins), spelled as system.columns spells it when the schema writes it
// so ("Array(Tuple(String, UInt8))").
func (c columnDef) typ() string {
	depth := 0
	for i := 0; i < len(c.def); i++ {
		switch c.def[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ' ':
			if depth == 0 {
				return c.def[:i]
			}
		}
	}
	return c.def
}

var createTable = regexp.MustCompile(`(?is)^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*ENGINE\b`)

// parseCreateTable reads the columns of a CREATE TABLE statement of the
// schema (one column per line, "name Type[ DEFAULT ...]"). Other statements
// report false.
func parseCreateTable(stmt string) (tableDef, bool) {
	m := createTable.FindStringSubmatch(stmt)
	if m == nil {
		return tableDef{}, false
	}
	t := tableDef{database: m[1], table: m[2]}
	depth, start := 0, 0
	body := m[3]
	add := func(item string) {
		if item = strings.TrimSpace(item); item == "" {
			return
		}
		name, def, _ := strings.Cut(item, " ")
		t.columns = append(t.columns, columnDef{name: name, def: strings.Join(strings.Fields(def), " ")})
	}
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				add(body[start:i])
				start = i + 1
			}
		}
	}
	add(body[start:])
	return t, true
}

// columnsQuery lists a table's columns; database and table are bound.
const columnsQuery = "SELECT name, type FROM system.columns WHERE database = ? AND table = ?"

// tableColumns returns the types of a table's columns by name.
func tableColumns(ctx context.Context, conn driver.Conn, database, table string) (map[string]string, error) {
	rows, err := conn.Query(ctx, columnsQuery, database, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s.%s: %w", database, table, err)
	}
	defer rows.Close()
	cols := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("columns of %s.%s: %w", database, table, err)
		}
		cols[name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("columns of %s.%s: %w", database, table, err)
	}
	return cols, nil
}

// addMissingColumns adds to an existing table the columns of its CREATE
// statement that it lacks, in the statement's order, so that a table made by
// an older schema gets the columns added since. ALTER TABLE ... ADD COLUMN
// changes only the table's metadata: rows already stored keep every value
// and read the new columns as their default until rewritten by a merge.
//
// ClickHouse 18.16 does not parse ADD COLUMN IF NOT EXISTS, so the columns
// present are read from system.columns first; one code path serves every
// release. Two archivers starting together may both find a column missing:
// the second ALTER fails, and the column being there afterwards is success.
// A column whose type differs from the schema's is left alone (a column is
// never retyped in place) and logged.
func addMissingColumns(ctx context.Context, conn driver.Conn, t tableDef, log *slog.Logger) error {
	have, err := tableColumns(ctx, conn, t.database, t.table)
	if err != nil {
		return err
	}
	for _, c := range t.columns {
		if typ, ok := have[c.name]; ok {
			if typ != c.typ() {
				log.Warn("clickhouse column has another type than the schema's; left as it is",
					"table", t.table, "column", c.name, "type", typ, "schema_type", c.typ())
			}
			continue
		}
		// Names and types come from the embedded schema and the database
		// name is a validated identifier: no value reaches this statement.
		on := ""
		if t.cluster != "" {
			on = " ON CLUSTER " + t.cluster
		}
		alter := "ALTER TABLE " + t.database + "." + t.table + on + " ADD COLUMN " + c.name + " " + c.def
		if err := conn.Exec(ctx, alter); err != nil {
			again, qerr := tableColumns(ctx, conn, t.database, t.table)
			if _, ok := again[c.name]; qerr == nil && ok {
				continue // another archiver added it meanwhile
			}
			return fmt.Errorf("add column %s to %s.%s: %w", c.name, t.database, t.table, err)
		}
		log.Info("clickhouse column added", "table", t.table, "column", c.name, "type", c.typ())
	}
	return nil
}
