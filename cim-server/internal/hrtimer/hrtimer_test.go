package hrtimer

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sources runs f against a Timer on each source: the platform's (a timerfd
// on Linux) and the Go-timer fallback.
func sources(t *testing.T, f func(t *testing.T, tm *Timer)) {
	t.Run("platform", func(t *testing.T) {
		tm := New()
		defer tm.Close()
		f(t, tm)
	})
	t.Run("go-timer", func(t *testing.T) {
		tm := newGo()
		defer tm.Close()
		f(t, tm)
	})
}

// newGo is a Timer on the fallback source.
func newGo() *Timer {
	c := make(chan struct{}, 1)
	t := &Timer{C: c, c: c}
	t.src = &goTimer{fire: t.fire}
	return t
}

func TestPlatformSource(t *testing.T) {
	tm := New()
	defer tm.Close()
	if _, ok := tm.src.(*goTimer); ok && hasTimerFD {
		t.Fatal("New fell back to a Go timer where a timerfd is expected")
	}
}

func TestFiresAfterTheWait(t *testing.T) {
	sources(t, func(t *testing.T, tm *Timer) {
		for _, d := range []time.Duration{50 * time.Microsecond, 300 * time.Microsecond, 2 * time.Millisecond} {
			start := time.Now()
			tm.Reset(d)
			<-tm.C
			if got := time.Since(start); got < d {
				t.Fatalf("Reset(%v) fired after %v", d, got)
			}
		}
	})
}

func TestResetZeroFiresAtOnce(t *testing.T) {
	sources(t, func(t *testing.T, tm *Timer) {
		tm.Reset(time.Hour)
		tm.Reset(0)
		select {
		case <-tm.C:
		default:
			t.Fatal("Reset(0) did not fire at once")
		}
	})
}

// An expiry that comes for an earlier arming (the clock expired while Reset
// armed the next wait) or after Stop sends nothing.
func TestStaleExpiryIsDropped(t *testing.T) {
	sources(t, func(t *testing.T, tm *Timer) {
		tm.Reset(time.Hour)
		tm.fire() // the last wait's expiry, read late
		select {
		case <-tm.C:
			t.Fatal("an expiry before the deadline fired the timer")
		default:
		}
		tm.Stop()
		tm.mu.Lock()
		tm.deadline = time.Time{}
		tm.mu.Unlock()
		tm.fire()
		select {
		case <-tm.C:
			t.Fatal("a stopped timer fired")
		default:
		}
	})
}

// A fire not received before Reset or Stop is not received after them.
func TestResetDropsAnUnreadFire(t *testing.T) {
	sources(t, func(t *testing.T, tm *Timer) {
		expire(tm)
		tm.Reset(time.Hour)
		select {
		case <-tm.C:
			t.Fatal("C held the fire of the wait before Reset")
		default:
		}
		expire(tm)
		tm.Stop()
		select {
		case <-tm.C:
			t.Fatal("C held a fire after Stop")
		default:
		}
	})
}

// expire makes tm fire now, without receiving from C: it is armed for an
// hour, then its deadline is moved to the past and its clock expires.
func expire(tm *Timer) {
	tm.Reset(time.Hour)
	tm.mu.Lock()
	tm.deadline = time.Now().Add(-time.Millisecond)
	tm.mu.Unlock()
	tm.fire()
	if len(tm.c) != 1 {
		panic("expire: the timer did not fire")
	}
}

func TestStopThenReset(t *testing.T) {
	sources(t, func(t *testing.T, tm *Timer) {
		tm.Reset(time.Hour)
		tm.Stop()
		start := time.Now()
		tm.Reset(200 * time.Microsecond)
		<-tm.C
		if got := time.Since(start); got < 200*time.Microsecond {
			t.Fatalf("fired after %v", got)
		}
	})
}

func TestCloseIsFinal(t *testing.T) {
	sources(t, func(t *testing.T, tm *Timer) {
		tm.Reset(time.Hour)
		tm.Close()
		tm.Close()
		tm.Reset(time.Microsecond) // no clock to arm: nothing, no panic
		tm.Stop()
		tm.mu.Lock()
		armed := !tm.deadline.IsZero()
		tm.mu.Unlock()
		if armed {
			t.Fatal("a closed timer took a deadline")
		}
	})
}

// BenchmarkLateness reports how long after its deadline a Timer fires in an
// otherwise idle process, against a Go timer (late-µs).
func BenchmarkLateness(b *testing.B) {
	for _, d := range []time.Duration{100 * time.Microsecond, 600 * time.Microsecond, 1400 * time.Microsecond} {
		for _, kind := range []string{"hrtimer", "time.Timer"} {
			b.Run(fmt.Sprintf("%s/%v", kind, d), func(b *testing.B) {
				var late time.Duration
				wait := func() {}
				if kind == "hrtimer" {
					tm := New()
					defer tm.Close()
					wait = func() { tm.Reset(d); <-tm.C }
				} else {
					tm := time.NewTimer(time.Hour)
					defer tm.Stop()
					wait = func() { tm.Reset(d); <-tm.C }
				}
				for b.Loop() {
					start := time.Now()
					wait()
					late += time.Since(start) - d
				}
				b.ReportMetric(float64(late.Microseconds())/float64(b.N), "late-µs")
			})
		}
	}
}
