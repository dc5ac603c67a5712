package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile is the file in --data-dir whose lock says a process uses it.
const lockFile = "callflow.lock"

// errDataDirInUse is returned when another process holds the data
// directory.
var errDataDirInUse = errors.New("data directory in use")

// lockDataDir takes dir for this process: an exclusive flock on
// dir/callflow.lock, which also holds the holder's pid. The kernel drops
// the lock when the process ends, however it ends, so a file left by a
// dead process blocks nothing. release gives it up.
func lockDataDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("--data-dir: lock %s: %w", path, err)
		}
		holder := ""
		if b, _ := os.ReadFile(path); len(b) > 0 {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				holder = fmt.Sprintf(" (pid %d)", pid)
			}
		}
		return nil, fmt.Errorf("%w: --data-dir %s is used by another callflow process%s; give each process its own --data-dir", errDataDirInUse, dir, holder)
	}
	// The pid is for the message above; the lock, not the file, decides.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
