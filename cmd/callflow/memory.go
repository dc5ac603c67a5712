package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// The collector's settings: --memory-limit and --gc-percent.
const (
	// memoryLimitShare is the part of a container's memory limit that
	// --memory-limit auto gives the Go heap: the rest is for what the
	// runtime does not count (the OS's buffers, the process's code).
	memoryLimitShare = 0.9
	// gcPercentWithLimit is --gc-percent auto when a memory limit is in
	// effect: the collector runs when the heap has grown by this much, or
	// at the limit, whichever comes first (BENCHMARKS.md, "The collector").
	gcPercentWithLimit = 400
	// cgroupRoot is where the container's limits are read.
	cgroupRoot = "/sys/fs/cgroup"
)

// gcSettings are what the process runs with, and why.
type gcSettings struct {
	limit     int64 // bytes; 0: none
	limitFrom string
	percent   int // -1: off
	pctFrom   string
}

// resolveGC turns --memory-limit and --gc-percent into settings. "auto"
// keeps GOMEMLIMIT / GOGC when the environment sets them; otherwise the
// limit is memoryLimitShare of the container's memory limit (cgroup v2 or
// v1 under root), if there is one, and the percentage is
// gcPercentWithLimit with a limit, Go's 100 without.
func resolveGC(limitFlag, pctFlag string, getenv func(string) string, root string) (gcSettings, error) {
	var s gcSettings
	switch v := strings.TrimSpace(limitFlag); v {
	case "", "auto":
		if env := getenv("GOMEMLIMIT"); env != "" && env != "off" {
			n, err := parseBytes(env)
			if err != nil {
				return s, fmt.Errorf("GOMEMLIMIT %q: %w", env, err)
			}
			s.limit, s.limitFrom = n, "GOMEMLIMIT"
		} else if c := containerMemory(root); c > 0 {
			s.limit = int64(float64(c) * memoryLimitShare)
			s.limitFrom = fmt.Sprintf("%.0f%% of the container's %s", memoryLimitShare*100, formatBytes(c))
		}
	case "none", "0":
	default:
		n, err := parseBytes(v)
		if err != nil {
			return s, fmt.Errorf("--memory-limit %q: %w", limitFlag, err)
		}
		s.limit, s.limitFrom = n, "--memory-limit"
	}
	switch v := strings.TrimSpace(pctFlag); v {
	case "", "auto":
		switch env := getenv("GOGC"); {
		case env == "off":
			s.percent, s.pctFrom = -1, "GOGC"
		case env != "":
			n, err := strconv.Atoi(env)
			if err != nil {
				return s, fmt.Errorf("GOGC %q: not a number or off", env)
			}
			s.percent, s.pctFrom = n, "GOGC"
		case s.limit > 0:
			s.percent, s.pctFrom = gcPercentWithLimit, "with a memory limit"
		default:
			s.percent, s.pctFrom = 100, "Go's default"
		}
	case "off":
		s.percent, s.pctFrom = -1, "--gc-percent"
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return s, fmt.Errorf("--gc-percent %q: want a percentage >= 1, off or auto", pctFlag)
		}
		s.percent, s.pctFrom = n, "--gc-percent"
	}
	if s.percent < 0 && s.limit == 0 {
		return s, errors.New("--gc-percent off needs a memory limit (--memory-limit), or the heap grows without bound")
	}
	return s, nil
}

// registerCollector adds --memory-limit and --gc-percent to the
// long-running roles.
func (o *options) registerCollector(fs *flag.FlagSet) {
	fs.StringVar(&o.memoryLimit, "memory-limit", "auto", "soft memory limit of the Go runtime (512MiB, 2GiB; none: no limit). auto: GOMEMLIMIT when set, else 90% of the container's memory limit when there is one, else none. Near the limit the collector runs more often instead of the process growing; see README 'Sizing memory'")
	fs.StringVar(&o.gcPercent, "gc-percent", "auto", "heap growth, in percent of the live heap, that starts a collection (as GOGC; off: only at --memory-limit). auto: GOGC when set, else 400 with a memory limit (fewer collections, the limit bounds the heap), else Go's 100")
}

// apply sets the runtime's memory limit and GC percentage, and logs them.
func (s gcSettings) apply(log *slog.Logger) {
	log.Info("garbage collector", "settings", s.String())
	if s.limit > 0 {
		debug.SetMemoryLimit(s.limit)
	} else {
		debug.SetMemoryLimit(math.MaxInt64)
	}
	debug.SetGCPercent(s.percent)
}

// String describes the settings for the start-up log.
func (s gcSettings) String() string {
	limit := "none"
	if s.limit > 0 {
		limit = formatBytes(s.limit) + " (" + s.limitFrom + ")"
	}
	pct := "off"
	if s.percent >= 0 {
		pct = strconv.Itoa(s.percent)
	}
	return fmt.Sprintf("memory limit %s, GC percent %s (%s)", limit, pct, s.pctFrom)
}

// containerMemory is the memory limit of the process's cgroup in bytes, 0
// when there is none: cgroup v2's memory.max, or v1's
// memory/memory.limit_in_bytes (whose "no limit" is a huge number).
func containerMemory(root string) int64 {
	for _, p := range []string{filepath.Join(root, "memory.max"), filepath.Join(root, "memory", "memory.limit_in_bytes")} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0
		}
		return n
	}
	return 0
}

// byteUnits are the suffixes parseBytes accepts, longest first.
var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// parseBytes reads a size such as 512MiB, 2GiB, 300MB or 1048576 (bytes),
// as GOMEMLIMIT does.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || n*float64(mult) >= math.MaxInt64 {
		return 0, errors.New("want a size such as 512MiB, 2GiB or a number of bytes")
	}
	return int64(n * float64(mult)), nil
}

// formatBytes prints n in the largest binary unit that keeps it >= 1.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(math.Round(float64(n)/(1<<30)*100)/100, 'f', -1, 64) + "GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(math.Round(float64(n)/(1<<20)*10)/10, 'f', -1, 64) + "MiB"
	default:
		return strconv.FormatInt(n, 10) + "B"
	}
}
