package gossip

import "sync"

// queue hands values from callbacks that must never block (memberlist's
// delegates) to a reader that may be slow or absent. push never blocks: it
// appends to a FIFO in memory; run, on its own goroutine, sends the FIFO's
// head on out, in order. The FIFO holds at most limit values: a push beyond
// that drops one value first, the oldest one that droppable prefers (the
// oldest of all if it prefers none), and counts it.
type queue[T any] struct {
	out       chan T
	limit     int
	droppable func(T) bool  // nil: every value is as good to drop as another
	wake      chan struct{} // 1-buffered: "the FIFO is not empty"; repeats collapse

	mu      sync.Mutex
	items   []T // FIFO, oldest first
	dropped uint64
}

func newQueue[T any](limit int, droppable func(T) bool) *queue[T] {
	return &queue[T]{
		out:       make(chan T),
		limit:     limit,
		droppable: droppable,
		wake:      make(chan struct{}, 1),
	}
}

// push appends v, dropping one older value if the FIFO is full. It reports
// the number of values dropped so far if it dropped one, else 0.
func (q *queue[T]) push(v T) (droppedSoFar uint64) {
	q.mu.Lock()
	if len(q.items) >= q.limit {
		i := 0
		if q.droppable != nil {
			for j, it := range q.items {
				if q.droppable(it) {
					i = j
					break
				}
			}
		}
		var zero T
		copy(q.items[i:], q.items[i+1:])
		q.items[len(q.items)-1] = zero
		q.items = q.items[:len(q.items)-1]
		q.dropped++
		droppedSoFar = q.dropped
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return droppedSoFar
}

// pop removes and returns the FIFO's head.
func (q *queue[T]) pop() (T, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var zero T
	if len(q.items) == 0 {
		return zero, false
	}
	v := q.items[0]
	q.items[0] = zero // let the value go once sent
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil // start over with a fresh array
	}
	return v, true
}

// droppedCount returns the number of values dropped so far.
func (q *queue[T]) droppedCount() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// run sends values on out until done is closed, then closes out. A value
// taken from the FIFO when done closes is lost, as are those still waiting.
func (q *queue[T]) run(done <-chan struct{}) {
	defer close(q.out)
	for {
		v, ok := q.pop()
		if !ok {
			select {
			case <-q.wake:
				continue
			case <-done:
				return
			}
		}
		select {
		case q.out <- v:
		case <-done:
			return
		}
	}
}
