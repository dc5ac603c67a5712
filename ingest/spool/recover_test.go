package spool_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/callflow/callflow/ingest/spool"
)

// TestRestartResumes proves that what a spool holds survives Close and
// Open: after a Replay stopped at any point, the reopened spool counts the
// records still on disk and its Replay delivers every record not delivered
// before, in order. A record delivered before the restart is delivered again
// only if its segment was not fully delivered (the documented at-least-once
// repeat); fully delivered segments are gone. Records appended after the
// reopen go to a new segment, numbered after the old ones, and are
// delivered after them.
func TestRestartResumes(t *testing.T) {
	const n = 90
	entries := makeEntries(n, 100)
	for _, tc := range []struct {
		name string
		// delivered before the restart: a count, or a segment boundary
		delivered func(segStart []int) int
	}{
		{"nothing delivered", func([]int) int { return 0 }},
		{"part of the first segment", func([]int) int { return 10 }},
		{"exactly the first segment", func(s []int) int { return s[1] }},
		{"first segment and one more", func(s []int) int { return s[1] + 1 }},
		{"inside the third segment", func(s []int) int { return s[2] + 5 }},
		{"all but one", func([]int) int { return n - 1 }},
		{"everything", func([]int) int { return n }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := smallConfig(dir)
			s, err := spool.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			appendAll(t, s, entries)

			// Which segment each record is in, before anything is removed.
			files := parseDir(t, dir)
			if len(files) < 4 {
				t.Fatalf("want at least 4 segments, got %d", len(files))
			}
			var segStart, segOf []int
			oldNames := map[string]bool{}
			for i, f := range files {
				segStart = append(segStart, len(segOf))
				for range f.entries {
					segOf = append(segOf, i)
				}
				oldNames[filepath.Base(f.path)] = true
			}
			k := tc.delivered(segStart)

			// Deliver exactly k records, then fail.
			sent := 0
			_, err = s.Replay(context.Background(), 6, func(_ context.Context, part []spool.Entry) (int, error) {
				c := min(len(part), k-sent)
				for i := range c {
					if !entryEqual(part[i], entries[sent+i]) {
						t.Fatalf("before restart: record %d is %s", sent+i, show(part[i]))
					}
				}
				sent += c
				if c < len(part) {
					return c, errors.New("jetstream away")
				}
				return c, nil
			})
			if sent != k || (k < n) != (err != nil) {
				t.Fatalf("before restart: delivered %d (want %d), Replay error %v", sent, k, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s2 := openSpool(t, cfg)
			oldNames = map[string]bool{} // the old segments still there
			for _, p := range segFiles(t, dir) {
				oldNames[filepath.Base(p)] = true
			}
			onDisk, err := spool.Read(dir)
			if err != nil {
				t.Fatal(err)
			}
			st := s2.Stats()
			if st.Records != int64(len(onDisk)) || st.Bytes != diskBytes(t, dir) || st.Segments != len(segFiles(t, dir)) {
				t.Errorf("reopened: Stats = %+v; disk holds %d records, %d bytes, %d segments",
					st, len(onDisk), diskBytes(t, dir), len(segFiles(t, dir)))
			}
			if st.Records < int64(n-k) {
				t.Errorf("reopened: Records = %d, but %d were never delivered", st.Records, n-k)
			}
			if st.Appended != 0 || st.Replayed != 0 || st.Refused != 0 || st.Commits != 0 {
				t.Errorf("reopened: counters not reset: %+v", st)
			}

			more := makeEntries(n+20, 100)[n:]
			appendAll(t, s2, more)
			var maxOld uint64 // numbers of removed segments may be used again
			for name := range oldNames {
				maxOld = max(maxOld, segSeq(t, name))
			}
			newSegs := 0
			for _, p := range segFiles(t, dir) {
				name := filepath.Base(p)
				if oldNames[name] {
					continue
				}
				newSegs++
				if len(oldNames) > 0 && segSeq(t, name) <= maxOld {
					t.Errorf("new segment %s is not numbered after the old segments (up to %d)", name, maxOld)
				}
			}
			if newSegs == 0 {
				t.Error("records appended after the reopen went into an old segment")
			}

			all := append(slices.Clone(entries), more...)
			got := replayAll(t, s2, 6)
			from := len(all) - len(got)
			if from < 0 {
				t.Fatalf("replayed %d records, only %d exist", len(got), len(all))
			}
			assertEntries(t, got, all[from:]) // a suffix: nothing lost, order kept
			if from > k {
				t.Errorf("records %d..%d were never delivered and are lost", k, from-1)
			}
			if k < n && from < segStart[segOf[k]] {
				t.Errorf("records from %d redelivered, but segments before %d were fully delivered", from, segStart[segOf[k]])
			}
			if k == n && from != n {
				t.Errorf("everything was delivered, yet %d records came again", n-from)
			}
			if left := segFiles(t, dir); len(left) != 0 {
				t.Errorf("segments left: %v", left)
			}
		})
	}
}

// TestReopenWithoutReplay proves that Close and Open repeated without a
// Replay neither lose nor duplicate records, and that an empty directory
// opens as an empty spool.
func TestReopenWithoutReplay(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig(dir)
	var want []spool.Entry
	for round := range 4 {
		s, err := spool.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Records != int64(len(want)) {
			t.Fatalf("round %d: Records = %d, want %d", round, st.Records, len(want))
		}
		batch := makeEntries(40*(round+1), 80)[40*round:]
		appendAll(t, s, batch)
		want = append(want, batch...)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s := openSpool(t, cfg)
	assertEntries(t, replayAll(t, s, 13), want)

	empty := openSpool(t, smallConfig(t.TempDir()))
	checkStats(t, "empty dir", empty.Stats(), spool.Stats{})
}

// TestRecoverTornTail proves crash recovery of a segment's tail: a frame
// cut short, followed by garbage, or failing its CRC ends the segment; Open
// truncates the file right after the last whole frame, keeps every frame
// before it byte for byte, counts and replays them, and removes a segment
// left with no record. The bytes cut off are set aside: kept byte for byte
// in <segment>.damaged and counted in Stats.Damaged. Read, the inspection
// helper, shows the same records without changing the file.
func TestRecoverTornTail(t *testing.T) {
	entries := makeEntries(5, 50)
	last := func(st []int64) int64 { return st[len(st)-1] }
	cases := []struct {
		name   string
		mutate func(b []byte, starts []int64) []byte
		keep   int
	}{
		{"intact", func(b []byte, _ []int64) []byte { return b }, 5},
		{"cut one byte short", func(b []byte, _ []int64) []byte { return b[:len(b)-1] }, 4},
		{"cut mid last body", func(b []byte, st []int64) []byte { return b[:last(st)+frameHead+5] }, 4},
		{"cut mid last frame head", func(b []byte, st []int64) []byte { return b[:last(st)+5] }, 4},
		{"cut right after last frame head", func(b []byte, st []int64) []byte { return b[:last(st)+frameHead] }, 4},
		{"cut at the third frame", func(b []byte, st []int64) []byte { return b[:st[2]+1] }, 2},
		{"garbage appended", func(b []byte, _ []int64) []byte { return append(b, "garbage after the last frame\xff\x00"...) }, 5},
		{"one byte appended", func(b []byte, _ []int64) []byte { return append(b, 7) }, 5},
		{"zeros appended", func(b []byte, _ []int64) []byte { return append(b, make([]byte, 64)...) }, 5},
		{"frame of an empty body appended", func(b []byte, _ []int64) []byte {
			return append(b, 0, 0, 0, 0, 0, 0, 0, 0) // length 0, CRC-32C of nothing is 0
		}, 5},
		{"flipped byte in last body", func(b []byte, st []int64) []byte { b[last(st)+frameHead+3] ^= 0x20; return b }, 4},
		{"flipped last byte", func(b []byte, _ []int64) []byte { b[len(b)-1] ^= 1; return b }, 4},
		{"flipped byte in last CRC", func(b []byte, st []int64) []byte { b[last(st)+5] ^= 0x01; return b }, 4},
		{"last length too large", func(b []byte, st []int64) []byte {
			binary.LittleEndian.PutUint32(b[last(st):], 0xffffffff)
			return b
		}, 4},
		{"last length one short", func(b []byte, st []int64) []byte {
			p := b[last(st):]
			binary.LittleEndian.PutUint32(p, binary.LittleEndian.Uint32(p)-1)
			return b
		}, 4},
		{"flipped byte in the third frame", func(b []byte, st []int64) []byte { b[st[2]+frameHead+1] ^= 0xff; return b }, 2},
		{"first frame torn", func(b []byte, _ []int64) []byte { return b[:len(segHeader)+6] }, 0},
		{"first frame corrupt", func(b []byte, st []int64) []byte { b[st[0]+frameHead] ^= 0xff; return b }, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := smallConfig(dir)
			s, err := spool.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			appendAll(t, s, entries)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			files := parseDir(t, dir)
			if len(files) != 1 || len(files[0].entries) != 5 {
				t.Fatalf("setup: want one segment of 5 records, got %d segments", len(files))
			}
			path := files[0].path
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			mutated := tc.mutate(slices.Clone(orig), files[0].starts)
			writeFile(t, dir, filepath.Base(path), mutated)

			// Read is read-only and stops at the torn frame too.
			read, err := spool.Read(dir)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			assertEntries(t, read, entries[:tc.keep])
			if b, _ := os.ReadFile(path); !bytes.Equal(b, mutated) {
				t.Error("Read changed the file")
			}

			s2 := openSpool(t, cfg)
			st := s2.Stats()
			wantSize := int64(len(orig))
			if tc.keep < 5 {
				wantSize = files[0].starts[tc.keep]
			}
			if tc.keep == 0 {
				wantSize = int64(len(segHeader))
			}
			damaged := mutated[min(wantSize, int64(len(mutated))):]
			kept, err := os.ReadFile(path + ".damaged")
			switch {
			case len(damaged) == 0 && err == nil:
				t.Errorf("nothing was damaged, yet %s.damaged exists", path)
			case len(damaged) == 0 && !os.IsNotExist(err):
				t.Fatal(err)
			case len(damaged) > 0 && err != nil:
				t.Errorf("the %d bytes cut off were not kept: %v", len(damaged), err)
			case !bytes.Equal(kept, damaged):
				t.Errorf("%s.damaged holds %d bytes, want the %d bytes cut off", path, len(kept), len(damaged))
			}
			if tc.keep == 0 {
				if fileExists(t, path) {
					t.Error("a segment left with no record was not removed")
				}
				checkStats(t, "no record left", st, spool.Stats{Damaged: uint64(len(damaged))})
			} else {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(b)) != wantSize || !bytes.Equal(b, orig[:wantSize]) {
					t.Errorf("after recovery the file has %d bytes, want the first %d bytes of the original", len(b), wantSize)
				}
				checkStats(t, "recovered", st, spool.Stats{Records: int64(tc.keep), Bytes: wantSize, Segments: 1, Damaged: uint64(len(damaged))})
			}

			// A record appended after the recovery follows the kept ones.
			e := spool.Entry{Subject: "calls.new", ID: "after-recovery", Data: []byte("new")}
			if err := s2.Append(e); err != nil {
				t.Fatal(err)
			}
			assertEntries(t, replayAll(t, s2, 2), append(slices.Clone(entries[:tc.keep]), e))
		})
	}
}

// TestRecoverTornOlderSegment proves that a corrupt tail in one segment
// costs only that segment's tail: the segments after it are recovered and
// replayed whole, in order.
func TestRecoverTornOlderSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig(dir)
	s, err := spool.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	entries := makeEntries(120, 100)
	appendAll(t, s, entries)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files := parseDir(t, dir)
	if len(files) < 3 {
		t.Fatalf("want 3 segments, got %d", len(files))
	}
	mid := files[1]
	b, err := os.ReadFile(mid.path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff // the last record of the second segment is corrupt
	writeFile(t, dir, filepath.Base(mid.path), b)
	lost := mid.entries[len(mid.entries)-1]

	var want []spool.Entry
	for _, e := range entries {
		if e.ID != lost.ID {
			want = append(want, e)
		}
	}
	s2 := openSpool(t, cfg)
	if st := s2.Stats(); st.Records != int64(len(want)) || st.Segments != len(files) {
		t.Errorf("Stats = %+v, want %d records in %d segments", st, len(want), len(files))
	}
	assertEntries(t, replayAll(t, s2, 50), want)
}

// TestRecoverLeftovers proves what Open does with the other files it can
// find: an empty segment file or one holding only (part of) the header is
// removed; a file with a segment's name that is not a segment is renamed
// *.invalid, its content intact, never deleted; files that are not named
// like segments (including *.seg names that are not numbers, and
// directories) are left alone; real segments among them are recovered.
func TestRecoverLeftovers(t *testing.T) {
	dir := t.TempDir()
	good := []spool.Entry{{Subject: "calls", ID: "g1", Data: []byte("one")}, {Subject: "calls", ID: "g2", Data: []byte("two")}}
	removed := map[string][]byte{
		segName(1): {},
		segName(2): segHeader,
		segName(3): segHeader[:4],
		segName(4): segHeader[:1],
	}
	invalid := map[string][]byte{
		segName(5): []byte("this is not a spool segment\n"),
		segName(6): []byte("x"),
		segName(7): append([]byte("CFSPOOL2"), encodeFrame(good[0])...), // another version
		segName(8): append(slices.Clone(segHeader[:5]), "XYZ"...),       // a header prefix, then not
	}

	kept := map[string][]byte{
		"notes.txt":                    []byte("operator notes"),
		"records.log":                  []byte("calls a 1\nx\n"),
		"abc.seg":                      []byte("not numbered"),
		segName(11) + ".bak":           segmentBytes(good...),
		segName(12) + ".invalid":       []byte("set aside earlier"),
		"00000000000000000013.segment": []byte("other extension"),
	}
	for name, b := range removed {
		writeFile(t, dir, name, b)
	}
	for name, b := range invalid {
		writeFile(t, dir, name, b)
	}
	for name, b := range kept {
		writeFile(t, dir, name, b)
	}
	if err := os.Mkdir(filepath.Join(dir, "archive"), 0o750); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, segName(10), segmentBytes(good...))

	s := openSpool(t, smallConfig(dir))
	checkStats(t, "recovered", s.Stats(), spool.Stats{Records: 2, Bytes: int64(len(segmentBytes(good...))), Segments: 1})

	for name := range removed {
		if fileExists(t, filepath.Join(dir, name)) {
			t.Errorf("%s (%d bytes, no record) was not removed", name, len(removed[name]))
		}
	}
	for name, b := range invalid {
		if fileExists(t, filepath.Join(dir, name)) {
			t.Errorf("%s is not a segment but kept its segment name", name)
		}
		got, err := os.ReadFile(filepath.Join(dir, name+".invalid"))
		if err != nil {
			t.Errorf("%s was not set aside as .invalid: %v", name, err)
		} else if !bytes.Equal(got, b) {
			t.Errorf("%s.invalid: content changed", name)
		}
	}
	for name, b := range kept {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s was not left alone: %v", name, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "archive")); err != nil || !fi.IsDir() {
		t.Errorf("directory archive was not left alone: %v", err)
	}

	assertEntries(t, replayAll(t, s, 10), good)
	// Reopening finds nothing more to do.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openSpool(t, smallConfig(dir))
	checkStats(t, "reopened", s2.Stats(), spool.Stats{})
}

// TestHandWrittenSegments proves that segments written by the documented
// format (by this test, not the package) are read: Open counts them, Replay
// sends them by sequence number, and the next segment created is numbered
// after the highest.
func TestHandWrittenSegments(t *testing.T) {
	dir := t.TempDir()
	seqs := []uint64{10, 2, 7} // out of order on purpose
	byseq := map[uint64][]spool.Entry{}
	var total int64
	for i, seq := range seqs {
		es := makeEntries(3*(i+1), 20)[3*i:]
		for j := range es {
			es[j].ID = fmt.Sprintf("seg%d-%d", seq, j)
		}
		byseq[seq] = es
		b := segmentBytes(es...)
		total += int64(len(b))
		writeFile(t, dir, segName(seq), b)
	}
	s := openSpool(t, smallConfig(dir))
	checkStats(t, "opened", s.Stats(), spool.Stats{Records: 9, Bytes: total, Segments: 3})

	e := spool.Entry{Subject: "calls", ID: "new", Data: []byte("n")}
	if err := s.Append(e); err != nil {
		t.Fatal(err)
	}
	files := segFiles(t, dir)
	if len(files) != 4 || segSeq(t, filepath.Base(files[3])) <= 10 {
		t.Errorf("want the new record in a fourth segment numbered after 10; have %v", files)
	}
	var want []spool.Entry
	for _, seq := range []uint64{2, 7, 10} {
		want = append(want, byseq[seq]...)
	}
	want = append(want, e)
	assertEntries(t, replayAll(t, s, 4), want)
}

// TestSegmentFileFormat proves the bytes the spool writes are exactly the
// format doc.go documents: the 8-byte header, then per record a
// little-endian length, the CRC-32C of the body, and the body (uvarint
// length and subject, uvarint length and id, data).
func TestSegmentFileFormat(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, smallConfig(dir))
	entries := []spool.Entry{
		{Subject: "calls.a", ID: "id-1", Data: []byte("hello")},
		{Subject: string(make([]byte, 200)), ID: "", Data: []byte{0, 1, 2}}, // 2-byte uvarint
		{Subject: "s", ID: "i", Data: nil},
	}
	appendAll(t, s, entries)
	files := segFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("want one segment, got %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := segmentBytes(entries...); !bytes.Equal(b, want) {
		t.Errorf("segment bytes differ from the documented format:\n got %x\nwant %x", b, want)
	}
	segSeq(t, filepath.Base(files[0])) // named by a sequence number
}
