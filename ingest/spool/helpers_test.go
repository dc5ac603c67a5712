package spool_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/callflow/callflow/ingest/spool"
)

// The on-disk format as doc.go describes it, re-implemented here on purpose:
// the tests check the files against the documentation, not against the
// package's own encoder.
var (
	segHeader  = []byte("CFSPOOL1")
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

const (
	frameHead = 8
	// smallSeg is the smallest segment size Validate accepts.
	smallSeg = 4 << 10
	// minMax is the smallest MaxBytes Validate accepts.
	minMax = 1 << 20
)

// encodeFrame encodes e as doc.go describes a frame.
func encodeFrame(e spool.Entry) []byte {
	var body []byte
	body = binary.AppendUvarint(body, uint64(len(e.Subject)))
	body = append(body, e.Subject...)
	body = binary.AppendUvarint(body, uint64(len(e.ID)))
	body = append(body, e.ID...)
	body = append(body, e.Data...)
	out := make([]byte, frameHead, frameHead+len(body))
	binary.LittleEndian.PutUint32(out[0:], uint32(len(body)))
	binary.LittleEndian.PutUint32(out[4:], crc32.Checksum(body, castagnoli))
	return append(out, body...)
}

// frameLen is the size of e's frame on disk.
func frameLen(e spool.Entry) int64 { return int64(len(encodeFrame(e))) }

// segmentBytes is the content of a segment file holding entries.
func segmentBytes(entries ...spool.Entry) []byte {
	b := slices.Clone(segHeader)
	for _, e := range entries {
		b = append(b, encodeFrame(e)...)
	}
	return b
}

// segName is the name doc.go and the package give segment seq.
func segName(seq uint64) string { return fmt.Sprintf("%020d.seg", seq) }

// segSeq is the sequence number in a segment's file name.
func segSeq(t testing.TB, name string) uint64 {
	t.Helper()
	seq, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 10, 64)
	if err != nil || !strings.HasSuffix(name, ".seg") {
		t.Fatalf("segment name %q is not <sequence number>.seg", name)
	}
	return seq
}

// writeFile writes b to dir/name.
func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

// parsedSegment is a segment file decoded by the test's own decoder.
type parsedSegment struct {
	path    string
	entries []spool.Entry
	starts  []int64 // offset of each frame in the file
	size    int64
}

// parseSegment decodes a well-formed segment file, failing the test on any
// deviation from the documented format.
func parseSegment(t testing.TB, path string) parsedSegment {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, segHeader) {
		t.Fatalf("%s: header %q, want %q", path, b[:min(len(b), 8)], segHeader)
	}
	p := parsedSegment{path: path, size: int64(len(b))}
	off := len(segHeader)
	for off < len(b) {
		if len(b)-off < frameHead {
			t.Fatalf("%s: %d trailing bytes at %d", path, len(b)-off, off)
		}
		n := int(binary.LittleEndian.Uint32(b[off:]))
		sum := binary.LittleEndian.Uint32(b[off+4:])
		if off+frameHead+n > len(b) {
			t.Fatalf("%s: frame at %d overruns the file", path, off)
		}
		body := b[off+frameHead : off+frameHead+n]
		if crc32.Checksum(body, castagnoli) != sum {
			t.Fatalf("%s: frame at %d: CRC-32C mismatch", path, off)
		}
		subject, rest := readUvarintString(t, body)
		id, data := readUvarintString(t, rest)
		p.entries = append(p.entries, spool.Entry{Subject: subject, ID: id, Data: bytes.Clone(data)})
		p.starts = append(p.starts, int64(off))
		off += frameHead + n
	}
	return p
}

func readUvarintString(t testing.TB, b []byte) (string, []byte) {
	t.Helper()
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		t.Fatalf("bad uvarint string in frame body")
	}
	return string(b[k : k+int(n)]), b[k+int(n):]
}

// segFiles lists the *.seg regular files of dir, oldest first.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if de.Type().IsRegular() && strings.HasSuffix(de.Name(), ".seg") {
			out = append(out, filepath.Join(dir, de.Name()))
		}
	}
	slices.Sort(out)
	return out
}

// parseDir decodes every segment of dir, oldest first.
func parseDir(t testing.TB, dir string) []parsedSegment {
	t.Helper()
	var out []parsedSegment
	for _, p := range segFiles(t, dir) {
		out = append(out, parseSegment(t, p))
	}
	return out
}

// diskBytes is the total size of dir's segment files.
func diskBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	for _, p := range segFiles(t, dir) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

func fileExists(t testing.TB, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err == nil {
		return true
	}
	if !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return false
}

// openSpool opens a spool on cfg (Dir defaulting to a fresh temporary
// directory) and closes it when the test ends.
func openSpool(t testing.TB, cfg spool.Config) *spool.Spool {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	s, err := spool.Open(cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// smallConfig is a config with the smallest sizes Validate accepts, so
// that a few records span several segments.
func smallConfig(dir string) spool.Config {
	return spool.Config{Dir: dir, MaxBytes: minMax, SegmentBytes: smallSeg}
}

// makeEntries returns n distinct entries whose data is about size bytes,
// binary, with newlines and NULs in it.
func makeEntries(n, size int) []spool.Entry {
	out := make([]spool.Entry, n)
	for i := range out {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(i*31 + j*7)
		}
		if size > 2 {
			data[0], data[size/2] = '\n', 0
		}
		out[i] = spool.Entry{
			Subject: fmt.Sprintf("callflow.calls.tenant-%d", i%3),
			ID:      fmt.Sprintf("id-%06d", i),
			Data:    data,
		}
	}
	return out
}

func appendAll(t testing.TB, s *spool.Spool, entries []spool.Entry) {
	t.Helper()
	for i, e := range entries {
		if err := s.Append(e); err != nil {
			t.Fatalf("Append #%d (%s): %v", i, e.ID, err)
		}
	}
}

// collector is a Send that delivers everything and keeps copies.
type collector struct {
	mu     sync.Mutex
	got    []spool.Entry
	chunks [][]spool.Entry
}

func (c *collector) send(_ context.Context, entries []spool.Entry) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := cloneEntries(entries)
	c.got = append(c.got, cp...)
	c.chunks = append(c.chunks, cp)
	return len(entries), nil
}

func (c *collector) entries() []spool.Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func cloneEntries(es []spool.Entry) []spool.Entry {
	out := make([]spool.Entry, len(es))
	for i, e := range es {
		out[i] = spool.Entry{Subject: e.Subject, ID: e.ID, Data: bytes.Clone(e.Data)}
	}
	return out
}

// replayAll replays everything into a fresh collector.
func replayAll(t testing.TB, s *spool.Spool, chunk int) []spool.Entry {
	t.Helper()
	var c collector
	n, err := s.Replay(context.Background(), chunk, c.send)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	got := c.entries()
	if n != len(got) {
		t.Fatalf("Replay returned %d, Send received %d", n, len(got))
	}
	return got
}

func entryEqual(a, b spool.Entry) bool {
	return a.Subject == b.Subject && a.ID == b.ID && bytes.Equal(a.Data, b.Data)
}

// assertEntries fails unless got and want hold the same entries in the
// same order (nil and empty data are equal).
func assertEntries(t testing.TB, got, want []spool.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d entries, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if !entryEqual(got[i], want[i]) {
			t.Fatalf("entry %d: got %s, want %s", i, show(got[i]), show(want[i]))
		}
	}
	if len(got) != len(want) {
		t.FailNow()
	}
}

func show(e spool.Entry) string {
	d := e.Data
	suffix := ""
	if len(d) > 32 {
		d, suffix = d[:32], "…"
	}
	subj := e.Subject
	if len(subj) > 40 {
		subj = subj[:40] + "…"
	}
	return fmt.Sprintf("{%q %q %q%s (%d bytes)}", subj, e.ID, d, suffix, len(e.Data))
}

// statsWant is the part of Stats a test checks.
func checkStats(t testing.TB, what string, got spool.Stats, want spool.Stats) {
	t.Helper()
	if got != want {
		t.Errorf("%s: Stats = %+v, want %+v", what, got, want)
	}
}
