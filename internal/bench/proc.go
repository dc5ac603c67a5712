package bench

import (
	"fmt"
	"sync"

	"github.com/prometheus/procfs"
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
	fs    procfs.FS
	fsErr error // the proc filesystem could not be opened
	procs []ProcMem
}

// newProcWatch watches the processes pids through the proc filesystem
// mounted at mount (procfs.DefaultMountPoint but in tests) and takes the
// start values.
func newProcWatch(mount string, pids []int) *procWatch {
	w := &procWatch{}
	w.fs, w.fsErr = procfs.NewFS(mount)
	if w.fsErr != nil {
		w.fsErr = fmt.Errorf("read memory: %w", w.fsErr)
	}
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
		st, err := w.status(p.PID)
		if err != nil {
			p.Error = err.Error()
			continue
		}
		p.Error = ""
		p.Name = st.Name
		p.PeakRSS = st.VmHWM
		p.RSSEnd = st.VmRSS
		p.RSSMax = max(p.RSSMax, st.VmRSS)
		if first {
			p.RSSStart = st.VmRSS
		}
	}
}

// status reads /proc/<pid>/status: the name and memory (in bytes) of a
// process that has a resident set.
func (w *procWatch) status(pid int) (procfs.ProcStatus, error) {
	if w.fsErr != nil {
		return procfs.ProcStatus{}, w.fsErr
	}
	proc, err := w.fs.Proc(pid)
	if err != nil {
		return procfs.ProcStatus{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	st, err := proc.NewStatus()
	if err != nil {
		return procfs.ProcStatus{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	if st.VmHWM == 0 {
		return procfs.ProcStatus{}, fmt.Errorf("read memory of pid %d: no VmHWM in its status (a kernel thread or a zombie?)", pid)
	}
	return st, nil
}

func (w *procWatch) snapshot() []ProcMem {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]ProcMem(nil), w.procs...)
}
