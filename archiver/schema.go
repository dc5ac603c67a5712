package archiver

import (
	"context"
	_ "embed"
	"fmt"
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

// applySchema creates the database and tables that are missing.
func applySchema(ctx context.Context, conn driver.Conn, database string) error {
	for _, stmt := range Schema(database) {
		if err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("apply schema: %w", err)
		}
	}
	return nil
}
