package image

import (
	"errors"
	"sync"
)

// pipeline is the ordered worker pool both halves of the package run: the
// writer compresses blocks on it, the reader decompresses them. One
// goroutine submits values, a pool of workers calls work on those that need
// it, and one goroutine takes the values back with next, in submission
// order, so the output stays sequential (and, for the writer, independent
// of the worker count) while every core works.
//
// Memory is bounded by depth, whatever the worker count: at most depth
// values wait in order to be taken back, and besides them only the value
// submit is handing over and the one next is waiting for are in the
// pipeline, depth+2 in all. A value enters order before it is queued for a
// worker and leaves it only for a next that waits until its work is done,
// so the values queued for or held by the workers are among those.
type pipeline[T any] struct {
	work     func(*T)
	todo     chan *slot[T] // values for the workers
	order    chan *slot[T] // every value, in submission order
	stopped  chan struct{}
	stopOnce sync.Once
	workers  sync.WaitGroup
}

// A slot carries one value through the pipeline. ready is closed when a
// worker is done with it; nil when it needs no work.
type slot[T any] struct {
	v     T
	ready chan struct{}
}

// errStopped: the consumer stopped the pipeline; the producer should return.
var errStopped = errors.New("image: pipeline stopped")

func newPipeline[T any](workers, depth int, work func(*T)) *pipeline[T] {
	p := &pipeline[T]{
		work:    work,
		todo:    make(chan *slot[T], depth),
		order:   make(chan *slot[T], depth),
		stopped: make(chan struct{}),
	}
	for range workers {
		p.workers.Add(1)
		go func() {
			defer p.workers.Done()
			for s := range p.todo {
				p.work(&s.v)
				close(s.ready)
			}
		}()
	}
	return p
}

// submit queues v, for a worker first when needsWork. It returns
// errStopped, without queueing, once stop was called.
func (p *pipeline[T]) submit(v T, needsWork bool) error {
	s := &slot[T]{v: v}
	if needsWork {
		s.ready = make(chan struct{})
	}
	// A select picks at random among ready cases, so a stop must be seen
	// first; the select below then releases a producer blocked on a full
	// pipeline.
	select {
	case <-p.stopped:
		return errStopped
	default:
	}
	select {
	case p.order <- s:
	case <-p.stopped:
		return errStopped
	}
	if needsWork {
		// The slot is in order already, so it must reach a worker even
		// after a stop: the consumer may be waiting for it.
		p.todo <- s
	}
	return nil
}

// close tells the pipeline no more values come; only the producer calls it.
func (p *pipeline[T]) close() {
	close(p.todo)
	close(p.order)
}

// next returns the next value in submission order once its work is done;
// false when the producer closed the pipeline and every value was taken.
func (p *pipeline[T]) next() (T, bool) {
	s, ok := <-p.order
	if !ok {
		p.workers.Wait()
		var zero T
		return zero, false
	}
	if s.ready != nil {
		<-s.ready
	}
	return s.v, true
}

// stop makes submit fail from now on, so a producer blocked on a full
// pipeline returns. The consumer must still take the values already queued
// (next until false) so the workers finish.
func (p *pipeline[T]) stop() { p.stopOnce.Do(func() { close(p.stopped) }) }
