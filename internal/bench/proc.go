package bench

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// ProcMem is the memory of a process watched during the run (--pids).
type ProcMem struct {
	PID  int    `json:"pid"`
	Name string `json:"name,omitempty"`
	// PeakRSS is the kernel's high-water mark of the resident set (VmHWM)
	// at the end of the run: the peak over the process's whole life.
	PeakRSS uint64 `json:"peak_rss_bytes"`
	// RSSStart, RSSEnd and RSSMax are the resident set (VmRSS) at the
	// start, at the end and the highest sampled in between (every
	// progress line): growth over a soak shows as RSSEnd well above
	// RSSStart.
	RSSStart uint64 `json:"rss_start_bytes"`
	RSSEnd   uint64 `json:"rss_end_bytes"`
	RSSMax   uint64 `json:"rss_max_bytes"`
	Error    string `json:"error,omitempty"`
}

// procWatch samples the memory of some processes.
type procWatch struct {
	mu    sync.Mutex
	procs []ProcMem
}

func newProcWatch(pids []int) *procWatch {
	w := &procWatch{}
	for _, pid := range pids {
		w.procs = append(w.procs, ProcMem{PID: pid})
	}
	w.sample(true)
	return w
}

// sample reads every process's status; first records the start values.
func (w *procWatch) sample(first bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.procs {
		p := &w.procs[i]
		st, err := readProcStatus(p.PID)
		if err != nil {
			p.Error = err.Error()
			continue
		}
		p.Error = ""
		p.Name = st.name
		p.PeakRSS = st.hwm
		p.RSSEnd = st.rss
		p.RSSMax = max(p.RSSMax, st.rss)
		if first {
			p.RSSStart = st.rss
		}
	}
}

func (w *procWatch) snapshot() []ProcMem {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]ProcMem(nil), w.procs...)
}

type procStatus struct {
	name     string
	rss, hwm uint64 // bytes
}

// readProcStatus reads Name, VmRSS and VmHWM from /proc/<pid>/status.
func readProcStatus(pid int) (procStatus, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return procStatus{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	return parseProcStatus(bufio.NewScanner(f))
}

func parseProcStatus(sc *bufio.Scanner) (procStatus, error) {
	var st procStatus
	var haveHWM bool
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			st.name = v
		case "VmRSS", "VmHWM":
			num, unit, _ := strings.Cut(v, " ")
			n, err := strconv.ParseUint(num, 10, 64)
			if err != nil {
				return st, fmt.Errorf("%s: %q is not a number", k, v)
			}
			if strings.TrimSpace(unit) == "kB" {
				n *= 1024
			}
			if k == "VmRSS" {
				st.rss = n
			} else {
				st.hwm, haveHWM = n, true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return st, err
	}
	if !haveHWM {
		return st, fmt.Errorf("no VmHWM in the status (a kernel thread or a zombie?)")
	}
	return st, nil
}
