package archiver

import (
	"runtime"
	"strings"
	"testing"

	chcolumn "github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// TestReserve checks that a String column given room by reserve holds
// exactly the values appended after it (nothing of the placeholder), and
// that the room was taken at once: appending a large column after reserve
// allocates about its size, where growing as it goes allocated several
// times that.
func TestReserve(t *testing.T) {
	const n = 2000
	values := make([]string, n)
	size := 0
	for i := range values {
		values[i] = strings.Repeat(string(rune('a'+i%26)), 500+i%200)
		size += len(values[i])
	}
	allocated := func(reserved bool) (uint64, chcolumn.Interface) {
		col := mustColumn(t, "String")
		tv := &typedValues[string]{v: values}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if reserved {
			tv.reserve(col)
		}
		if _, err := col.Append(tv.v); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, col
	}
	grown, _ := allocated(false)
	reserved, col := allocated(true)
	if col.Rows() != n {
		t.Fatalf("rows = %d, want %d", col.Rows(), n)
	}
	for i, want := range values {
		if got := col.Row(i, false).(string); got != want {
			t.Fatalf("row %d = %.20q (%d bytes), want %.20q (%d bytes)", i, got, len(got), want, len(want))
		}
	}
	t.Logf("column of %d bytes: %d bytes allocated growing, %d reserved", size, grown, reserved)
	if reserved > grown*2/3 {
		t.Errorf("reserved append allocated %d bytes, growing %d: reserve gave no room", reserved, grown)
	}

	// Other columns, String columns of another type and columns already
	// holding rows are left alone.
	lc := &typedColumn{Interface: mustColumn(t, "String"), typ: "LowCardinality(String)"}
	(&typedValues[string]{v: values}).reserve(lc)
	if lc.appends != 0 {
		t.Fatalf("reserve appended %d times to a LowCardinality(String) column", lc.appends)
	}
	small := &typedValues[string]{v: []string{"x"}}
	col = mustColumn(t, "String")
	small.reserve(col)
	if col.Rows() != 0 {
		t.Fatalf("a small column got %d rows from reserve", col.Rows())
	}
	ints := &typedValues[uint32]{v: []uint32{1, 2}}
	ucol := mustColumn(t, "UInt32")
	ints.reserve(ucol)
	if ucol.Rows() != 0 {
		t.Fatalf("a UInt32 column got %d rows from reserve", ucol.Rows())
	}
}

// mustColumn returns an empty column of type typ.
func mustColumn(t *testing.T, typ chcolumn.Type) chcolumn.Interface {
	t.Helper()
	c, err := typ.Column("c", nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// typedColumn is a column that says it is of type typ and counts appends.
type typedColumn struct {
	chcolumn.Interface
	typ     chcolumn.Type
	appends int
}

func (c *typedColumn) Type() chcolumn.Type { return c.typ }

func (c *typedColumn) Append(v any) ([]uint8, error) {
	c.appends++
	return c.Interface.Append(v)
}
