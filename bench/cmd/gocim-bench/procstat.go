package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of utime/stime in /proc/<pid>/stat (100 on
// Linux for every architecture Go supports here).
const clockTick = 100

// cpuOf returns the CPU time (user + system) process pid has used so far.
func cpuOf(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after ')' are
	// plain: state is field 3, utime 14, stime 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad times", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// rssOf returns the resident set size of pid in bytes.
func rssOf(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures CPU used by a set of processes and by this one over a
// window.
type cpuMeter struct {
	pids  []int
	start []time.Duration
	self  time.Duration
	wall  time.Time
	prof  *os.File // the phase's CPU profile, with --cpuprofile
	mem   string   // the phase's allocation profile, with --memprofile

	// After stop: what each of pids and this process used in the window.
	used     []time.Duration
	selfUsed time.Duration
}

// phaseProfile is --cpuprofile: each measured window (startCPU to stop) is
// profiled into it, the second into <file>.2, and so on, so that a profile
// shows the measured phase and not the set-up.
var phaseProfile struct {
	path string
	mem  string // --memprofile
	n    int
	memN int
}

// phaseName is path for a run's first measured window, path.2 for its
// second, and so on.
func phaseName(path string, n int) string {
	if n > 1 {
		return path + "." + strconv.Itoa(n)
	}
	return path
}

// startMemProfile is --memprofile: it writes the allocations so far to
// <name>.start and returns name, where stop writes them again, so that
// "go tool pprof -sample_index=alloc_space -diff_base name.start name" shows
// what the measured window allocated.
func startMemProfile() string {
	if phaseProfile.mem == "" {
		return ""
	}
	phaseProfile.memN++
	name := phaseName(phaseProfile.mem, phaseProfile.memN)
	if err := writeAllocs(name + ".start"); err != nil {
		slog.Warn("memory profile", "err", err)
		return ""
	}
	return name
}

// writeAllocs writes the allocs profile (every allocation since the process
// started, sampled) to name.
func writeAllocs(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	runtime.GC() // the profile counts what the last cycle saw
	err = pprof.Lookup("allocs").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// startProfile starts the CPU profile of the next measured window, if asked.
func startProfile() *os.File {
	if phaseProfile.path == "" {
		return nil
	}
	phaseProfile.n++
	name := phaseName(phaseProfile.path, phaseProfile.n)
	f, err := os.Create(name)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		slog.Warn("cpu profile", "err", err)
		if f != nil {
			f.Close()
		}
		return nil
	}
	return f
}

// startCPU starts measuring a window. It first collects the load
// generator's heap and returns its free pages to the system, so that every
// window starts alike: a window after a workload or a system that left
// hundreds of megabytes of garbage (the group fan-out's clients) would
// otherwise pay for sweeping and returning them, and for a first collection
// at a time set by the phase before.
func startCPU(pids []int) *cpuMeter {
	debug.FreeOSMemory()
	mem := startMemProfile() // first: its GC is not the window's
	m := &cpuMeter{mem: mem, pids: pids, start: make([]time.Duration, len(pids)), self: selfCPU(), wall: time.Now()}
	for i, p := range pids {
		m.start[i], _ = cpuOf(p)
	}
	m.prof = startProfile()
	return m
}

// stop returns the cluster's and the load generator's CPU use, each as a
// fraction of one core over the window (2.0 = both cores of this machine).
func (m *cpuMeter) stop() (cluster, loadgen float64) {
	wall := time.Since(m.wall)
	if m.prof != nil {
		pprof.StopCPUProfile()
		m.prof.Close()
		m.prof = nil
	}
	var used time.Duration
	m.used = make([]time.Duration, len(m.pids))
	for i, p := range m.pids {
		if d, err := cpuOf(p); err == nil {
			m.used[i] = d - m.start[i]
			used += m.used[i]
		}
	}
	m.selfUsed = selfCPU() - m.self
	if m.mem != "" { // last: its GC is not the window's
		if err := writeAllocs(m.mem); err != nil {
			slog.Warn("memory profile", "err", err)
		}
		m.mem = ""
	}
	return float64(used) / float64(wall), float64(m.selfUsed) / float64(wall)
}

// perMessage describes, after stop, the CPU each process used per message
// of n: names name the pids in order (a name given twice is summed per
// position, "gateways 49 + 22 µs"), then this process as "load generator".
func (m *cpuMeter) perMessage(names []string, n int64) string {
	if n <= 0 || len(m.used) != len(names) {
		return ""
	}
	us := func(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d.Microseconds())/float64(n)) }
	var parts []string
	for i := 0; i < len(names); {
		j := i + 1
		for j < len(names) && names[j] == names[i] {
			j++
		}
		each := make([]string, 0, j-i)
		for k := i; k < j; k++ {
			each = append(each, us(m.used[k]))
		}
		parts = append(parts, names[i]+" "+strings.Join(each, " + ")+" µs")
		i = j
	}
	parts = append(parts, "load generator "+us(m.selfUsed)+" µs")
	return "CPU per delivered message (/proc): " + strings.Join(parts, ", ")
}
