package spool

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
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
	// damagedExt is added to a segment's name for the file its damaged
	// bytes are set aside in; such a file is no segment to listSegments.
	damagedExt = ".damaged"
	frameHead  = 8 // uint32 length + uint32 CRC-32C
	// maxFrame bounds a frame's body when reading, so that a corrupt
	// length cannot make recovery allocate gigabytes.
	maxFrame = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadFrame marks a frame cut short or failing its checksum.
var errBadFrame = errors.New("torn or corrupt frame")

func segmentName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, segmentExt) }

// bodyLen is the length of e's frame body, as appendFrame encodes it.
func bodyLen(e Entry) int {
	return uvarintLen(len(e.Subject)) + len(e.Subject) + uvarintLen(len(e.ID)) + len(e.ID) + len(e.Data)
}

func uvarintLen(n int) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(n))
}

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

// readPrefix reads the first n bytes of the file at path, or all of it
// when it is shorter.
func readPrefix(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := io.ReadFull(f, b)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil
	}
	return b[:k], err
}

// readSegment reads every entry of a segment file, all of it: for Read.
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

// recoverSegments finds the segments in the spool's directory, oldest
// first, setting aside a torn or corrupt tail (the frames a crash cut
// short) and removing segments that hold no record.
func (s *Spool) recoverSegments() ([]*segment, error) {
	dir := s.cfg.Dir
	files, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	var segs []*segment
	for _, f := range files {
		seg, err := s.recoverSegment(f.path, f.seq)
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

func (s *Spool) recoverSegment(path string, seq uint64) (*segment, error) {
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
		s.log.Error("spool: file with a segment's name is not a segment; renamed", "file", path)
		return nil, os.Rename(path, path+".invalid")
	}
	entries, valid, derr := decodeFrames(b[len(segmentHeader):])
	size := int64(len(segmentHeader) + valid)
	if derr != nil {
		// How many records the tail held is not known: none that was
		// acknowledged if a crash tore it, some if the disk damaged it.
		s.setAside(path, size, b[size:], len(entries), -1)
	}
	if len(entries) == 0 {
		return nil, removeFile(path)
	}
	return &segment{seq: seq, path: path, size: size, records: int64(len(entries))}, nil
}

// setAside deals with the damaged part of the segment at path: the bytes
// after its first keep bytes, which hold no frame that can be read. They
// are copied, for inspection, to a file beside the segment named like it
// with ".damaged" added (".damaged.1" and so on when that exists), which
// neither recovery nor Replay takes for a segment; the segment is then cut
// back to its first keep bytes, so that nothing reads the damaged bytes
// again, and they are counted in Stats.Damaged. The event is logged once,
// with the records kept and the records lost (lost < 0: not known).
//
// Failures are logged, not returned: the caller goes on with the records
// kept either way. A segment that could not be cut back is read only up to
// keep bytes in this process (segment.size); a copy that could not be
// written must not stop the good records from being sent (a full disk
// would otherwise never be emptied), and the damaged bytes hold no record
// that can be read.
func (s *Spool) setAside(path string, keep int64, damaged []byte, kept int, lost int64) {
	attrs := []any{"file", path, "kept_records", kept, "damaged_bytes", len(damaged)}
	if lost >= 0 {
		attrs = append(attrs, "lost_records", lost)
	}
	var errs []error
	if len(damaged) > 0 {
		copyPath, err := writeDamaged(path, damaged)
		if err != nil {
			errs = append(errs, fmt.Errorf("keep a copy: %w", err))
		} else {
			attrs = append(attrs, "damaged_file", copyPath)
		}
	}
	if err := truncateSynced(path, keep); err != nil {
		errs = append(errs, fmt.Errorf("cut the segment back to %d bytes: %w", keep, err))
	}
	s.damaged.Add(uint64(len(damaged)))
	const msg = "spool: frames that cannot be read set aside"
	switch {
	case len(errs) > 0:
		s.log.Error(msg, append(attrs, "error", errors.Join(errs...))...)
	case lost > 0:
		s.log.Error(msg, attrs...)
	default:
		s.log.Warn(msg, attrs...)
	}
}

// writeDamaged writes b, durably, to a new file named after the segment at
// path with damagedExt added, and returns that file's path.
func writeDamaged(path string, b []byte) (string, error) {
	const tries = 100
	for i := range tries {
		name := path + damagedExt
		if i > 0 {
			name += "." + strconv.Itoa(i)
		}
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		_, err = f.Write(b)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = syncDir(filepath.Dir(path))
		}
		if err != nil {
			os.Remove(name)
			return "", err
		}
		return name, nil
	}
	return "", fmt.Errorf("%s%s and %d more exist", path, damagedExt, tries-1)
}

// truncateSynced cuts the file at path to size bytes, durably.
func truncateSynced(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
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
