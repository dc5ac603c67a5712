package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ImportUnacked moves the records of an unacknowledged-records file, the
// format callflow used before the spool ("subject msg-id length\n", the
// record bytes, "\n", per record), into the spool, then removes the file.
// A missing file imports nothing. An entry cut short at the end is
// reported in the error and the file is kept, renamed with ".partial",
// after every whole entry was imported.
func (s *Spool) ImportUnacked(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("spool: import: %w", err)
	}
	entries, perr := parseUnacked(bufio.NewReader(f))
	f.Close()
	n := 0
	for _, e := range entries {
		if err := s.Append(e); err != nil {
			return n, fmt.Errorf("spool: import %s: %w", path, err)
		}
		n++
	}
	if perr != nil {
		if err := os.Rename(path, path+".partial"); err != nil {
			return n, errors.Join(perr, err)
		}
		return n, fmt.Errorf("spool: import %s: %w", path, perr)
	}
	return n, removeFile(path)
}

func parseUnacked(r *bufio.Reader) ([]Entry, error) {
	var out []Entry
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF && line == "" {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("entry %d: header cut short", len(out)+1)
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return out, fmt.Errorf("entry %d: header %q is not \"subject msg-id length\"", len(out)+1, strings.TrimSpace(line))
		}
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 0 || n+len(f[0])+len(f[1])+2*binary.MaxVarintLen64 > maxFrame {
			return out, fmt.Errorf("entry %d: bad length %q", len(out)+1, f[2])
		}
		data := make([]byte, n+1)
		if _, err := io.ReadFull(r, data); err != nil || data[n] != '\n' {
			return out, fmt.Errorf("entry %d: record cut short", len(out)+1)
		}
		out = append(out, Entry{Subject: f[0], ID: f[1], Data: data[:n]})
	}
}
