package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
)

// Errors returned by the spool.
var (
	// ErrFull means an append would take the spool past Config.MaxBytes.
	ErrFull = errors.New("spool full")
	// ErrClosed means the spool was closed.
	ErrClosed = errors.New("spool closed")
	// ErrTooLarge means a record is larger than a frame may be (64 MiB).
	ErrTooLarge = errors.New("record too large for the spool")
	// ErrInvalidConfig is wrapped by every configuration error.
	ErrInvalidConfig = errors.New("invalid spool config")
)

// Defaults for Config.
const (
	DefaultMaxBytes     = 1 << 30
	DefaultSegmentBytes = 8 << 20
)

// Config configures a spool.
type Config struct {
	// Dir holds the segment files; it is created when missing. Nothing
	// else should write there.
	Dir string
	// MaxBytes bounds the bytes on disk (default 1 GiB).
	MaxBytes int64
	// SegmentBytes is the size past which the next commit starts a new
	// segment (default 8 MiB, or an eighth of MaxBytes when that is less).
	// Replay reads one segment at a time.
	SegmentBytes int64
	// Logger receives recoveries and removals; never one line per record.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.SegmentBytes == 0 {
		// A small spool still has several segments, so that delivered
		// ones free space while the rest wait.
		c.SegmentBytes = min(DefaultSegmentBytes, max(c.MaxBytes/8, 4<<10))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the configuration after defaults are applied.
func (c *Config) Validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: no directory", ErrInvalidConfig)
	case c.MaxBytes < 1<<20:
		return fmt.Errorf("%w: max bytes must be at least 1 MiB, got %d", ErrInvalidConfig, c.MaxBytes)
	case c.SegmentBytes < 4<<10 || c.SegmentBytes > c.MaxBytes:
		return fmt.Errorf("%w: segment bytes must be between 4 KiB and max bytes, got %d", ErrInvalidConfig, c.SegmentBytes)
	}
	return nil
}

// Entry is one spooled record: where it is published, under which
// Nats-Msg-Id, and its bytes.
type Entry struct {
	Subject string
	ID      string
	Data    []byte
}

// Stats describe the spool.
type Stats struct {
	// Records are waiting to be sent; Bytes and Segments are on disk.
	Records  int64
	Bytes    int64
	Segments int
	// Appended and Replayed count records since Open; Refused counts
	// appends refused because the spool was full; Commits counts fsyncs.
	Appended, Replayed, Refused, Commits uint64
	// Damaged counts the bytes set aside since Open because they held no
	// frame that could be read: a segment's tail torn by a crash or
	// corrupt, found by recovery at Open, or frames of a sealed segment
	// that no longer decode, found by Replay. They are kept for
	// inspection in a file beside the segment (see the package doc) and
	// are not part of Bytes.
	Damaged uint64
}

// Spool is a bounded, group-committed write-ahead log of records. Its
// methods are safe for concurrent use.
type Spool struct {
	cfg  Config
	log  *slog.Logger
	reqs chan *request
	done chan struct{}

	// Lock order: replaying, then closing, then mu. A goroutine holding
	// one of them may take only those after it in that order, never one
	// before it. Replay holds replaying while it takes mu (to seal the
	// active segment and to remove a delivered one) and while it calls
	// Send, so a Send may Append but must not Replay. Append holds
	// closing's read lock while it waits for the commit loop, which takes
	// mu: so nothing may wait for an Append or a Close with mu held. Close
	// releases closing before it takes mu.

	// replaying lets one Replay run at a time; it also guards the fields
	// of the sealed segments that Replay changes (size, records, sent).
	replaying sync.Mutex

	// closing guards the send on reqs against Close.
	closing sync.RWMutex
	closed  bool

	// mu guards the files: the segment being written and the sealed ones.
	mu      sync.Mutex
	active  *segment
	file    activeFile
	sealed  []*segment // oldest first
	nextSeq uint64
	wbuf    []byte

	// wrapFile, set by tests only, wraps each segment file opened for
	// writing, to inject failures.
	wrapFile func(*os.File) activeFile

	records, bytes                                atomic.Int64
	appended, replayed, refused, commits, damaged atomic.Uint64
}

// activeFile is the file of the segment being written: an *os.File, or
// in tests one whose calls fail.
type activeFile interface {
	Write(b []byte) (int, error)
	Sync() error
	Truncate(size int64) error
	Close() error
}

// segment is one file of the spool.
type segment struct {
	seq  uint64
	path string
	// size is the file's bytes that can be trusted, header included: the
	// bytes this process wrote and synced, or those recovery checked at
	// Open. Nothing reads past them: a write abandoned after a failure
	// may have left bytes there that its truncation could not remove.
	size    int64
	records int64
	sent    int // records already sent by Replay in this process
}

type request struct {
	frame []byte
	err   chan error
}

// Open opens the spool in cfg.Dir, recovering the segments a previous
// process left: a frame cut short by a crash, and whatever follows it in
// its segment, is set aside (see the package doc).
func Open(cfg Config) (*Spool, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{
		cfg:  cfg,
		log:  cfg.Logger,
		reqs: make(chan *request, 1024),
		done: make(chan struct{}),
	}
	segs, err := s.recoverSegments()
	if err != nil {
		return nil, err
	}
	s.sealed = segs
	for _, seg := range segs {
		s.records.Add(seg.records)
		s.bytes.Add(seg.size)
		s.nextSeq = seg.seq + 1
	}
	if n := s.records.Load(); n > 0 {
		s.log.Warn("spool holds records from an earlier run; they will be sent again",
			"records", n, "bytes", s.bytes.Load(), "segments", len(segs), "dir", cfg.Dir)
	}
	go s.run()
	return s, nil
}

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.cfg.Dir }

// Append writes e durably: it returns once e is on disk and fsynced, or
// with ErrTooLarge, ErrFull, ErrClosed or the write's error. Appends that
// arrive together share one fsync.
func (s *Spool) Append(e Entry) error {
	if n := bodyLen(e); n > maxFrame {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, maxFrame)
	}
	frame := appendFrame(nil, e)
	// The read lock keeps Close from closing reqs under the send.
	s.closing.RLock()
	if s.closed {
		s.closing.RUnlock()
		return ErrClosed
	}
	// A new segment's header may come on top: it is counted as if it did.
	n := int64(len(frame))
	if s.bytes.Add(n)+int64(len(segmentHeader)) > s.cfg.MaxBytes {
		s.closing.RUnlock()
		s.bytes.Add(-n)
		s.refused.Add(1)
		return fmt.Errorf("%w: %d bytes on disk, limit %d", ErrFull, s.bytes.Load(), s.cfg.MaxBytes)
	}
	r := &request{frame: frame, err: make(chan error, 1)}
	s.reqs <- r
	s.closing.RUnlock()
	return <-r.err
}

// run is the group-commit loop: it takes every request waiting, writes
// them with one write and one fsync, and answers them all.
func (s *Spool) run() {
	defer close(s.done)
	batch := make([]*request, 0, 256)
	for r := range s.reqs {
		batch = append(batch[:0], r)
	more:
		for len(batch) < cap(batch) {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		s.commit(batch)
	}
}

func (s *Spool) commit(batch []*request) {
	s.mu.Lock()
	err := s.write(batch)
	s.mu.Unlock()
	if err != nil {
		for _, r := range batch {
			s.bytes.Add(-int64(len(r.frame)))
		}
		s.log.Error("spool write failed", "records", len(batch), "error", err, "dir", s.cfg.Dir)
	}
	for _, r := range batch {
		r.err <- err
	}
}

// write appends the batch's frames to the active segment and syncs it.
// Called with s.mu held.
func (s *Spool) write(batch []*request) error {
	var total int64
	for _, r := range batch {
		total += int64(len(r.frame))
	}
	if s.active != nil && s.active.records > 0 && s.active.size+total > s.cfg.SegmentBytes {
		if err := s.sealLocked(); err != nil {
			return err
		}
	}
	if s.active == nil {
		if err := s.openActiveLocked(); err != nil {
			return err
		}
	}
	buf := s.wbuf[:0]
	for _, r := range batch {
		buf = append(buf, r.frame...)
	}
	s.wbuf = buf[:0]
	if cap(s.wbuf) > 4<<20 {
		s.wbuf = nil // a burst's buffer is not kept
	}
	if _, err := s.file.Write(buf); err != nil {
		return s.abandonLocked(fmt.Errorf("spool write: %w", err))
	}
	if err := s.file.Sync(); err != nil {
		return s.abandonLocked(fmt.Errorf("spool fsync: %w", err))
	}
	s.active.size += total
	s.active.records += int64(len(batch))
	s.records.Add(int64(len(batch)))
	s.appended.Add(uint64(len(batch)))
	s.commits.Add(1)
	return nil
}

// abandonLocked gives up the active segment after a failed write or sync:
// what the kernel holds of it can no longer be trusted, so it is cut back
// to its last synced size and sealed; the next commit starts a new file.
// When the truncation fails too, its error is returned with the cause; the
// bytes it left in the file are never read, since readers stop at the
// segment's size, and recovery at the next Open sets them aside.
func (s *Spool) abandonLocked(cause error) error {
	if err := s.file.Truncate(s.active.size); err != nil {
		cause = errors.Join(cause, fmt.Errorf("spool: cut %s back to %d bytes: %w", s.active.path, s.active.size, err))
	}
	if err := s.sealLocked(); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

func (s *Spool) openActiveLocked() error {
	seq := s.nextSeq
	path := filepath.Join(s.cfg.Dir, segmentName(seq))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if _, err := f.Write(segmentHeader[:]); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	s.nextSeq++
	s.file = f
	if s.wrapFile != nil {
		s.file = s.wrapFile(f)
	}
	s.active = &segment{seq: seq, path: path, size: int64(len(segmentHeader))}
	s.bytes.Add(s.active.size)
	return nil
}

// sealLocked closes the active segment: kept for Replay when it holds
// records, removed when it holds none.
func (s *Spool) sealLocked() error {
	if s.active == nil {
		return nil
	}
	seg, f := s.active, s.file
	s.active, s.file = nil, nil
	err := f.Close()
	if seg.records == 0 {
		s.bytes.Add(-seg.size)
		if rerr := os.Remove(seg.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		return err
	}
	s.sealed = append(s.sealed, seg)
	if err != nil {
		return fmt.Errorf("spool: close segment: %w", err)
	}
	return nil
}

// Send delivers entries, in order, and returns how many of them, from the
// first, were delivered; with fewer than all it also returns why.
type Send func(ctx context.Context, entries []Entry) (int, error)

// ErrShortSend is returned by Replay when a Send delivered fewer entries
// than it was given without saying why.
var ErrShortSend = errors.New("spool: send delivered only part of a chunk")

// Replay sends every record spooled before the call, oldest first, chunk
// records at a time, and removes each segment once all its records are
// delivered. It stops at the first Send that delivers fewer records than it
// was given, or when ctx ends; what was not delivered stays for the next
// Replay. It returns the number of records delivered.
//
// A segment whose frames no longer decode past some point (the disk
// damaged it) has the records before that point sent as usual; the rest of
// it is set aside as recovery does (see the package doc), counted in
// Stats.Damaged, and the records in it no longer count as waiting, so
// that the segments after it are sent too.
//
// Send is called with no lock held but Replay's own: it may Append, but
// must not call Replay.
func (s *Spool) Replay(ctx context.Context, chunk int, send Send) (int, error) {
	if chunk < 1 {
		chunk = 1
	}
	s.replaying.Lock()
	defer s.replaying.Unlock()
	s.mu.Lock()
	err := s.sealLocked()
	segs := slices.Clone(s.sealed)
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	delivered := 0
	for _, seg := range segs {
		entries, err := s.readSealed(seg)
		if err != nil {
			return delivered, err
		}
		for seg.sent < len(entries) {
			if err := ctx.Err(); err != nil {
				return delivered, err
			}
			part := entries[seg.sent:min(seg.sent+chunk, len(entries))]
			n, err := send(ctx, part)
			n = max(0, min(n, len(part)))
			seg.sent += n
			delivered += n
			s.records.Add(-int64(n))
			s.replayed.Add(uint64(n))
			if err == nil && n < len(part) {
				err = ErrShortSend
			}
			if err != nil {
				return delivered, err
			}
		}
		if err := s.remove(seg); err != nil {
			return delivered, err
		}
	}
	return delivered, nil
}

// readSealed reads the records of a sealed segment, its first seg.size
// bytes only. When they do not all decode, the damaged rest is set aside,
// the segment is cut back to the records that do, and the records lost
// with it stop counting as waiting. Called with s.replaying held.
func (s *Spool) readSealed(seg *segment) ([]Entry, error) {
	b, err := readPrefix(seg.path, seg.size)
	if err != nil {
		return nil, fmt.Errorf("spool: read %s: %w", seg.path, err)
	}
	var (
		entries []Entry
		valid   int
		derr    error
	)
	if len(b) >= len(segmentHeader) && [8]byte(b[:8]) == segmentHeader {
		entries, valid, derr = decodeFrames(b[len(segmentHeader):])
		valid += len(segmentHeader)
	} else {
		// Recovery or this process checked the header: it is damaged
		// too, and nothing in the file can be trusted.
		derr = errBadFrame
	}
	if derr == nil && int64(len(b)) == seg.size {
		return entries, nil
	}
	// Records already sent stay sent; those after them that did not
	// decode are lost.
	lost := max(0, seg.records-max(int64(len(entries)), int64(seg.sent)))
	s.setAside(seg.path, int64(valid), b[valid:], len(entries), lost)
	s.records.Add(-lost)
	s.bytes.Add(int64(valid) - seg.size)
	seg.records -= lost
	seg.size = int64(valid)
	return entries, nil
}

// remove deletes a fully delivered segment.
func (s *Spool) remove(seg *segment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: remove delivered segment: %w", err)
	}
	s.sealed = slices.DeleteFunc(s.sealed, func(x *segment) bool { return x == seg })
	s.bytes.Add(-seg.size)
	return syncDir(s.cfg.Dir)
}

// Stats returns the spool's state and counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	segs := len(s.sealed)
	if s.active != nil {
		segs++
	}
	s.mu.Unlock()
	return Stats{
		Records:  s.records.Load(),
		Bytes:    s.bytes.Load(),
		Segments: segs,
		Appended: s.appended.Load(),
		Replayed: s.replayed.Load(),
		Refused:  s.refused.Load(),
		Commits:  s.commits.Load(),
		Damaged:  s.damaged.Load(),
	}
}

// MaxBytes is the spool's bound on disk.
func (s *Spool) MaxBytes() int64 { return s.cfg.MaxBytes }

// Len is the number of records waiting to be sent.
func (s *Spool) Len() int64 { return s.records.Load() }

// Close waits for the appends in progress, then closes the files. What is
// spooled stays on disk for the next Open.
func (s *Spool) Close() error {
	s.closing.Lock()
	if s.closed {
		s.closing.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.closing.Unlock()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sealLocked()
}
