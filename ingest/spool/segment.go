package spool

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// segmentHeader starts every segment file: a magic and the format version.
var segmentHeader = [8]byte{'C', 'F', 'S', 'P', 'O', 'O', 'L', '1'}

const (
	segmentExt = ".seg"
	frameHead  = 8 // uint32 length + uint32 CRC-32C
	// maxFrame bounds a frame's body when reading, so that a corrupt
	// length cannot make recovery allocate gigabytes.
	maxFrame = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadFrame marks a frame cut short or failing its checksum.
var errBadFrame = errors.New("torn or corrupt frame")

func segmentName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, segmentExt) }

// appendFrame encodes e as one frame.
func appendFrame(dst []byte, e Entry) []byte {
	body := len(e.Subject) + len(e.ID) + len(e.Data) + 2*binary.MaxVarintLen64
	dst = slices.Grow(dst, frameHead+body)
	start := len(dst)
	dst = append(dst, make([]byte, frameHead)...)
	dst = binary.AppendUvarint(dst, uint64(len(e.Subject)))
	dst = append(dst, e.Subject...)
	dst = binary.AppendUvarint(dst, uint64(len(e.ID)))
	dst = append(dst, e.ID...)
	dst = append(dst, e.Data...)
	b := dst[start+frameHead:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(b)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(b, castagnoli))
	return dst
}

// decodeFrames reads the frames of a segment's contents (after the header)
// and returns the entries and the length of the valid prefix. err is
// errBadFrame when bytes after that prefix do not form a frame.
func decodeFrames(b []byte) (entries []Entry, valid int, err error) {
	for valid < len(b) {
		rest := b[valid:]
		if len(rest) < frameHead {
			return entries, valid, errBadFrame
		}
		n := binary.LittleEndian.Uint32(rest)
		if n > maxFrame || int(n) > len(rest)-frameHead {
			return entries, valid, errBadFrame
		}
		body := rest[frameHead : frameHead+int(n)]
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(rest[4:]) {
			return entries, valid, errBadFrame
		}
		e, ok := decodeBody(body)
		if !ok {
			return entries, valid, errBadFrame
		}
		entries = append(entries, e)
		valid += frameHead + int(n)
	}
	return entries, valid, nil
}

func decodeBody(b []byte) (Entry, bool) {
	subject, b, ok := readString(b)
	if !ok {
		return Entry{}, false
	}
	id, b, ok := readString(b)
	if !ok {
		return Entry{}, false
	}
	return Entry{Subject: subject, ID: id, Data: b}, true
}

func readString(b []byte) (string, []byte, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, false
	}
	return string(b[k : k+int(n)]), b[k+int(n):], true
}

// readSegment reads every entry of a sealed segment.
func readSegment(path string) ([]Entry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < len(segmentHeader) || [8]byte(b[:8]) != segmentHeader {
		return nil, fmt.Errorf("%s: not a spool segment", path)
	}
	entries, _, err := decodeFrames(b[len(segmentHeader):])
	if err != nil {
		return entries, fmt.Errorf("%s: %w", path, err)
	}
	return entries, nil
}

// segmentFile is a file of dir named like a segment.
type segmentFile struct {
	seq  uint64
	path string
}

// listSegments returns the regular files of dir named <sequence>.seg,
// by sequence number; other files are not the spool's.
func listSegments(dir string) ([]segmentFile, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var files []segmentFile
	for _, de := range des {
		name, ok := strings.CutSuffix(de.Name(), segmentExt)
		if !ok || !de.Type().IsRegular() {
			continue
		}
		if seq, err := strconv.ParseUint(name, 10, 64); err == nil {
			files = append(files, segmentFile{seq, filepath.Join(dir, de.Name())})
		}
	}
	slices.SortFunc(files, func(a, b segmentFile) int { return cmp.Compare(a.seq, b.seq) })
	return files, nil
}

// recoverSegments finds the segments in dir, oldest first, truncating a
// torn or corrupt tail (the frames a crash cut short) and removing
// segments that hold no record.
func recoverSegments(dir string, log *slog.Logger) ([]*segment, error) {
	files, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	var segs []*segment
	for _, f := range files {
		seg, err := recoverSegment(f.path, f.seq, log)
		if err != nil {
			return nil, err
		}
		if seg != nil {
			segs = append(segs, seg)
		}
	}
	if len(segs) > 0 {
		if err := syncDir(dir); err != nil {
			return nil, err
		}
	}
	return segs, nil
}

func recoverSegment(path string, seq uint64, log *slog.Logger) (*segment, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if len(b) < len(segmentHeader) || [8]byte(b[:8]) != segmentHeader {
		if len(b) <= len(segmentHeader) && string(b) == string(segmentHeader[:len(b)]) {
			// Created, header not (fully) written: nothing in it.
			return nil, removeFile(path)
		}
		// Not ours to delete: set it aside for an operator.
		log.Error("spool: file with a segment's name is not a segment; renamed", "file", path)
		return nil, os.Rename(path, path+".invalid")
	}
	entries, valid, derr := decodeFrames(b[len(segmentHeader):])
	size := int64(len(segmentHeader) + valid)
	if derr != nil {
		log.Warn("spool: truncating a torn or corrupt segment tail", "file", path,
			"kept_records", len(entries), "dropped_bytes", int64(len(b))-size)
		if err := os.Truncate(path, size); err != nil {
			return nil, fmt.Errorf("spool: truncate %s: %w", path, err)
		}
	}
	if len(entries) == 0 {
		return nil, removeFile(path)
	}
	return &segment{seq: seq, path: path, size: size, records: int64(len(entries))}, nil
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// syncDir makes a file's creation or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync %s: %w", dir, err)
	}
	return nil
}

// Read returns every record in the segments of dir, oldest first, without
// changing anything: for inspection and tests. A torn tail ends its
// segment's records, as recovery would.
func Read(dir string) ([]Entry, error) {
	files, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, f := range files {
		entries, err := readSegment(f.path)
		if err != nil && !errors.Is(err, errBadFrame) {
			return out, err
		}
		out = append(out, entries...)
	}
	return out, nil
}
