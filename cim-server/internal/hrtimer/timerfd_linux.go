package hrtimer

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// timerFD is a timerfd read through the runtime's poller: a goroutine waits
// in Read, which epoll wakes when the timer expires.
type timerFD struct {
	fd   int // the raw descriptor, for timerfd_settime; f owns it
	f    *os.File
	fire func()
}

// openFD returns a timerfd source, or nil if the kernel refuses one.
func openFD(fire func()) source {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil
	}
	// A non-blocking descriptor makes a pollable File. Its Fd method would
	// make it blocking again, so the raw number is kept instead.
	s := &timerFD{fd: fd, f: os.NewFile(uintptr(fd), "hrtimer"), fire: fire}
	go s.wait()
	return s
}

func (s *timerFD) wait() {
	var n [8]byte // the expirations since the last read
	for {
		if _, err := s.f.Read(n[:]); err != nil {
			return // closed
		}
		s.fire()
	}
}

// arm sets the timer d from now. Setting it also clears an expiration not
// read yet, so a stale one is read only if it was read before: fire drops it.
func (s *timerFD) arm(d time.Duration) {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(d.Nanoseconds())}
	_ = unix.TimerfdSettime(s.fd, 0, &spec, nil) // fails only for a bad fd or value
}

func (s *timerFD) disarm() {
	_ = unix.TimerfdSettime(s.fd, 0, &unix.ItimerSpec{}, nil)
}

// close ends wait's Read; the Timer's lock keeps arm and disarm from using
// the number after this.
func (s *timerFD) close() { _ = s.f.Close() }

// hasTimerFD: New makes a timerfd here.
const hasTimerFD = true
