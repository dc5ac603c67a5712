package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDataDirLock: one process per data directory. A second lock fails
// naming the directory and the holder's pid; a released lock, or a file
// left by a dead process, blocks nothing.
func TestDataDirLock(t *testing.T) {
	pid := "(pid " + strconv.Itoa(os.Getpid()) + ")"
	tests := []struct {
		name string
		// prepare runs between the first lock and the second; release
		// gives up the first.
		prepare func(t *testing.T, dir string, release func())
		wantErr bool
	}{
		{name: "held", prepare: func(*testing.T, string, func()) {}, wantErr: true},
		{name: "released", prepare: func(_ *testing.T, _ string, release func()) { release() }},
		{name: "stale file of a dead process", prepare: func(t *testing.T, dir string, release func()) {
			release()
			if err := os.WriteFile(filepath.Join(dir, lockFile), []byte("999999999\n"), 0o640); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			release, err := lockDataDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			released := false
			t.Cleanup(func() {
				if !released {
					release()
				}
			})
			if b, err := os.ReadFile(filepath.Join(dir, lockFile)); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
				t.Fatalf("lock file holds %q (%v), want this pid", b, err)
			}
			tt.prepare(t, dir, func() { release(); released = true })
			again, err := lockDataDir(dir)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("second lock: %v", err)
				}
				again()
				return
			}
			if !errors.Is(err, errDataDirInUse) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), pid) {
				t.Fatalf("second lock: %v, want errDataDirInUse naming %s and %s", err, dir, pid)
			}
		})
	}
}

// TestSecondProcessOnDataDirRefused: serve and ingest refuse a data
// directory another process holds, before starting anything.
func TestSecondProcessOnDataDirRefused(t *testing.T) {
	for _, role := range []string{"serve", "ingest"} {
		t.Run(role, func(t *testing.T) {
			dir := t.TempDir()
			release, err := lockDataDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			var stderr strings.Builder
			err = runRole(role)(context.Background(), []string{"--data-dir", dir}, nil, &stderr)
			if !errors.Is(err, errDataDirInUse) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
				t.Fatalf("%s on a held data dir: %v, want errDataDirInUse naming the directory and pid", role, err)
			}
		})
	}
}
