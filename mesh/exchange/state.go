package exchange

import (
	"fmt"
	"math/bits"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshcast/meshcast/content"
)

// Events reach the Run goroutine from the API and from peer goroutines.
type event any

type (
	evJoin struct {
		s     *Swarm
		opt   JoinOptions
		reply chan *Swarm
	}
	evOffer struct {
		swarm SwarmID
		index int
	}
	evSpread struct {
		swarm SwarmID
		on    bool
	}
	evLeave  struct{ swarm SwarmID }
	evPeerUp struct {
		id peer.ID
		w  *peerWriter
	}
	evPeerDown struct {
		id peer.ID
		w  *peerWriter // nil: whatever writer the peer has
	}
	evProtocolError struct {
		id  peer.ID
		err error
	}
	evMsg struct {
		id      peer.ID
		typ     byte
		swarm   SwarmID
		indexes []int
		bits    []byte
		count   int
	}
	evPiece struct {
		id     peer.ID
		swarm  SwarmID
		index  int
		bytes  int
		result pieceResult
		err    error
	}
	// evFunc runs fn on the engine goroutine (tests inspect state).
	evFunc struct{ fn func() }
	// evWaitSpread registers a WaitSpread call.
	evWaitSpread struct {
		swarm SwarmID
		w     spreadWaiter
	}
	evSent struct {
		id        peer.ID
		w         *peerWriter
		swarm     SwarmID
		index     int
		pushed    bool
		cancelled bool
	}
)

// peerState is what the engine knows of one connected peer.
type peerState struct {
	id         peer.ID
	w          *peerWriter
	inflight   int       // our requests it has not answered
	progressAt time.Time // last piece from it, or when we started waiting
	stalled    bool      // timed out: one request at a time until it delivers
	recallAt   time.Time // when its requests were cancelled, waiting for its reject; zero: none
	serving    int       // its requests queued at our writer
	strikes    int
	backoff    time.Time // it rejected us: do not ask before this
	sent       map[SwarmID]bool
}

// swarm is the engine's state of one joined swarm.
type swarm struct {
	h       *Swarm
	chunks  []content.ChunkRef
	have    bitset
	nhave   int
	adopted bitset // held since a duplicate piece showed the store had them (see piece)
	pending map[int]*pend
	pendBit bitset
	avail   []int32
	members map[peer.ID]*member
	spread  bool
	pushed  map[int]push // spread: pushed, not yet announced by anyone
	backlog []int        // spread: waiting for a peer with room
	haves   []int        // to announce
	waiters []spreadWaiter
}

// spreadWaiter is a WaitSpread call waiting for the chunks only this node
// holds to fall to limit.
type spreadWaiter struct {
	limit int
	ch    chan struct{}
}

// unspread is how many chunks of a spreading seeder no member is known to
// hold yet: pushed and not announced, or waiting for room. With no member
// connected there is nobody to spread to, and nothing to wait for.
func (s *swarm) unspread() int {
	if !s.spread || len(s.members) == 0 {
		return 0
	}
	return len(s.pushed) + len(s.backlog)
}

// wakeWaiters releases the WaitSpread calls whose limit is reached.
func (s *swarm) wakeWaiters() {
	if len(s.waiters) == 0 {
		return
	}
	n := s.unspread()
	kept := s.waiters[:0]
	for _, w := range s.waiters {
		if n <= w.limit {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(s.waiters[len(kept):])
	s.waiters = kept
}

type pend struct {
	peer     peer.ID
	at       time.Time
	extra    peer.ID // endgame: a second peer asked for the same chunk
	recalled bool    // cancelled at a slow peer: asked elsewhere when it rejects
}

type push struct {
	at time.Time
	to peer.ID
}

type member struct {
	bits  bitset
	pushQ int
}

// handle applies one event to the engine's state. It and every method it
// calls run on the Run goroutine.
func (e *Engine) handle(ev event) {
	now := time.Now()
	switch ev := ev.(type) {
	case evJoin:
		e.join(ev, now)
	case evOffer:
		e.offer(ev, now)
	case evSpread:
		e.setSpread(ev, now)
	case evWaitSpread:
		e.waitSpread(ev)
	case evLeave:
		e.leave(ev)
	case evPeerUp:
		e.addPeer(ev, now)
	case evPeerDown:
		if p := e.peers[ev.id]; p != nil && (ev.w == nil || p.w == ev.w) {
			e.dropPeer(p, now)
		}
	case evProtocolError:
		if p := e.peers[ev.id]; p != nil {
			e.log.Warn("exchange: peer broke the protocol; dropping it", "peer", ev.id, "err", ev.err)
			e.dropPeer(p, now)
		}
	case evMsg:
		if p := e.peers[ev.id]; p != nil {
			e.message(p, ev, now)
		}
	case evPiece:
		e.piece(ev, now)
	case evSent:
		e.sent(ev, now)
	case evFunc:
		ev.fn()
	}
}

// offer records a chunk the store received from elsewhere than a peer;
// a spreading seeder pushes it to a member.
func (e *Engine) offer(ev evOffer, now time.Time) {
	if s := e.swarms[ev.swarm]; s != nil && ev.index >= 0 && ev.index < len(s.chunks) {
		e.gotChunk(s, ev.index, "")
		if s.spread {
			e.push(s, ev.index, now)
		}
	}
}

// setSpread switches a swarm's spread mode: on, it pushes what no member
// holds yet; off, it forgets its pushes and announces all it holds.
func (e *Engine) setSpread(ev evSpread, now time.Time) {
	s := e.swarms[ev.swarm]
	if s == nil || s.spread == ev.on {
		return
	}
	s.spread = ev.on
	if ev.on {
		// Push what no member holds yet.
		for i := range s.chunks {
			if s.have.has(i) && s.avail[i] == 0 {
				s.backlog = append(s.backlog, i)
			}
		}
		e.pump(s, now)
		return
	}
	s.backlog = nil
	clear(s.pushed)
	for _, p := range e.peers {
		e.sendBitfield(p, s)
	}
}

// waitSpread releases a WaitSpread call at once if its limit is reached
// (or the swarm is gone), and keeps it waiting otherwise.
func (e *Engine) waitSpread(ev evWaitSpread) {
	s := e.swarms[ev.swarm]
	if s == nil || s.unspread() <= ev.w.limit {
		close(ev.w.ch)
		return
	}
	s.waiters = append(s.waiters, ev.w)
}

// leave forgets a swarm: its WaitSpread calls return, and its requests
// no longer count against the peers they wait on.
func (e *Engine) leave(ev evLeave) {
	if s := e.swarms[ev.swarm]; s != nil {
		delete(e.swarms, ev.swarm)
		e.lists.Delete(ev.swarm)
		for _, w := range s.waiters {
			close(w.ch)
		}
		s.waiters = nil
		for _, pd := range s.pending {
			for _, id := range []peer.ID{pd.peer, pd.extra} {
				if p := e.peers[id]; p != nil && p.inflight > 0 {
					p.inflight--
				}
			}
		}
	}
}

// addPeer takes on a peer's outbound stream, replacing (and dropping) a
// peer of the same id, and sends it our bitfield of every swarm.
func (e *Engine) addPeer(ev evPeerUp, now time.Time) {
	if old := e.peers[ev.id]; old != nil {
		e.dropPeer(old, now)
	}
	p := &peerState{id: ev.id, w: ev.w, sent: map[SwarmID]bool{}}
	e.peers[ev.id] = p
	e.live.Store(ev.id, struct{}{})
	e.npeers.Store(int64(len(e.peers)))
	ev.w.start()
	for _, s := range e.swarms {
		e.sendBitfield(p, s)
	}
}

func (e *Engine) join(ev evJoin, now time.Time) {
	if s := e.swarms[ev.s.ID]; s != nil {
		ev.reply <- s.h
		return
	}
	n := len(ev.s.Chunks)
	s := &swarm{
		h: ev.s, chunks: ev.s.Chunks, have: newBitset(n), adopted: newBitset(n), pending: map[int]*pend{}, pendBit: newBitset(n),
		avail: make([]int32, n), members: map[peer.ID]*member{}, spread: ev.opt.Spread, pushed: map[int]push{},
	}
	for i, c := range s.chunks {
		if e.store.Has(c.ID) {
			s.have.set(i)
			s.nhave++
			if s.spread {
				s.backlog = append(s.backlog, i)
			}
		}
	}
	s.h.have.Store(int64(s.nhave))
	if s.nhave == n {
		close(s.h.done)
	}
	e.swarms[s.h.ID] = s
	e.lists.Store(s.h.ID, s.chunks)
	for _, p := range e.peers {
		e.sendBitfield(p, s)
	}
	ev.reply <- s.h
}

// sendBitfield tells p what we hold of s; a spreading seeder says nothing
// (an empty bitfield still makes it a member).
func (e *Engine) sendBitfield(p *peerState, s *swarm) {
	bits := newBitset(len(s.chunks))
	if !s.spread {
		bits = s.have
	}
	p.w.queue(wop{typ: msgBitfield, swarm: s.h.ID, count: len(s.chunks), bits: bits.bytes(len(s.chunks))})
	p.sent[s.h.ID] = true
}

func (e *Engine) dropPeer(p *peerState, now time.Time) {
	delete(e.peers, p.id)
	e.live.Delete(p.id)
	e.reads.Delete(p.id)
	e.npeers.Store(int64(len(e.peers)))
	p.w.close()
	for _, s := range e.swarms {
		if m := s.members[p.id]; m != nil {
			for i := range s.chunks {
				if m.bits.has(i) {
					s.avail[i]--
				}
			}
			delete(s.members, p.id)
		}
		e.reissue(s, p.id, now)
		// What we pushed to it and it never announced goes to another.
		for i, ps := range s.pushed {
			if ps.to == p.id {
				delete(s.pushed, i)
				e.push(s, i, now)
			}
		}
	}
}

// A recalled peer's requests are asked elsewhere without its answer when
// it sends nothing for recallGrace × stallAfter, or answers neither with
// their pieces nor with a reject for recallMax × stallAfter.
const (
	recallGrace = 4
	recallMax   = 16
)

// latest returns the later of two times.
func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// recall cancels at p every request of s that waits on it; they stay
// pending there until its reject or its pieces arrive.
func (e *Engine) recall(s *swarm, p *peerState) {
	var cancel []int
	for i, pd := range s.pending {
		if pd.peer == p.id || pd.extra == p.id {
			pd.recalled = true
			cancel = append(cancel, i)
		}
	}
	if len(cancel) > 0 {
		p.w.queue(wop{typ: msgCancel, swarm: s.h.ID, idx: cancel})
	}
}

// reissue forgets every request of s that waits on id.
func (e *Engine) reissue(s *swarm, id peer.ID, now time.Time) {
	moved := false
	var cancel []int
	for i, pd := range s.pending {
		switch {
		case pd.peer == id && pd.extra != "":
			pd.peer, pd.extra, pd.at = pd.extra, "", now
			moved = true
		case pd.peer == id:
			delete(s.pending, i)
			s.pendBit.clear(i)
			e.reissued.Add(1)
			moved = true
		case pd.extra == id:
			pd.extra = ""
		default:
			continue
		}
		cancel = append(cancel, i)
	}
	// A peer that is still connected (it was slow, not gone) is told to
	// drop what it has not sent yet: what it sends after we asked
	// elsewhere is a duplicate.
	if p := e.peers[id]; p != nil && len(cancel) > 0 {
		p.w.queue(wop{typ: msgCancel, swarm: s.h.ID, idx: cancel})
	}
	if moved {
		e.scheduleAll(s, now)
	}
}

// message handles a control message from peer p, by its kind.
func (e *Engine) message(p *peerState, ev evMsg, now time.Time) {
	s := e.swarms[ev.swarm]
	switch ev.typ {
	case msgBitfield:
		e.handleBitfield(p, s, ev, now)
	case msgHave:
		e.handleHave(p, s, ev, now)
	case msgRequest:
		e.handleRequest(p, s, ev)
	case msgCancel:
		e.handleCancel(p, ev, now)
	case msgReject:
		e.handleReject(p, s, ev, now)
	}
}

// handleBitfield makes p a member of s, or replaces what it holds, and
// asks it for chunks; a bad bitfield drops p.
func (e *Engine) handleBitfield(p *peerState, s *swarm, ev evMsg, now time.Time) {
	if s == nil {
		return
	}
	if ev.count != len(s.chunks) {
		e.handle(evProtocolError{id: p.id, err: fmt.Errorf("%w: bitfield of %d chunks for a swarm of %d", ErrWire, ev.count, len(s.chunks))})
		return
	}
	bits, ok := bitsetFrom(ev.bits, ev.count)
	if !ok {
		e.handle(evProtocolError{id: p.id, err: fmt.Errorf("%w: bitfield with bits past its end", ErrWire)})
		return
	}
	m := s.members[p.id]
	newMember := m == nil
	if newMember {
		m = &member{}
		s.members[p.id] = m
	} else {
		for i := range s.chunks {
			if m.bits.has(i) {
				s.avail[i]--
			}
		}
	}
	m.bits = bits
	for i := range s.chunks {
		if bits.has(i) {
			s.avail[i]++
			delete(s.pushed, i)
		}
	}
	// A new member may have dropped ours: it had not joined when we
	// sent it. Answer once more; members already known need not.
	if newMember || !p.sent[s.h.ID] {
		e.sendBitfield(p, s)
	}
	e.schedule(p, s, now)
	if s.spread {
		e.pump(s, now)
	}
}

// handleHave records the chunks member p announced, which ends our
// pushes of them, and asks it for chunks.
func (e *Engine) handleHave(p *peerState, s *swarm, ev evMsg, now time.Time) {
	m := s.memberOf(p.id)
	if m == nil {
		return
	}
	for _, i := range ev.indexes {
		if i < len(s.chunks) && !m.bits.has(i) {
			m.bits.set(i)
			s.avail[i]++
		}
		if ps, ok := s.pushed[i]; ok {
			if ps.to == p.id {
				average(&e.pushLatency, now.Sub(ps.at))
				e.pushLatencyNS.Store(int64(e.pushLatency))
			}
			delete(s.pushed, i)
		}
	}
	e.schedule(p, s, now)
}

// handleRequest queues the pieces p asked for that we hold, up to
// MaxServe, and rejects the rest.
func (e *Engine) handleRequest(p *peerState, s *swarm, ev evMsg) {
	var reject []int
	for _, i := range ev.indexes {
		if s == nil || i >= len(s.chunks) || !s.have.has(i) || p.serving >= e.cfg.MaxServe {
			reject = append(reject, i)
			continue
		}
		p.serving++
		p.w.queuePiece(pieceOp{swarm: ev.swarm, index: i, id: s.chunks[i].ID})
	}
	if len(reject) == 0 {
		return
	}
	if !p.w.queueReject(ev.swarm, reject) {
		// Its requests outrun its reading of our answers: the rejects
		// would queue without bound.
		e.handle(evProtocolError{id: p.id, err: fmt.Errorf("%w: more than %d requests rejected and not yet read", ErrWire, maxQueuedRejects)})
		return
	}
	e.rejected.Add(int64(len(reject)))
}

// handleCancel takes the pieces p cancelled off its queue.
func (e *Engine) handleCancel(p *peerState, ev evMsg, now time.Time) {
	// What is still queued is dropped and rejected. The reject goes
	// out after any piece of those indexes already being written, so
	// the requester may ask elsewhere for what it names without
	// getting it twice.
	var reject []int
	for _, op := range p.w.drop(ev.swarm, ev.indexes) {
		e.sent(evSent{id: p.id, w: p.w, swarm: op.swarm, index: op.index, pushed: op.pushed, cancelled: true}, now)
		if !op.pushed {
			reject = append(reject, op.index)
		}
	}
	if len(reject) > 0 {
		p.w.queue(wop{typ: msgReject, swarm: ev.swarm, idx: reject})
	}
}

// handleReject forgets the requests p turned away, so the members of s
// are asked for them again, p itself after a short backoff.
func (e *Engine) handleReject(p *peerState, s *swarm, ev evMsg, now time.Time) {
	if s == nil {
		return
	}
	refused := false
	for _, i := range ev.indexes {
		if pd := s.pending[i]; pd != nil && (pd.peer == p.id || pd.extra == p.id) {
			if pd.recalled {
				e.reissued.Add(1)
				pd.recalled = false
			}
			e.unpend(s, i, p.id)
			refused = true
		}
	}
	if !refused {
		return // the answer to a cancel of requests already answered
	}
	if p.inflight == 0 {
		p.recallAt = time.Time{}
	}
	p.backoff = now.Add(50 * time.Millisecond)
	e.scheduleAll(s, now)
}

func (s *swarm) memberOf(id peer.ID) *member {
	if s == nil {
		return nil
	}
	return s.members[id]
}

// unpend drops the request for chunk i at peer id (the chunk arrived from
// it, or it refused or lost it); other requests for i stay.
func (e *Engine) unpend(s *swarm, i int, id peer.ID) {
	pd := s.pending[i]
	if pd == nil || (id != pd.peer && id != pd.extra) {
		return
	}
	if p := e.peers[id]; p != nil && p.inflight > 0 {
		p.inflight--
	}
	switch {
	case id == pd.extra:
		pd.extra = ""
	case pd.extra != "":
		pd.peer, pd.extra = pd.extra, ""
	default:
		delete(s.pending, i)
		s.pendBit.clear(i)
	}
}

func (e *Engine) piece(ev evPiece, now time.Time) {
	p := e.peers[ev.id]
	s := e.swarms[ev.swarm]
	if p != nil {
		p.progressAt, p.stalled, p.recallAt = now, false, time.Time{}
	}
	if s == nil || ev.index >= len(s.chunks) {
		return
	}
	pd := s.pending[ev.index]
	if pd != nil && p != nil && pd.peer == p.id {
		e.sampleLatency(now.Sub(pd.at))
	}
	// A piece we did not ask this peer for was pushed by a spreading
	// seeder, which waits for our announcement of it.
	pushed := pd == nil || (pd.peer != ev.id && pd.extra != ev.id)
	if p != nil {
		e.unpend(s, ev.index, p.id)
	}
	from := ev.id
	if pushed {
		from = ""
	}
	switch ev.result {
	case pieceOK:
		switch {
		case s.adopted.has(ev.index):
			// The copy that was stored, overtaken by a duplicate read
			// after it was stored, which adopted the chunk (below): its
			// bytes stay received, once.
			s.adopted.clear(ev.index)
		case s.have.has(ev.index):
			// Another peer's copy was stored first.
			e.received.Add(-int64(ev.bytes))
			e.receivedN.Add(-1)
			e.dup.Add(int64(ev.bytes))
		default:
			e.gotChunk(s, ev.index, from)
		}
	case pieceDuplicate:
		// The store held the chunk already, and this swarm may not know:
		// it came after the join looked (a piece for another swarm that
		// shares it, another writer). The swarm holds it now, and
		// announces it; else it asked for it again and again and was
		// never done. Its bytes were counted as a duplicate, not received.
		if !s.have.has(ev.index) {
			s.adopted.set(ev.index)
			e.gotChunk(s, ev.index, from)
		}
	case pieceBad:
		e.log.Warn("exchange: peer sent a chunk that does not verify", "peer", ev.id, "err", ev.err)
		if p != nil && e.strike(p, ev.err, now) {
			p = nil
		}
	case pieceStoreFail:
		e.log.Error("exchange: cannot store a verified chunk", "err", ev.err)
	}
	if s.have.has(ev.index) {
		e.cancelElsewhere(s, ev.index)
	}
	if p != nil {
		for _, s := range e.swarms {
			e.schedule(p, s, now)
		}
	}
	if ev.result != pieceOK {
		e.scheduleAll(s, now)
	}
}

// strike counts a bad chunk from p; at Config.Strikes it bans p (drops it
// and tells the Banner) and reports true.
func (e *Engine) strike(p *peerState, reason error, now time.Time) (banned bool) {
	if p.strikes++; p.strikes < e.cfg.Strikes {
		return false
	}
	e.bans.Add(1)
	e.log.Warn("exchange: banning peer for bad chunks", "peer", p.id, "strikes", p.strikes)
	e.dropPeer(p, now)
	if e.banner != nil {
		e.banner.Ban(p.id, fmt.Errorf("%d chunks that do not verify, the last: %w", p.strikes, reason))
	}
	return true
}

// cancelElsewhere tells the peers still asked for chunk i of s, which is
// held now, that it arrived from elsewhere, and forgets the request.
func (e *Engine) cancelElsewhere(s *swarm, i int) {
	pd := s.pending[i]
	if pd == nil {
		return
	}
	for _, id := range []peer.ID{pd.peer, pd.extra} {
		if q := e.peers[id]; q != nil && id != "" {
			q.w.queue(wop{typ: msgCancel, swarm: s.h.ID, idx: []int{i}})
			if q.inflight > 0 {
				q.inflight--
			}
		}
	}
	delete(s.pending, i)
	s.pendBit.clear(i)
}

// gotChunk records that chunk i of s is now held; from names the peer it
// came from, if it need not be told (a pushed chunk is announced to its
// sender too: that is how the seeder learns it was taken).
func (e *Engine) gotChunk(s *swarm, i int, from peer.ID) {
	if s.have.has(i) {
		return
	}
	s.have.set(i)
	s.nhave++
	s.h.have.Store(int64(s.nhave))
	if m := s.members[from]; m != nil && !m.bits.has(i) {
		m.bits.set(i)
		s.avail[i]++
	}
	if !s.spread {
		s.haves = append(s.haves, i)
	}
	if s.nhave == len(s.chunks) {
		close(s.h.done)
	}
}

func (e *Engine) sent(ev evSent, now time.Time) {
	p := e.peers[ev.id]
	if p == nil || p.w != ev.w {
		return
	}
	s := e.swarms[ev.swarm]
	if ev.pushed {
		if m := s.memberOf(p.id); m != nil {
			m.pushQ--
			if ev.cancelled && m.bits.has(ev.index) {
				m.bits.clear(ev.index)
				s.avail[ev.index]--
			}
		}
		if s != nil && s.spread {
			e.pump(s, now)
		}
		return
	}
	if p.serving > 0 {
		p.serving--
	}
}

// flushHaves announces newly held chunks to every member that lacks them.
func (e *Engine) flushHaves() {
	for _, s := range e.swarms {
		if len(s.haves) == 0 {
			continue
		}
		for id, m := range s.members {
			p := e.peers[id]
			if p == nil {
				continue
			}
			var idx []int
			for _, i := range s.haves {
				if !m.bits.has(i) {
					idx = append(idx, i)
				}
			}
			if len(idx) > 0 {
				p.w.queue(wop{typ: msgHave, swarm: s.h.ID, idx: idx})
			}
		}
		s.haves = s.haves[:0]
	}
}

// scheduleAll gives every member of s the chance to take requests.
func (e *Engine) scheduleAll(s *swarm, now time.Time) {
	for id := range s.members {
		if p := e.peers[id]; p != nil {
			e.schedule(p, s, now)
		}
	}
}

// schedule asks p for chunks of s it holds and we lack, up to its limit.
func (e *Engine) schedule(p *peerState, s *swarm, now time.Time) {
	m := s.members[p.id]
	if m == nil || s.nhave == len(s.chunks) || now.Before(p.backoff) {
		return
	}
	limit := e.cfg.MaxRequests
	if p.stalled {
		limit = 1
	}
	var reqs []int
	for p.inflight < limit {
		i := s.pick(m.bits, e.rng.IntN(len(m.bits)))
		if i < 0 {
			i = s.endgame(m.bits, p.id, now, e.endgameAfter())
			if i < 0 {
				break
			}
			s.pending[i].extra = p.id
		} else {
			s.pending[i] = &pend{peer: p.id, at: now}
			s.pendBit.set(i)
		}
		if p.inflight == 0 {
			p.progressAt = now
		}
		p.inflight++
		reqs = append(reqs, i)
	}
	if len(reqs) > 0 {
		p.w.queue(wop{typ: msgRequest, swarm: s.h.ID, idx: reqs})
	}
}

// pick returns the rarest chunk that the peer holds and we neither hold
// nor wait for, scanning from word start; -1 if there is none.
func (s *swarm) pick(theirs bitset, start int) int {
	best, bestAvail := -1, int32(1<<30)
	n := len(theirs)
	for k := 0; k < n; k++ {
		w := (start + k) % n
		cand := theirs[w] &^ s.have[w] &^ s.pendBit[w]
		for cand != 0 {
			b := bits.TrailingZeros64(cand)
			cand &= cand - 1
			i := w*64 + b
			if a := s.avail[i]; a < bestAvail {
				best, bestAvail = i, a
				if a <= 1 {
					return best
				}
			}
		}
	}
	return best
}

// endgame returns a chunk that the peer holds and that another peer was
// asked for more than after ago, once everything missing is asked for.
func (s *swarm) endgame(theirs bitset, id peer.ID, now time.Time, after time.Duration) int {
	missing := len(s.chunks) - s.nhave
	if s.nhave+len(s.pending) < len(s.chunks) || missing > max(4, len(s.chunks)/100) {
		return -1
	}
	for i, pd := range s.pending {
		if pd.extra == "" && pd.peer != id && theirs.has(i) && now.Sub(pd.at) > after {
			return i
		}
	}
	return -1
}

// push hands chunk i to the member with the shortest push queue that
// lacks it; with none free it waits in the backlog.
func (e *Engine) push(s *swarm, i int, now time.Time) {
	var best *member
	var bestID peer.ID
	lacking := false
	for id, m := range s.members {
		if m.bits.has(i) || e.peers[id] == nil {
			continue
		}
		lacking = true
		if m.pushQ < e.cfg.MaxPush && (best == nil || m.pushQ < best.pushQ || (m.pushQ == best.pushQ && e.rng.IntN(2) == 0)) {
			best, bestID = m, id
		}
	}
	if best == nil {
		// Wait for room, or for a first member.
		if lacking || len(s.members) == 0 {
			s.backlog = append(s.backlog, i)
		}
		return
	}
	best.pushQ++
	best.bits.set(i) // it will hold it; never push it there twice
	s.avail[i]++
	s.pushed[i] = push{at: now, to: bestID}
	e.peers[bestID].w.queuePiece(pieceOp{swarm: s.h.ID, index: i, id: s.chunks[i].ID, pushed: true})
}

// pump retries the backlog of a spreading seeder.
func (e *Engine) pump(s *swarm, now time.Time) {
	if len(s.backlog) == 0 {
		return
	}
	b := s.backlog
	s.backlog = nil
	for k, i := range b {
		before := len(s.backlog)
		e.push(s, i, now)
		if len(s.backlog) > before {
			// Nobody has room: keep the rest in order.
			s.backlog = append(s.backlog, b[k+1:]...)
			return
		}
	}
}

// timeouts moves requests off peers that stopped delivering and pushes
// again chunks nobody announced.
//
// A peer that delivers no piece for stallAfter is recalled: its requests
// are cancelled there, and asked elsewhere as its reject of them arrives
// (see msgCancel). A piece it was already sending arrives before that
// reject and is no duplicate: a loaded peer is usually slow, not gone.
// One that sends no byte at all for recallGrace × stallAfter after the
// recall, or answers neither way for recallMax × stallAfter (it talks
// but does not answer), has its requests asked elsewhere at once; one
// that is gone (its connection closed) has them asked elsewhere when it
// goes.
func (e *Engine) timeouts(now time.Time) {
	for _, p := range e.peers {
		switch {
		case p.inflight == 0:
		case p.recallAt.IsZero() && now.Sub(p.progressAt) > e.stallAfter():
			e.log.Debug("exchange: peer is slow; recalling its requests", "peer", p.id, "inflight", p.inflight)
			p.stalled, p.recallAt = true, now
			for _, s := range e.swarms {
				e.recall(s, p)
			}
		case !p.recallAt.IsZero() && (now.Sub(latest(p.recallAt, e.lastRead(p.id))) > recallGrace*e.stallAfter() ||
			now.Sub(p.recallAt) > recallMax*e.stallAfter()):
			e.log.Debug("exchange: peer does not answer; asking others", "peer", p.id, "inflight", p.inflight)
			p.inflight = 0
			p.progressAt, p.recallAt = now, time.Time{}
			for _, s := range e.swarms {
				e.reissue(s, p.id, now)
			}
		}
	}
	for _, s := range e.swarms {
		// Peers that turned us away (backoff) get asked again.
		if s.nhave < len(s.chunks) {
			e.scheduleAll(s, now)
		}
		if !s.spread {
			continue
		}
		// A push its receiver has not announced for long went astray.
		for i, ps := range s.pushed {
			if now.Sub(ps.at) > e.repushAfter() {
				delete(s.pushed, i)
				e.push(s, i, now)
			}
		}
		e.pump(s, now)
	}
}

// sampleLatency folds the time a request took into a moving average.
func (e *Engine) sampleLatency(d time.Duration) {
	average(&e.latency, d)
	e.latencyNS.Store(int64(e.latency))
}

// average folds d into the moving average *avg (weight 1/8; the first
// sample starts it).
func average(avg *time.Duration, d time.Duration) {
	if *avg == 0 {
		*avg = d
	} else {
		*avg += (d - *avg) / 8
	}
}

// stallAfter is how long a peer with requests outstanding may deliver
// nothing before they are asked of others: RequestTimeout, or 8 × the
// mean request latency on a site so loaded that requests take longer
// (asking elsewhere then only adds duplicates and load).
func (e *Engine) stallAfter() time.Duration {
	return max(e.cfg.RequestTimeout, 8*e.latency)
}

// repushAfter is how long a spreading seeder waits for a pushed chunk to
// be announced before it pushes it to another member: RepushAfter, or 8 ×
// the mean time from push to announcement on a loaded site.
func (e *Engine) repushAfter() time.Duration {
	return max(e.cfg.RepushAfter, 8*e.pushLatency)
}

// endgameAfter is how long a request must be outstanding before the last
// chunks are asked of a second peer: well past the usual, so that only a
// straggler is duplicated.
func (e *Engine) endgameAfter() time.Duration {
	return max(4*e.latency, 100*time.Millisecond)
}
