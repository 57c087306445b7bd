package image

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// stuck is how long a test waits for what must happen before it calls the
// pipeline stuck; only a broken pipeline (or a badly starved machine) gets
// near it.
const stuck = time.Minute

type testValue struct {
	i      int
	worked int // how often work ran on it
}

// busy does a random amount of work, now and then sleeping so other
// workers overtake this one.
func busy() {
	for range rand.IntN(20) {
		runtime.Gosched()
	}
	if rand.IntN(8) == 0 {
		time.Sleep(time.Duration(rand.IntN(50)) * time.Microsecond)
	}
}

func TestPipelineOrder(t *testing.T) {
	const n = 500
	for _, c := range []struct{ workers, depth int }{{1, 1}, {3, 1}, {3, 4}, {16, 2}, {16, 32}} {
		t.Run(fmt.Sprintf("workers=%d,depth=%d", c.workers, c.depth), func(t *testing.T) {
			var works atomic.Int64
			p := newPipeline(c.workers, c.depth, func(v *testValue) {
				busy()
				v.worked++
				works.Add(1)
			})
			needsWork := func(i int) bool { return i%3 != 0 }
			go func() {
				defer p.close()
				for i := range n {
					if err := p.submit(testValue{i: i}, needsWork(i)); err != nil {
						t.Errorf("submit %d: %v", i, err)
						return
					}
				}
			}()
			var want int
			for {
				v, ok := p.next()
				if !ok {
					break
				}
				if v.i != want {
					t.Fatalf("next returned value %d, want %d", v.i, want)
				}
				wantWorked := 0
				if needsWork(v.i) {
					wantWorked = 1
				}
				if v.worked != wantWorked {
					t.Fatalf("value %d worked on %d times, want %d", v.i, v.worked, wantWorked)
				}
				want++
			}
			if want != n {
				t.Fatalf("next returned %d values, want %d", want, n)
			}
			if got, w := works.Load(), int64(n-(n+2)/3); got != w {
				t.Fatalf("work ran %d times, want %d", got, w)
			}
		})
	}
}

func TestPipelineClose(t *testing.T) {
	p := newPipeline(2, 4, func(v *testValue) { v.worked++ })
	for i := range 3 {
		if err := p.submit(testValue{i: i}, i != 1); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	p.close()
	for i := range 3 {
		v, ok := p.next()
		if !ok || v.i != i {
			t.Fatalf("next = %v, %v; want value %d, true", v, ok, i)
		}
	}
	for range 2 {
		if v, ok := p.next(); ok || v != (testValue{}) {
			t.Fatalf("next after the last value = %v, %v; want zero, false", v, ok)
		}
	}
	waitNoWorkers(t)

	empty := newPipeline(2, 4, func(*testValue) {})
	empty.close()
	if _, ok := empty.next(); ok {
		t.Fatal("next on an empty closed pipeline returned a value")
	}
	waitNoWorkers(t)
}

// A producer blocked on a full pipeline returns once the consumer stops
// it; what was queued before still comes back, worked on and in order, and
// every worker ends.
func TestPipelineStopBlockedProducer(t *testing.T) {
	const workers, depth = 4, 2
	gate := make(chan struct{})
	p := newPipeline(workers, depth, func(v *testValue) {
		<-gate
		v.worked++
	})
	var queued atomic.Int64
	done := make(chan error, 1)
	go func() {
		defer p.close()
		for i := 0; ; i++ {
			if err := p.submit(testValue{i: i}, true); err != nil {
				done <- err
				return
			}
			queued.Add(1)
		}
	}()
	// Nothing is taken back, so the producer fills order and blocks.
	waitFor(t, "the producer to block in submit", func() bool {
		return goroutines("(*pipeline[...]).submit(", true) == 1
	})
	p.stop()
	select {
	case err := <-done:
		if !errors.Is(err, errStopped) {
			t.Fatalf("submit after stop: %v, want errStopped", err)
		}
	case <-time.After(stuck):
		t.Fatal("submit still blocked after stop")
	}
	close(gate)
	var n int
	for {
		v, ok := p.next()
		if !ok {
			break
		}
		if v.i != n || v.worked != 1 {
			t.Fatalf("drained value %d worked on %d times, want value %d worked on once", v.i, v.worked, n)
		}
		n++
	}
	if n != depth || int64(n) != queued.Load() {
		t.Fatalf("drained %d values, %d were queued, depth %d", n, queued.Load(), depth)
	}
	waitNoWorkers(t)
}

// Once stop was called submit queues nothing, even with room to spare.
func TestPipelineSubmitAfterStop(t *testing.T) {
	var works atomic.Int64
	p := newPipeline(2, 64, func(*testValue) { works.Add(1) })
	p.stop()
	p.stop() // a second stop is harmless
	for i := range 100 {
		if err := p.submit(testValue{i: i}, i%2 == 0); !errors.Is(err, errStopped) {
			t.Fatalf("submit %d after stop: %v, want errStopped", i, err)
		}
	}
	p.close()
	if v, ok := p.next(); ok {
		t.Fatalf("next returned value %d submitted after stop", v.i)
	}
	if n := works.Load(); n != 0 {
		t.Fatalf("work ran %d times on values submitted after stop", n)
	}
	waitNoWorkers(t)
}

// waitNoWorkers waits until every pipeline worker goroutine has ended; a
// worker marks itself done just before it returns, so this polls.
func waitNoWorkers(t *testing.T) {
	t.Helper()
	waitFor(t, "every pipeline worker to end", func() bool {
		return goroutines("image.newPipeline[", false) == 0
	})
}

// waitFor polls cond: the tests use it only for what no channel reports,
// a goroutine blocking or ending.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(stuck)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s; goroutines:\n%s", what, stacks())
		}
		time.Sleep(time.Millisecond)
	}
}

// goroutines counts the goroutines whose stack mentions fn; only those
// blocked on a channel send or a select when blocked.
func goroutines(fn string, blocked bool) int {
	var count int
	for _, g := range strings.Split(stacks(), "\n\n") {
		state, _, _ := strings.Cut(g, "\n")
		if strings.Contains(g, fn) && (!blocked ||
			strings.Contains(state, " [select") || strings.Contains(state, " [chan send")) {
			count++
		}
	}
	return count
}

// stacks returns the stacks of all goroutines.
func stacks() string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}
