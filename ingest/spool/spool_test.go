package spool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callflow/callflow/ingest/spool"
)

// TestAppendReplayRoundTrip proves that what Append accepts, Replay gives
// back: every entry once, in append order, Subject, ID and Data byte for
// byte (binary, newlines, empty and nil data, empty strings, subjects longer
// than a segment), across several segments; that the files on disk follow
// the format doc.go describes; that Stats are exact before and after; and
// that delivered segments are removed.
func TestAppendReplayRoundTrip(t *testing.T) {
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	cases := []struct {
		name    string
		entries []spool.Entry
	}{
		{"one record", []spool.Entry{{Subject: "calls.a", ID: "m-1", Data: []byte(`{"call":1}`)}}},
		{"binary data", []spool.Entry{
			{Subject: "calls.bin", ID: "b-1", Data: allBytes},
			{Subject: "calls.bin", ID: "b-2", Data: bytes.Repeat([]byte{0, 0xff, 0x80}, 100)},
		}},
		{"newlines in data", []spool.Entry{
			{Subject: "calls.nl", ID: "n-1", Data: []byte("\n")},
			{Subject: "calls.nl", ID: "n-2", Data: []byte("line 1\nline 2\r\n\n")},
			{Subject: "calls.nl", ID: "n-3", Data: []byte("calls.nl n-4 3\nabc\n")}, // looks like a legacy header
		}},
		{"empty and nil data", []spool.Entry{
			{Subject: "calls.e", ID: "e-1", Data: []byte{}},
			{Subject: "calls.e", ID: "e-2", Data: nil},
			{Subject: "calls.e", ID: "e-3", Data: []byte("x")},
		}},
		{"empty subject and id", []spool.Entry{{Data: []byte("only data")}, {}}},
		{"unicode and spaces", []spool.Entry{{Subject: "calls.ünï", ID: "id with spaces\tand tab", Data: []byte("héllo ☎")}}},
		{"long subjects", []spool.Entry{
			{Subject: strings.Repeat("s", 200), ID: "l-1", Data: []byte("a")},
			{Subject: strings.Repeat("calls.", 500), ID: "l-2", Data: []byte("b")},   // 3000 bytes: fills most of a segment
			{Subject: strings.Repeat("x", 10_000), ID: "l-3", Data: []byte("c")},     // larger than a segment
			{Subject: "short", ID: strings.Repeat("i", 5000), Data: []byte("d")},     // long id
			{Subject: "short", ID: "l-5", Data: bytes.Repeat([]byte("big\n"), 3000)}, // data larger than a segment
		}},
		{"many records, many segments", makeEntries(300, 40)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, smallConfig(dir))
			checkStats(t, "empty", s.Stats(), spool.Stats{})
			appendAll(t, s, tc.entries)

			files := parseDir(t, dir)
			var onDisk []spool.Entry
			var frames int64
			for _, f := range files {
				onDisk = append(onDisk, f.entries...)
				if f.size > smallSeg && len(f.entries) > 1 {
					t.Errorf("%s: %d bytes in %d records, past SegmentBytes %d", f.path, f.size, len(f.entries), smallSeg)
				}
			}
			for _, e := range tc.entries {
				frames += frameLen(e)
			}
			assertEntries(t, onDisk, tc.entries)
			if want := frames + int64(len(files))*int64(len(segHeader)); diskBytes(t, dir) != want {
				t.Errorf("disk holds %d bytes, want frames %d + headers = %d", diskBytes(t, dir), frames, want)
			}
			if len(tc.entries) > 100 && len(files) < 2 {
				t.Errorf("%d records in %d segment(s); SegmentBytes %d should have split them", len(tc.entries), len(files), smallSeg)
			}
			read, err := spool.Read(dir)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			assertEntries(t, read, tc.entries)

			n := uint64(len(tc.entries))
			// Sequential appends: each waits for its own fsync.
			checkStats(t, "after appends", s.Stats(), spool.Stats{
				Records: int64(n), Bytes: diskBytes(t, dir), Segments: len(files),
				Appended: n, Commits: n,
			})

			got := replayAll(t, s, 7)
			assertEntries(t, got, tc.entries)
			checkStats(t, "after replay", s.Stats(), spool.Stats{Appended: n, Replayed: n, Commits: n})
			if left := segFiles(t, dir); len(left) != 0 {
				t.Errorf("segments left after a full replay: %v", left)
			}

			// Nothing left: Send is not called.
			k, err := s.Replay(context.Background(), 7, func(context.Context, []spool.Entry) (int, error) {
				t.Error("Send called on an empty spool")
				return 0, nil
			})
			if k != 0 || err != nil {
				t.Errorf("second Replay = %d, %v; want 0, nil", k, err)
			}
		})
	}
}

// TestReplayRemovesSegmentsAsDelivered proves that Replay goes oldest
// segment first, sends chunks that never mix two segments, and removes each
// segment as soon as all its records are delivered, before sending the next
// segment's records, with Stats.Segments following.
func TestReplayRemovesSegmentsAsDelivered(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, smallConfig(dir))
	entries := makeEntries(150, 100)
	appendAll(t, s, entries)

	files := parseDir(t, dir)
	if len(files) < 3 {
		t.Fatalf("want at least 3 segments, got %d", len(files))
	}
	segOf := map[string]int{}
	for i, f := range files {
		for _, e := range f.entries {
			segOf[e.ID] = i
		}
	}

	var got []spool.Entry
	n, err := s.Replay(context.Background(), 9, func(_ context.Context, part []spool.Entry) (int, error) {
		k := segOf[part[0].ID]
		for _, e := range part {
			if segOf[e.ID] != k {
				t.Errorf("one chunk mixes segments %d and %d", k, segOf[e.ID])
			}
		}
		for i, f := range files {
			if exists := fileExists(t, f.path); exists != (i >= k) {
				t.Errorf("sending segment %d: segment %d exists=%v", k, i, exists)
			}
		}
		if st := s.Stats(); st.Segments != len(files)-k {
			t.Errorf("sending segment %d: Stats.Segments = %d, want %d", k, st.Segments, len(files)-k)
		}
		got = append(got, cloneEntries(part)...)
		return len(part), nil
	})
	if err != nil || n != len(entries) {
		t.Fatalf("Replay = %d, %v; want %d, nil", n, err, len(entries))
	}
	assertEntries(t, got, entries)
	if left := segFiles(t, dir); len(left) != 0 {
		t.Errorf("segments left: %v", left)
	}
}

// TestReplayChunkSize proves that Send never gets more than chunk entries
// and that a chunk below 1 means one entry per Send.
func TestReplayChunkSize(t *testing.T) {
	for _, tc := range []struct{ chunk, max int }{{-5, 1}, {0, 1}, {1, 1}, {4, 4}, {1000, 1000}} {
		t.Run(fmt.Sprint(tc.chunk), func(t *testing.T) {
			s := openSpool(t, smallConfig(t.TempDir()))
			entries := makeEntries(30, 10)
			appendAll(t, s, entries)
			var c collector
			if n, err := s.Replay(context.Background(), tc.chunk, c.send); n != len(entries) || err != nil {
				t.Fatalf("Replay = %d, %v", n, err)
			}
			for _, ch := range c.chunks {
				if len(ch) == 0 || len(ch) > tc.max {
					t.Errorf("Send got %d entries, want 1..%d", len(ch), tc.max)
				}
			}
			assertEntries(t, c.entries(), entries)
		})
	}
}

// TestGroupCommit proves that concurrent appends share fsyncs: 64
// goroutines x 100 appends all succeed, with fewer commits than records,
// and every record is replayed exactly once with each goroutine's records in
// the order it appended them.
func TestGroupCommit(t *testing.T) {
	const workers, per = 64, 100
	dir := t.TempDir()
	s := openSpool(t, spool.Config{Dir: dir, MaxBytes: 64 << 20, SegmentBytes: 256 << 10})

	var wg sync.WaitGroup
	errs := make(chan error, workers*per)
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				err := s.Append(spool.Entry{
					Subject: fmt.Sprintf("calls.w%d", w),
					ID:      fmt.Sprintf("w%02d-%03d", w, i),
					Data:    []byte(fmt.Sprintf("worker %d record %d\n", w, i)),
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Append: %v", err)
	}

	st := s.Stats()
	if st.Appended != workers*per || st.Records != workers*per {
		t.Fatalf("Appended %d, Records %d; want %d", st.Appended, st.Records, workers*per)
	}
	if st.Commits == 0 || st.Commits >= st.Appended {
		t.Errorf("Commits = %d for %d appends: appends were not grouped", st.Commits, st.Appended)
	}
	t.Logf("%d appends in %d commits (%.1f per fsync)", st.Appended, st.Commits, float64(st.Appended)/float64(st.Commits))
	if st.Bytes != diskBytes(t, dir) {
		t.Errorf("Stats.Bytes = %d, disk holds %d", st.Bytes, diskBytes(t, dir))
	}

	got := replayAll(t, s, 500)
	if len(got) != workers*per {
		t.Fatalf("replayed %d, want %d", len(got), workers*per)
	}
	next := make([]int, workers)
	for _, e := range got {
		var w, i int
		if _, err := fmt.Sscanf(e.ID, "w%02d-%03d", &w, &i); err != nil {
			t.Fatalf("bad id %q", e.ID)
		}
		if i != next[w] {
			t.Fatalf("worker %d: got record %d, want %d (lost, repeated or reordered)", w, i, next[w])
		}
		if want := fmt.Sprintf("worker %d record %d\n", w, i); string(e.Data) != want || e.Subject != fmt.Sprintf("calls.w%d", w) {
			t.Fatalf("%s: got %s", e.ID, show(e))
		}
		next[w]++
	}
}

// TestFullRefusesThenRecovers proves the bound: once the next record would
// take the spool past MaxBytes, Append fails with ErrFull (and only then),
// Refused counts each refusal, a refused record leaves no trace, a record
// larger than the whole bound is refused, and once Replay frees the space
// appends succeed again.
func TestFullRefusesThenRecovers(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, spool.Config{Dir: dir, MaxBytes: minMax, SegmentBytes: 64 << 10})
	entries := makeEntries(2000, 1000)
	fl := frameLen(entries[0])

	accepted := 0
	var refused uint64
	for _, e := range entries {
		err := s.Append(e)
		if err == nil {
			if refused > 0 {
				t.Fatalf("%s accepted after a refusal with no replay in between", e.ID)
			}
			accepted++
			continue
		}
		if !errors.Is(err, spool.ErrFull) {
			t.Fatalf("Append %s: %v, want ErrFull", e.ID, err)
		}
		refused++
		if refused == 1 {
			st := s.Stats()
			if st.Bytes+fl <= minMax {
				t.Errorf("refused with %d bytes on disk: a %d-byte frame still fits in %d", st.Bytes, fl, minMax)
			}
		}
		if refused == 5 {
			break
		}
	}
	if refused == 0 {
		t.Fatal("never refused")
	}
	st := s.Stats()
	if st.Refused != refused || st.Appended != uint64(accepted) || st.Records != int64(accepted) {
		t.Errorf("Stats = %+v; want Refused %d, Appended = Records = %d", st, refused, accepted)
	}
	if st.Bytes != diskBytes(t, dir) {
		t.Errorf("Stats.Bytes = %d, disk holds %d (a refused record left bytes counted)", st.Bytes, diskBytes(t, dir))
	}

	// A record bigger than the whole bound is refused even when empty.
	huge := spool.Entry{Subject: "s", ID: "huge", Data: make([]byte, minMax)}
	if err := s.Append(huge); !errors.Is(err, spool.ErrFull) {
		t.Errorf("Append of a record larger than MaxBytes: %v, want ErrFull", err)
	}
	refused++

	got := replayAll(t, s, 100)
	assertEntries(t, got, entries[:accepted])
	if st := s.Stats(); st.Bytes != 0 || st.Records != 0 {
		t.Errorf("after replay: %+v", st)
	}

	// Space is back.
	extra := spool.Entry{Subject: "calls.after", ID: "after-full", Data: []byte("ok")}
	if err := s.Append(extra); err != nil {
		t.Fatalf("Append after the replay freed space: %v", err)
	}
	if err := s.Append(huge); !errors.Is(err, spool.ErrFull) {
		t.Errorf("Append of a record larger than MaxBytes on an emptied spool: %v, want ErrFull", err)
	}
	refused++
	if st := s.Stats(); st.Refused != refused || st.Records != 1 {
		t.Errorf("Stats = %+v, want Refused %d, Records 1", st, refused)
	}
	assertEntries(t, replayAll(t, s, 10), []spool.Entry{extra})
}

// TestFullConcurrent proves the bound's accounting under concurrency: with
// many goroutines racing past MaxBytes, every Append either succeeds or
// fails with ErrFull, Refused and Appended add up, and Stats.Bytes equals
// the bytes on disk.
func TestFullConcurrent(t *testing.T) {
	const workers, per = 16, 200
	dir := t.TempDir()
	s := openSpool(t, spool.Config{Dir: dir, MaxBytes: minMax, SegmentBytes: 64 << 10})
	var ok, full atomic.Uint64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				err := s.Append(spool.Entry{Subject: "calls", ID: fmt.Sprintf("%d-%d", w, i), Data: make([]byte, 500)})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, spool.ErrFull):
					full.Add(1)
				default:
					t.Errorf("Append: %v", err)
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if full.Load() == 0 {
		t.Fatal("the bound was never reached")
	}
	if st.Appended != ok.Load() || st.Refused != full.Load() || st.Records != int64(ok.Load()) {
		t.Errorf("Stats = %+v; %d accepted, %d refused", st, ok.Load(), full.Load())
	}
	if st.Bytes != diskBytes(t, dir) {
		t.Errorf("Stats.Bytes = %d, disk holds %d", st.Bytes, diskBytes(t, dir))
	}
	if got := replayAll(t, s, 1000); uint64(len(got)) != ok.Load() {
		t.Errorf("replayed %d, accepted %d", len(got), ok.Load())
	}
}

// TestMaxBytesBoundsDisk proves that MaxBytes bounds the bytes on disk,
// segment headers included: a record whose frame alone is MaxBytes cannot
// be accepted, since its segment's header would take the file past the
// bound.
func TestMaxBytesBoundsDisk(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, spool.Config{Dir: dir, MaxBytes: minMax, SegmentBytes: smallSeg})
	e := spool.Entry{Subject: "calls", ID: "exact"}
	e.Data = make([]byte, minMax-frameLen(e))
	if frameLen(e) != minMax {
		t.Fatalf("test setup: frame is %d bytes", frameLen(e))
	}
	err := s.Append(e)
	if err != nil && !errors.Is(err, spool.ErrFull) {
		t.Fatalf("Append: %v", err)
	}
	if st := s.Stats(); st.Bytes > minMax {
		t.Errorf("Append(frame of exactly MaxBytes) = %v; Stats.Bytes = %d > MaxBytes %d", err, st.Bytes, minMax)
	}
	if d := diskBytes(t, dir); d > minMax {
		t.Errorf("Append(frame of exactly MaxBytes) = %v; %d bytes on disk > MaxBytes %d", err, d, minMax)
	}
}

// TestOversizeRecord proves that Append refuses, with ErrTooLarge, a record
// whose frame body is over 64 MiB, the most a reader accepts, so that it
// never acknowledges a record Replay could not read back; that the limit is
// exactly there (a body of 64 MiB passes that check, and meets the spool's
// bound instead); and that a refused record leaves nothing behind.
func TestOversizeRecord(t *testing.T) {
	const limit = 64 << 20
	dir := t.TempDir()
	s := openSpool(t, smallConfig(dir))
	e := spool.Entry{Subject: "calls.big", ID: "big-1"}
	overhead := frameLen(e) - frameHead // the body without data

	e.Data = make([]byte, limit-overhead)
	if err := s.Append(e); !errors.Is(err, spool.ErrFull) {
		t.Errorf("Append(body of exactly %d bytes) into a 1 MiB spool = %v, want ErrFull", limit, err)
	}
	e.Data = make([]byte, limit-overhead+1)
	if err := s.Append(e); !errors.Is(err, spool.ErrTooLarge) {
		t.Errorf("Append(body of %d bytes) = %v, want ErrTooLarge", limit+1, err)
	}
	checkStats(t, "after the refusals", s.Stats(), spool.Stats{Refused: 1})
	if files := segFiles(t, dir); len(files) != 0 {
		t.Errorf("refused records left segments: %v", files)
	}

	small := spool.Entry{Subject: "calls", ID: "after-big", Data: []byte("small")}
	if err := s.Append(small); err != nil {
		t.Fatal(err)
	}
	assertEntries(t, replayAll(t, s, 10), []spool.Entry{small})
}

// TestReplayStopsAndResumes proves that Replay stops at the first Send that
// delivers part of a chunk or returns an error, returns how many were
// delivered and why it stopped (ErrShortSend when Send gave no reason), and
// that the next Replay resumes exactly after the last delivered record:
// over the whole run every record is delivered once, in order. Counts out
// of range are clamped: negative as none, past the chunk as all.
func TestReplayStopsAndResumes(t *testing.T) {
	boom := errors.New("boom")
	type outcome struct {
		n   func(part int) int
		err error
	}
	cases := []struct {
		name    string
		fail    outcome // what Send does on a failing call
		wantErr error   // what Replay then returns
		stops   bool    // whether that call stops the Replay
	}{
		{"short, no reason", outcome{func(p int) int { return p / 2 }, nil}, spool.ErrShortSend, true},
		{"nothing, no reason", outcome{func(int) int { return 0 }, nil}, spool.ErrShortSend, true},
		{"part and error", outcome{func(p int) int { return p - 1 }, boom}, boom, true},
		{"nothing and error", outcome{func(int) int { return 0 }, boom}, boom, true},
		{"all and error", outcome{func(p int) int { return p }, boom}, boom, true},
		{"negative and error", outcome{func(int) int { return -3 }, boom}, boom, true},
		{"negative, no reason", outcome{func(int) int { return -1 }, nil}, spool.ErrShortSend, true},
		{"more than given", outcome{func(p int) int { return p + 10 }, nil}, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, smallConfig(dir))
			entries := makeEntries(100, 60)
			appendAll(t, s, entries)
			if len(segFiles(t, dir)) < 2 {
				t.Fatal("want several segments")
			}

			var got []spool.Entry
			call := 0
			failing := func(call int) bool { return call%3 == 1 } // calls 1, 4, 7, ...
			replays := 0
			for {
				replays++
				if replays > 200 {
					t.Fatal("Replay makes no progress")
				}
				delivered := 0
				n, err := s.Replay(context.Background(), 8, func(_ context.Context, part []spool.Entry) (int, error) {
					call++
					if !failing(call) {
						got = append(got, cloneEntries(part)...)
						delivered += len(part)
						return len(part), nil
					}
					k := tc.fail.n(len(part))
					c := max(0, min(k, len(part)))
					got = append(got, cloneEntries(part[:c])...)
					delivered += c
					return k, tc.fail.err
				})
				if n != delivered {
					t.Fatalf("Replay returned %d, Send delivered %d", n, delivered)
				}
				if st := s.Stats(); st.Records != int64(len(entries)-len(got)) || st.Replayed != uint64(len(got)) {
					t.Fatalf("after %d delivered: Stats = %+v", len(got), st)
				}
				if err == nil {
					break
				}
				if !tc.stops || !errors.Is(err, tc.wantErr) {
					t.Fatalf("Replay error %v, want %v", err, tc.wantErr)
				}
			}
			if tc.stops && replays < 3 {
				t.Errorf("only %d Replays: the failures did not stop it", replays)
			}
			assertEntries(t, got, entries)
			if left := segFiles(t, dir); len(left) != 0 {
				t.Errorf("segments left: %v", left)
			}
			checkStats(t, "end", s.Stats(), spool.Stats{Appended: 100, Replayed: 100, Commits: 100})
		})
	}
}

// TestReplayContextCancelled proves that Replay does not call Send with a
// context already done, stops between chunks once the context ends, and
// that the next Replay resumes after the delivered records.
func TestReplayContextCancelled(t *testing.T) {
	entries := makeEntries(40, 30)

	t.Run("before the call", func(t *testing.T) {
		s := openSpool(t, smallConfig(t.TempDir()))
		appendAll(t, s, entries)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		n, err := s.Replay(ctx, 5, func(context.Context, []spool.Entry) (int, error) {
			t.Error("Send called with a cancelled context")
			return 0, nil
		})
		if n != 0 || !errors.Is(err, context.Canceled) {
			t.Errorf("Replay = %d, %v; want 0, context.Canceled", n, err)
		}
		if st := s.Stats(); st.Records != int64(len(entries)) || st.Replayed != 0 {
			t.Errorf("Stats = %+v", st)
		}
		assertEntries(t, replayAll(t, s, 5), entries)
	})

	t.Run("during Send", func(t *testing.T) {
		s := openSpool(t, smallConfig(t.TempDir()))
		appendAll(t, s, entries)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var got []spool.Entry
		calls := 0
		n, err := s.Replay(ctx, 5, func(_ context.Context, part []spool.Entry) (int, error) {
			calls++
			got = append(got, cloneEntries(part)...)
			if calls == 2 {
				cancel() // delivered, then the caller gives up
			}
			return len(part), nil
		})
		if n != 10 || calls != 2 || !errors.Is(err, context.Canceled) {
			t.Errorf("Replay = %d, %v after %d Sends; want 10, context.Canceled after 2", n, err, calls)
		}
		got = append(got, replayAll(t, s, 5)...)
		assertEntries(t, got, entries)
	})

	t.Run("deadline", func(t *testing.T) {
		s := openSpool(t, smallConfig(t.TempDir()))
		appendAll(t, s, entries)
		ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
		defer cancel()
		n, err := s.Replay(ctx, 5, (&collector{}).send)
		if n != 0 || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Replay = %d, %v; want 0, DeadlineExceeded", n, err)
		}
	})
}

// TestReplayOnlyRecordsBeforeCall proves that a Replay sends the records
// spooled before it was called, not those appended while it runs (which
// wait for the next Replay, after the older ones).
func TestReplayOnlyRecordsBeforeCall(t *testing.T) {
	s := openSpool(t, smallConfig(t.TempDir()))
	before := makeEntries(50, 50)
	during := makeEntries(80, 20)[50:]
	appendAll(t, s, before)
	var got []spool.Entry
	appended := false
	n, err := s.Replay(context.Background(), 10, func(_ context.Context, part []spool.Entry) (int, error) {
		if !appended {
			appended = true
			appendAll(t, s, during)
		}
		got = append(got, cloneEntries(part)...)
		return len(part), nil
	})
	if err != nil || n != len(before) {
		t.Fatalf("Replay = %d, %v; want %d, nil", n, err, len(before))
	}
	assertEntries(t, got, before)
	if st := s.Stats(); st.Records != int64(len(during)) {
		t.Errorf("Records = %d, want %d", st.Records, len(during))
	}
	assertEntries(t, replayAll(t, s, 10), during)
}

// TestReplayWhileAppending proves that Replays running while goroutines
// append lose nothing and repeat nothing: every record is delivered exactly
// once, each goroutine's records in its order.
func TestReplayWhileAppending(t *testing.T) {
	const workers, per = 8, 150
	dir := t.TempDir()
	s := openSpool(t, smallConfig(dir))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				if err := s.Append(spool.Entry{Subject: "calls", ID: fmt.Sprintf("%d/%d", w, i), Data: []byte{byte(w), byte(i)}}); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	appending := make(chan struct{})
	go func() { wg.Wait(); close(appending) }()

	var c collector
	for done := false; !done; {
		select {
		case <-appending:
			done = true
		default:
		}
		if _, err := s.Replay(context.Background(), 16, c.send); err != nil {
			t.Fatalf("Replay: %v", err)
		}
	}
	got := c.entries()
	if len(got) != workers*per {
		t.Fatalf("delivered %d, want %d", len(got), workers*per)
	}
	next := make([]int, workers)
	for _, e := range got {
		var w, i int
		fmt.Sscanf(e.ID, "%d/%d", &w, &i)
		if i != next[w] || !bytes.Equal(e.Data, []byte{byte(w), byte(i)}) {
			t.Fatalf("worker %d: got record %d (%v), want %d", w, i, e.Data, next[w])
		}
		next[w]++
	}
	if st := s.Stats(); st.Records != 0 || st.Bytes != diskBytes(t, dir) {
		t.Errorf("Stats = %+v, disk %d", st, diskBytes(t, dir))
	}
}

// TestAppendAfterClose proves that Append on a closed spool fails with
// ErrClosed and changes nothing, that Close can be called again (also
// concurrently) and that what was spooled stays on disk.
func TestAppendAfterClose(t *testing.T) {
	dir := t.TempDir()
	s, err := spool.Open(smallConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	entries := makeEntries(5, 10)
	appendAll(t, s, entries)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	before := s.Stats()
	if err := s.Append(spool.Entry{Subject: "x", ID: "late", Data: []byte("late")}); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	if after := s.Stats(); after != before {
		t.Errorf("a refused Append changed Stats: %+v -> %+v", before, after)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := s.Close(); err != nil {
				t.Errorf("concurrent Close: %v", err)
			}
		})
	}
	wg.Wait()
	read, err := spool.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	assertEntries(t, read, entries)
}

// TestCloseRacingAppends proves that Appends racing with Close never hang
// and either succeed, with the record on disk after a reopen, or fail with
// ErrClosed, with the record nowhere; once a goroutine saw ErrClosed it
// keeps seeing it.
func TestCloseRacingAppends(t *testing.T) {
	for round := range 5 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			const workers, per = 16, 300
			dir := t.TempDir()
			cfg := spool.Config{Dir: dir, MaxBytes: 64 << 20, SegmentBytes: 16 << 10}
			s, err := spool.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			ok := map[string]bool{}
			started := make(chan struct{})
			var startOnce sync.Once
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					closed := false
					for i := range per {
						id := fmt.Sprintf("%d-%d", w, i)
						err := s.Append(spool.Entry{Subject: "calls", ID: id, Data: []byte(id)})
						switch {
						case err == nil:
							if closed {
								t.Errorf("%s accepted after ErrClosed", id)
							}
							mu.Lock()
							ok[id] = true
							mu.Unlock()
							if i == 10*(round+1) {
								startOnce.Do(func() { close(started) })
							}
						case errors.Is(err, spool.ErrClosed):
							closed = true
						default:
							t.Errorf("Append %s: %v", id, err)
						}
					}
				})
			}
			finished := make(chan struct{})
			go func() { wg.Wait(); close(finished) }()
			closeErr := make(chan error, 1)
			go func() {
				select {
				case <-started:
				case <-finished:
				}
				closeErr <- s.Close()
			}()
			select {
			case <-finished:
			case <-time.After(2 * time.Minute):
				t.Fatal("Appends racing with Close hang")
			}
			select {
			case err := <-closeErr:
				if err != nil {
					t.Fatalf("Close: %v", err)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("Close hangs")
			}

			s2, err := spool.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			if st := s2.Stats(); st.Records != int64(len(ok)) {
				t.Errorf("reopened: Records = %d, %d appends succeeded", st.Records, len(ok))
			}
			seen := map[string]bool{}
			for _, e := range replayAll(t, s2, 1000) {
				if !ok[e.ID] {
					t.Errorf("%s on disk, but its Append did not succeed", e.ID)
				}
				if seen[e.ID] {
					t.Errorf("%s twice", e.ID)
				}
				seen[e.ID] = true
			}
			for id := range ok {
				if !seen[id] {
					t.Errorf("%s: Append succeeded, record lost", id)
				}
			}
		})
	}
}

// TestAppendWriteError proves that an Append whose write fails returns the
// error (not ErrFull or ErrClosed), counts nothing and leaks no bytes from
// the bound, and that the spool works again once the cause is gone.
func TestAppendWriteError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s := openSpool(t, smallConfig(dir))
	if err := os.RemoveAll(dir); err != nil { // the segment cannot be created
		t.Fatal(err)
	}
	err := s.Append(spool.Entry{Subject: "calls", ID: "fails", Data: []byte("x")})
	if err == nil || errors.Is(err, spool.ErrFull) || errors.Is(err, spool.ErrClosed) {
		t.Fatalf("Append into a removed directory: %v, want the write error", err)
	}
	checkStats(t, "after a failed append", s.Stats(), spool.Stats{})

	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	e := spool.Entry{Subject: "calls", ID: "works", Data: []byte("y")}
	if err := s.Append(e); err != nil {
		t.Fatalf("Append once the directory is back: %v", err)
	}
	if st := s.Stats(); st.Records != 1 || st.Appended != 1 || st.Bytes != diskBytes(t, dir) {
		t.Errorf("Stats = %+v, disk %d", st, diskBytes(t, dir))
	}
	assertEntries(t, replayAll(t, s, 1), []spool.Entry{e})
}

// TestConfigValidation proves that every invalid configuration is refused
// by Validate and Open with an error wrapping ErrInvalidConfig, before
// anything is created on disk, and that the limits themselves are valid.
func TestConfigValidation(t *testing.T) {
	base := t.TempDir()
	cases := []struct {
		name  string
		noDir bool
		cfg   spool.Config
		valid bool
	}{
		{"no dir", true, spool.Config{}, false},
		{"no dir, sizes set", true, spool.Config{MaxBytes: minMax, SegmentBytes: smallSeg}, false},
		{"max bytes below 1 MiB", false, spool.Config{MaxBytes: minMax - 1, SegmentBytes: smallSeg}, false},
		{"negative max bytes", false, spool.Config{MaxBytes: -1, SegmentBytes: smallSeg}, false},
		{"segment below 4 KiB", false, spool.Config{SegmentBytes: smallSeg - 1}, false},
		{"negative segment", false, spool.Config{SegmentBytes: -1}, false},
		{"segment above max bytes", false, spool.Config{MaxBytes: 2 << 20, SegmentBytes: 2<<20 + 1}, false},
		{"defaults", false, spool.Config{}, true},
		{"smallest", false, spool.Config{MaxBytes: minMax, SegmentBytes: smallSeg}, true},
		{"segment equals max bytes", false, spool.Config{MaxBytes: 2 << 20, SegmentBytes: 2 << 20}, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			dir := filepath.Join(base, fmt.Sprint(i), "spool")
			if !tc.noDir {
				cfg.Dir = dir
			}
			s, err := spool.Open(cfg)
			if tc.valid {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				s.Close()
				if !fileExists(t, dir) {
					t.Error("Open did not create the directory")
				}
				return
			}
			if !errors.Is(err, spool.ErrInvalidConfig) || s != nil {
				t.Errorf("Open = %v, %v; want nil, ErrInvalidConfig", s, err)
			}
			if fileExists(t, dir) {
				t.Error("Open with an invalid config created the directory")
			}
			// Validate alone, defaults filled in by hand.
			if cfg.MaxBytes == 0 {
				cfg.MaxBytes = spool.DefaultMaxBytes
			}
			if cfg.SegmentBytes == 0 {
				cfg.SegmentBytes = spool.DefaultSegmentBytes
			}
			if err := cfg.Validate(); !errors.Is(err, spool.ErrInvalidConfig) {
				t.Errorf("Validate = %v, want ErrInvalidConfig", err)
			}
		})
	}
	if err := (&spool.Config{Dir: base}).Validate(); !errors.Is(err, spool.ErrInvalidConfig) {
		t.Errorf("Validate before defaults (zero sizes) = %v, want ErrInvalidConfig", err)
	}
}

// TestOpenSmallMaxBytesDefaultSegment proves that a spool can be opened
// with only MaxBytes set, to any value Validate accepts (1 MiB and up):
// ingest passes only MaxBytes. The default segment size is then 8 MiB or an
// eighth of MaxBytes, whichever is less, so a small spool still spreads its
// records over several segments.
//
// (When this test was written the default was a flat 8 MiB, which Validate
// refused for MaxBytes under 8 MiB; spool.go was fixed meanwhile.)
func TestOpenSmallMaxBytesDefaultSegment(t *testing.T) {
	for _, maxBytes := range []int64{minMax, 4 << 20, spool.DefaultSegmentBytes - 1, spool.DefaultSegmentBytes} {
		t.Run(fmt.Sprint(maxBytes), func(t *testing.T) {
			dir := t.TempDir()
			s, err := spool.Open(spool.Config{Dir: dir, MaxBytes: maxBytes})
			if err != nil {
				t.Fatalf("Open(MaxBytes %d, SegmentBytes unset): %v", maxBytes, err)
			}
			defer s.Close()
			segBytes := min(int64(spool.DefaultSegmentBytes), maxBytes/8)
			// Records for about three segments.
			entries := makeEntries(int(3*segBytes/(32<<10)), 32<<10)
			appendAll(t, s, entries)
			files := parseDir(t, dir)
			if len(files) < 3 {
				t.Errorf("%d records of 32 KiB in %d segment(s); want at least 3 with %d-byte segments",
					len(entries), len(files), segBytes)
			}
			for _, f := range files {
				if f.size > segBytes && len(f.entries) > 1 {
					t.Errorf("%s: %d bytes, past the default segment size %d", f.path, f.size, segBytes)
				}
			}
			assertEntries(t, replayAll(t, s, 100), entries)
		})
	}
}

// TestAccessors proves Dir, MaxBytes (with its default) and Len.
func TestAccessors(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, spool.Config{Dir: dir})
	if s.Dir() != dir || s.MaxBytes() != spool.DefaultMaxBytes || s.Len() != 0 {
		t.Errorf("Dir %q, MaxBytes %d, Len %d", s.Dir(), s.MaxBytes(), s.Len())
	}
	appendAll(t, s, makeEntries(3, 3))
	if s.Len() != 3 {
		t.Errorf("Len = %d, want 3", s.Len())
	}
}

// BenchmarkAppendParallel measures concurrent appends (each durable, group
// committed) from 32 goroutines per CPU, as an ingestor's handlers would
// during an outage, and reports appends/s and records per fsync.
func BenchmarkAppendParallel(b *testing.B) {
	s := openSpool(b, spool.Config{Dir: b.TempDir(), MaxBytes: 1 << 40})
	data := bytes.Repeat([]byte("x"), 200)
	var n atomic.Uint64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Append(spool.Entry{Subject: "calls.bench", ID: fmt.Sprint(n.Add(1)), Data: data}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	if st.Commits > 0 {
		b.ReportMetric(float64(st.Appended)/float64(st.Commits), "appends/fsync")
	}
}
