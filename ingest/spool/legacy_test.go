package spool_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/callflow/callflow/ingest/spool"
)

// legacyFile encodes entries in the unacknowledged-records format callflow
// used before the spool: "subject msg-id length\n", the data, "\n".
func legacyFile(entries ...spool.Entry) []byte {
	var b bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&b, "%s %s %d\n", e.Subject, e.ID, len(e.Data))
		b.Write(e.Data)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// legacyEntries are records the old format must carry: data with newlines
// (including a line that looks like a header), empty data, binary data.
var legacyEntries = []spool.Entry{
	{Subject: "callflow.calls.acme", ID: "msg-1", Data: []byte(`{"call":"a"}`)},
	{Subject: "callflow.calls.acme", ID: "msg-2", Data: []byte("line one\nline two\n")},
	{Subject: "callflow.calls.beta", ID: "msg-3", Data: []byte{}},
	{Subject: "callflow.calls.beta", ID: "msg-4", Data: []byte("\n")},
	{Subject: "callflow.calls.beta", ID: "msg-5", Data: []byte("callflow.calls.x msg-9 3\nabc\n")},
	{Subject: "callflow.calls.gamma", ID: "msg-6", Data: []byte{0, 0xff, '\n', '\r', 0x80}},
}

// TestImportUnacked proves that ImportUnacked moves every record of a
// well-formed legacy file into the spool (Subject, ID and Data intact, data
// with newlines included), in order, counts them, and removes the file; an
// empty file imports nothing and is removed.
func TestImportUnacked(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []spool.Entry
	}{
		{"records", legacyEntries},
		{"one record", legacyEntries[:1]},
		{"empty file", nil},
		{"many records", makeEntries(500, 64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "records.log")
			writeFile(t, filepath.Dir(path), filepath.Base(path), legacyFile(tc.entries...))
			s := openSpool(t, smallConfig(t.TempDir()))
			n, err := s.ImportUnacked(path)
			if err != nil || n != len(tc.entries) {
				t.Fatalf("ImportUnacked = %d, %v; want %d, nil", n, err, len(tc.entries))
			}
			if fileExists(t, path) {
				t.Error("the imported file was not removed")
			}
			if fileExists(t, path+".partial") {
				t.Error("a whole file was renamed .partial")
			}
			if st := s.Stats(); st.Records != int64(n) || st.Appended != uint64(n) {
				t.Errorf("Stats = %+v after importing %d", st, n)
			}
			assertEntries(t, replayAll(t, s, 50), tc.entries)
		})
	}
}

// TestImportUnackedMissing proves that a missing legacy file imports
// nothing and is no error.
func TestImportUnackedMissing(t *testing.T) {
	s := openSpool(t, smallConfig(t.TempDir()))
	path := filepath.Join(t.TempDir(), "no", "such", "records.log")
	if n, err := s.ImportUnacked(path); n != 0 || err != nil {
		t.Errorf("ImportUnacked(missing) = %d, %v; want 0, nil", n, err)
	}
	if fileExists(t, path+".partial") {
		t.Error("created a .partial file")
	}
}

// TestImportUnackedCutShort proves that a legacy file that ends inside a
// record, or holds a malformed record, has every whole record before that
// point imported, returns an error, and is kept (renamed .partial, content
// unchanged) rather than removed.
func TestImportUnackedCutShort(t *testing.T) {
	whole := legacyFile(legacyEntries[:3]...)
	next := legacyFile(legacyEntries[3])
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name string
		file []byte
		want int
	}{
		{"mid data", cat(whole, []byte("callflow.calls.x msg-9 10\nabc")), 3},
		{"data without its final newline", cat(whole, []byte("callflow.calls.x msg-9 3\nabc")), 3},
		{"data followed by the wrong byte", cat(whole, []byte("callflow.calls.x msg-9 3\nabcd\n")), 3},
		{"mid header", cat(whole, []byte("callflow.calls.x msg")), 3},
		{"header without newline", cat(whole, []byte("callflow.calls.x msg-9 3")), 3},
		{"header only", cat(whole, []byte("callflow.calls.x msg-9 3\n")), 3},
		{"header with two fields", cat(whole, []byte("callflow.calls.x 3\nabc\n")), 3},
		{"negative length", cat(whole, []byte("callflow.calls.x msg-9 -1\n\n")), 3},
		{"length not a number", cat(whole, []byte("callflow.calls.x msg-9 three\nabc\n")), 3},
		{"blank line", cat(whole, []byte("\n"), next), 3},
		{"first record cut", next[:len(next)-1], 0},
		{"cut one byte short", cat(whole, next[:len(next)-1]), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "records.log")
			writeFile(t, filepath.Dir(path), filepath.Base(path), tc.file)
			s := openSpool(t, smallConfig(t.TempDir()))
			n, err := s.ImportUnacked(path)
			if err == nil {
				t.Error("ImportUnacked of a damaged file returned no error")
			}
			if n != tc.want {
				t.Errorf("imported %d, want the %d whole records", n, tc.want)
			}
			if fileExists(t, path) {
				t.Error("the damaged file is still under its name (would be imported again)")
			}
			if b, err := os.ReadFile(path + ".partial"); err != nil || !bytes.Equal(b, tc.file) {
				t.Errorf("the damaged file was not kept as .partial, unchanged: %v", err)
			}
			assertEntries(t, replayAll(t, s, 10), legacyEntries[:tc.want])
		})
	}
}

// TestImportUnackedSpoolFull proves that when the spool cannot take every
// record, ImportUnacked reports how many it imported, returns ErrFull, and
// keeps the legacy file where it is: no record is dropped.
func TestImportUnackedSpoolFull(t *testing.T) {
	entries := makeEntries(30, 60<<10) // 30 x 60 KiB > 1 MiB
	path := filepath.Join(t.TempDir(), "records.log")
	file := legacyFile(entries...)
	writeFile(t, filepath.Dir(path), filepath.Base(path), file)
	s := openSpool(t, spool.Config{Dir: t.TempDir(), MaxBytes: minMax, SegmentBytes: 256 << 10})
	n, err := s.ImportUnacked(path)
	if !errors.Is(err, spool.ErrFull) {
		t.Fatalf("ImportUnacked = %d, %v; want ErrFull", n, err)
	}
	if n == 0 || n >= len(entries) {
		t.Errorf("imported %d of %d", n, len(entries))
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, file) {
		t.Errorf("the legacy file was not kept intact: %v", err)
	}
	assertEntries(t, replayAll(t, s, 10), entries[:n])
}

// TestImportUnackedClosed proves that importing into a closed spool fails
// with ErrClosed and leaves the legacy file alone.
func TestImportUnackedClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.log")
	file := legacyFile(legacyEntries...)
	writeFile(t, filepath.Dir(path), filepath.Base(path), file)
	s, err := spool.Open(smallConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if n, err := s.ImportUnacked(path); n != 0 || !errors.Is(err, spool.ErrClosed) {
		t.Errorf("ImportUnacked on a closed spool = %d, %v; want 0, ErrClosed", n, err)
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, file) {
		t.Errorf("the legacy file was not left alone: %v", err)
	}
}
