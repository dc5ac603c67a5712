package archiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// errContent marks an insert refused for what the rows hold, as opposed to
// an outage: retrying the same rows would fail forever.
var errContent = errors.New("rows refused for their content")

// contentCodes are ClickHouse exception codes that blame the data.
var contentCodes = map[int32]bool{
	6:   true, // CANNOT_PARSE_TEXT
	27:  true, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
	38:  true, // CANNOT_PARSE_DATE
	41:  true, // CANNOT_PARSE_DATETIME
	53:  true, // TYPE_MISMATCH
	69:  true, // ARGUMENT_OUT_OF_BOUND
	70:  true, // CANNOT_CONVERT_TYPE
	72:  true, // CANNOT_PARSE_NUMBER
	117: true, // INCORRECT_DATA
	131: true, // TOO_LARGE_STRING_SIZE
	321: true, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
}

func isContent(err error) bool {
	if errors.Is(err, errContent) {
		return true
	}
	var exc *clickhouse.Exception
	return errors.As(err, &exc) && contentCodes[exc.Code]
}

// rejected is a message set aside: not a record, or refused by ClickHouse.
type rejected struct {
	seq     uint64
	subject string
	id      string
	reason  string
	data    []byte
}

// writer inserts rows into ClickHouse.
type writer struct {
	conn         driver.Conn
	log          *slog.Logger
	timeout      time.Duration
	insertEvents string
	insertNumber string
	insertReject string
}

func newWriter(conn driver.Conn, database string, timeout time.Duration, log *slog.Logger) *writer {
	return &writer{conn: conn, log: log, timeout: timeout,
		insertEvents: insertEvents(database), insertNumber: insertNumbers(database), insertReject: insertRejected(database)}
}

// store inserts rows. Rows ClickHouse refuses for their content are found
// by splitting the batch in halves and set aside one by one; the error
// returned, if any, is an outage and the whole call should be retried
// (rows already stored collapse with their copies through FINAL).
func (w *writer) store(ctx context.Context, rows []row) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	err := w.insert(ctx, rows)
	if err == nil {
		return 0, nil
	}
	if !isContent(err) {
		return 0, err
	}
	if len(rows) == 1 {
		r := rows[0]
		return 1, w.reject(ctx, []rejected{{seq: r.seq, id: r.rec.ID, reason: err.Error(), data: r.data}})
	}
	mid := len(rows) / 2
	n1, err := w.store(ctx, rows[:mid])
	if err != nil {
		return n1, err
	}
	n2, err := w.store(ctx, rows[mid:])
	return n1 + n2, err
}

// insert sends rows as one INSERT with an explicit column list (which
// ClickHouse 18.16 needs), then the number_status rows of the number
// updates among them. Both inserts are idempotent: when the second fails,
// the whole call is retried (or split) and the first one's rows collapse
// with their copies.
func (w *writer) insert(ctx context.Context, rows []row) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	if err := w.insertCallEvents(ctx, rows); err != nil {
		return err
	}
	return w.insertNumbers(ctx, rows)
}

// insertCallEvents appends rows a column at a time. The columns are built
// before the connection is taken from the pool, which it then holds only
// for the insert itself.
func (w *writer) insertCallEvents(ctx context.Context, rows []row) error {
	block := newEventBlock(rows)
	defer block.release()
	batch, err := w.conn.PrepareBatch(ctx, w.insertEvents)
	if err != nil {
		return fmt.Errorf("prepare insert: %w", err)
	}
	defer batch.Close()
	if err := block.appendTo(batch); err != nil {
		// Typed columns of the table's own types: only a column list out
		// of step with the schema gets here, which no split would cure.
		return fmt.Errorf("append %d rows: %w", len(rows), err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d rows: %w", len(rows), err)
	}
	return nil
}

// insertNumbers inserts the number_status rows of rows' number updates.
func (w *writer) insertNumbers(ctx context.Context, rows []row) error {
	n := 0
	for i := range rows {
		n += len(rows[i].numbers)
	}
	if n == 0 {
		return nil
	}
	batch, err := w.conn.PrepareBatch(ctx, w.insertNumber)
	if err != nil {
		return fmt.Errorf("prepare number status insert: %w", err)
	}
	defer batch.Close()
	for i := range rows {
		for j := range rows[i].numbers {
			if err := batch.Append(rows[i].numberValues(j)...); err != nil {
				return fmt.Errorf("%w: record %s: number %d: %w", errContent, rows[i].rec.ID, j, err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d number statuses: %w", n, err)
	}
	return nil
}

// reject stores messages in rejected_records.
func (w *writer) reject(ctx context.Context, rs []rejected) error {
	if len(rs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	batch, err := w.conn.PrepareBatch(ctx, w.insertReject)
	if err != nil {
		return fmt.Errorf("prepare reject insert: %w", err)
	}
	defer batch.Close()
	now := time.Now().UTC()
	for _, r := range rs {
		if err := batch.Append(now, r.seq, r.subject, r.id, r.reason, string(r.data)); err != nil {
			return fmt.Errorf("reject record %s: %w", r.id, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d rejected records: %w", len(rs), err)
	}
	w.log.Warn("records set aside in rejected_records", "count", len(rs), "first_sequence", rs[0].seq, "reason", rs[0].reason)
	return nil
}
