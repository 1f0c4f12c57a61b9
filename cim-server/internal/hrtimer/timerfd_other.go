//go:build !linux

package hrtimer

// openFD has no timerfd to offer here: Timers use Go timers.
func openFD(func()) source { return nil }

const hasTimerFD = false
