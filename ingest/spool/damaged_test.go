package spool_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/callflow/callflow/ingest/spool"
)

// logRecorder is a slog.Handler keeping every record, for tests that check
// what was logged.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// withAttr returns the attributes of the records logged with attr key set
// to value, as strings.
func (h *logRecorder) withAttr(key, value string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range h.records {
		attrs := map[string]string{"msg": r.Message, "level": r.Level.String()}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		if attrs[key] == value {
			out = append(out, attrs)
		}
	}
	return out
}

// corruptFrame flips a byte in the body of frame i of the segment p, on
// disk, and returns the file's new content.
func corruptFrame(t *testing.T, p parsedSegment, i int) []byte {
	t.Helper()
	b, err := os.ReadFile(p.path)
	if err != nil {
		t.Fatal(err)
	}
	b[p.starts[i]+frameHead+2] ^= 0x55
	writeFile(t, filepath.Dir(p.path), filepath.Base(p.path), b)
	return b
}

// TestReplaySetsAsideDamagedFrames proves that a sealed segment whose
// frames stop decoding (the disk damaged it after it was written) does not
// stop Replay: the records before the damage are sent, the segments after
// it too; the damaged bytes, from the bad frame to the segment's end, are
// kept byte for byte in <segment>.damaged, which recovery and Replay leave
// alone; the event is logged once per segment with the records kept and
// lost; Stats count the bytes in Damaged and no longer count the lost
// records as waiting; and a Replay stopped by a failing Send and resumed
// sets nothing aside twice.
func TestReplaySetsAsideDamagedFrames(t *testing.T) {
	dir := t.TempDir()
	logs := &logRecorder{}
	cfg := smallConfig(dir)
	cfg.Logger = slog.New(logs)
	s := openSpool(t, cfg)
	entries := makeEntries(160, 100)
	appendAll(t, s, entries)
	segs := parseDir(t, dir)
	if len(segs) < 5 {
		t.Fatalf("want at least 5 segments, got %d", len(segs))
	}
	first, third := segs[0], segs[2]
	if len(first.entries) < 12 {
		t.Fatalf("want at least 12 records in the first segment, got %d", len(first.entries))
	}
	// The first segment: ten good frames, a corrupt one, then more
	// (good) frames. The third: its very first frame is corrupt.
	const bad = 10
	firstBytes := corruptFrame(t, first, bad)
	thirdBytes := corruptFrame(t, third, 0)

	var want []spool.Entry
	for i, p := range segs {
		switch i {
		case 0:
			want = append(want, p.entries[:bad]...)
		case 2:
		default:
			want = append(want, p.entries...)
		}
	}
	lostFirst, lostThird := len(first.entries)-bad, len(third.entries)
	damaged := uint64(int64(len(firstBytes))-first.starts[bad]) + uint64(len(thirdBytes)-len(segHeader))

	// The first Replay: Send fails after 5 records, inside the good
	// prefix of the first segment.
	var got []spool.Entry
	n, err := s.Replay(context.Background(), 7, func(_ context.Context, part []spool.Entry) (int, error) {
		got = append(got, cloneEntries(part[:5])...)
		return 5, errors.New("jetstream away")
	})
	if n != 5 || err == nil {
		t.Fatalf("first Replay = %d, %v; want 5 and the Send's error", n, err)
	}
	st := s.Stats()
	if st.Damaged != uint64(int64(len(firstBytes))-first.starts[bad]) {
		t.Errorf("after the first Replay Damaged = %d, want the %d bytes from the bad frame on",
			st.Damaged, int64(len(firstBytes))-first.starts[bad])
	}
	if wantRecords := int64(len(entries) - 5 - lostFirst); st.Records != wantRecords {
		t.Errorf("after the first Replay Records = %d, want %d (the lost records no longer wait)", st.Records, wantRecords)
	}

	// The next Replay sends the rest, the segments after the damaged ones
	// included.
	var c collector
	n, err = s.Replay(context.Background(), 7, c.send)
	if err != nil {
		t.Fatalf("second Replay: %v", err)
	}
	got = append(got, c.entries()...)
	if n != len(want)-5 {
		t.Errorf("second Replay returned %d, want %d", n, len(want)-5)
	}
	assertEntries(t, got, want)

	checkStats(t, "after the replays", s.Stats(), spool.Stats{
		Appended: uint64(len(entries)), Commits: uint64(len(entries)),
		Replayed: uint64(len(want)), Damaged: damaged,
	})
	if left := segFiles(t, dir); len(left) != 0 {
		t.Errorf("segments left: %v", left)
	}
	for _, c := range []struct {
		seg        parsedSegment
		want       []byte
		kept, lost int
	}{
		{first, firstBytes[first.starts[bad]:], bad, lostFirst},
		{third, thirdBytes[len(segHeader):], 0, lostThird},
	} {
		name := c.seg.path + ".damaged"
		b, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("the damaged bytes were not kept: %v", err)
		} else if !bytes.Equal(b, c.want) {
			t.Errorf("%s holds %d bytes, want the %d bytes from the bad frame to the segment's end", name, len(b), len(c.want))
		}
		if more, _ := filepath.Glob(name + ".*"); len(more) != 0 {
			t.Errorf("set aside more than once: %v", more)
		}
		lines := logs.withAttr("file", c.seg.path)
		if len(lines) != 1 {
			t.Errorf("%d log lines about %s, want 1: %v", len(lines), c.seg.path, lines)
			continue
		}
		l := lines[0]
		if l["damaged_file"] != name || l["kept_records"] != strconv.Itoa(c.kept) || l["lost_records"] != strconv.Itoa(c.lost) ||
			l["damaged_bytes"] != strconv.Itoa(len(c.want)) || l["level"] != "ERROR" {
			t.Errorf("log line %v: want damaged_file %s, kept_records %d, lost_records %d, damaged_bytes %d, level ERROR",
				l, name, c.kept, c.lost, len(c.want))
		}
	}

	// A restart leaves the damaged files alone and finds nothing to send.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openSpool(t, smallConfig(dir))
	checkStats(t, "reopened", s2.Stats(), spool.Stats{})
	for _, p := range []string{first.path, third.path} {
		if !fileExists(t, p+".damaged") {
			t.Errorf("%s.damaged removed by Open", p)
		}
	}
}

// TestSetAsideKeepsEarlierCopies proves that bytes set aside never
// overwrite an earlier copy: a segment number used again (numbers of
// removed segments are) gets <segment>.damaged.1.
func TestSetAsideKeepsEarlierCopies(t *testing.T) {
	dir := t.TempDir()
	good := []spool.Entry{{Subject: "calls", ID: "g1", Data: []byte("one")}}
	seg := writeFile(t, dir, segName(1), append(segmentBytes(good...), "torn"...))
	earlier := writeFile(t, dir, segName(1)+".damaged", []byte("from an earlier run"))

	s := openSpool(t, smallConfig(dir))
	checkStats(t, "recovered", s.Stats(), spool.Stats{Records: 1, Bytes: int64(len(segmentBytes(good...))), Segments: 1, Damaged: 4})
	if b, err := os.ReadFile(earlier); err != nil || string(b) != "from an earlier run" {
		t.Errorf("the earlier copy was changed: %q, %v", b, err)
	}
	if b, err := os.ReadFile(seg + ".damaged.1"); err != nil || string(b) != "torn" {
		t.Errorf("the new copy: %q, %v; want \"torn\"", b, err)
	}
	assertEntries(t, replayAll(t, s, 1), good)
}

// faults are the failures a faultyFile injects.
type faults struct {
	tornWrite    atomic.Bool // write half of what is asked, then fail
	failTruncate atomic.Bool
}

var (
	errInjectedWrite    = errors.New("injected write failure")
	errInjectedTruncate = errors.New("injected truncate failure")
)

// faultyFile is a segment file whose writes and truncations fail on demand.
type faultyFile struct {
	*os.File
	f *faults
}

func (f faultyFile) Write(b []byte) (int, error) {
	if f.f.tornWrite.Load() {
		n, err := f.File.Write(b[:len(b)/2])
		if err != nil {
			return n, err
		}
		return n, errInjectedWrite
	}
	return f.File.Write(b)
}

func (f faultyFile) Truncate(size int64) error {
	if f.f.failTruncate.Load() {
		return errInjectedTruncate
	}
	return f.File.Truncate(size)
}

// TestAbandonedWriteTruncateFails proves what happens when a write fails
// half way and cutting the segment back to its last synced size fails too:
// Append returns both errors; the half frame left in the file is never
// read as a record and does not stop Replay, which delivers every record
// that was synced, before and after, in this process; and after a restart
// recovery sets the half frame aside (counted, kept in <segment>.damaged)
// and Replay delivers the same records.
func TestAbandonedWriteTruncateFails(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "same process"
		if restart {
			name = "after a restart"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := smallConfig(dir)
			s := openSpool(t, cfg)
			var f faults
			spool.WrapFiles(s, func(file *os.File) spool.ActiveFile { return faultyFile{file, &f} })

			entries := makeEntries(10, 50)
			before, after := entries[:5], entries[5:]
			appendAll(t, s, before)
			synced := int64(len(segmentBytes(before...)))

			f.tornWrite.Store(true)
			f.failTruncate.Store(true)
			x := spool.Entry{Subject: "calls", ID: "torn", Data: bytes.Repeat([]byte("x"), 80)}
			err := s.Append(x)
			if !errors.Is(err, errInjectedWrite) || !errors.Is(err, errInjectedTruncate) {
				t.Errorf("Append whose write and truncation fail = %v; want both errors", err)
			}
			files := segFiles(t, dir)
			if len(files) != 1 {
				t.Fatalf("want one segment, got %v", files)
			}
			fi, err := os.Stat(files[0])
			if err != nil {
				t.Fatal(err)
			}
			half := frameLen(x) / 2
			if fi.Size() != synced+half {
				t.Fatalf("setup: the segment has %d bytes, want %d synced and %d of the failed write", fi.Size(), synced, half)
			}
			if st := s.Stats(); st.Records != 5 || st.Bytes != synced {
				t.Errorf("after the failed append Stats = %+v, want 5 records in %d bytes", st, synced)
			}

			f.tornWrite.Store(false)
			f.failTruncate.Store(false)
			appendAll(t, s, after)
			if n := len(segFiles(t, dir)); n != 2 {
				t.Fatalf("the records after the failed write went to %d segments, want a new one", n-1)
			}

			if restart {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = openSpool(t, cfg)
				checkStats(t, "reopened", s.Stats(), spool.Stats{
					Records: 10, Bytes: diskBytes(t, dir), Segments: 2, Damaged: uint64(half),
				})
				kept, err := os.ReadFile(files[0] + ".damaged")
				if err != nil || !bytes.Equal(kept, encodeFrame(x)[:half]) {
					t.Errorf("%s.damaged = %q, %v; want the half frame", files[0], kept, err)
				}
			}
			assertEntries(t, replayAll(t, s, 3), entries)
			if left := segFiles(t, dir); len(left) != 0 {
				t.Errorf("segments left: %v", left)
			}
			wantDamaged := uint64(0) // in the same process the half frame is never read
			if restart {
				wantDamaged = uint64(half)
			}
			if st := s.Stats(); st.Records != 0 || st.Bytes != 0 || st.Segments != 0 || st.Damaged != wantDamaged {
				t.Errorf("after the replay Stats = %+v, want nothing left and Damaged %d", st, wantDamaged)
			}
		})
	}
}
