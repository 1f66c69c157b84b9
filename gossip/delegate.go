package gossip

import (
	"bytes"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate is Gossip seen by memberlist: its memberlist.Delegate and
// memberlist.EventDelegate. A separate type keeps these methods out of
// Gossip's API.
//
// The contracts, which every method below keeps (STYLE.md 5):
//
//   - Never block. memberlist calls NotifyMsg and GetBroadcasts on its
//     packet-handling goroutines and the Notify* event methods while it
//     holds its member-table lock: a method that waited would stall failure
//     detection for the whole member. So they only take Gossip.mu (held
//     briefly, never while calling memberlist), the dedup cache's and the
//     queues' locks, and hand everything to the reader through the
//     unblocking queues; they do no I/O except logging.
//   - Copy what is kept. memberlist reuses the byte slice given to
//     NotifyMsg and owns the *Node given to the event methods: every byte
//     and IP kept is copied first. Slices returned to memberlist (NodeMeta,
//     GetBroadcasts) are never changed afterwards.
//   - Tolerate any input. NodeMeta and user messages come from the
//     network: decoding errors are logged, counted and survive as
//     Member.MetaErr; nothing panics.
//   - Work during New and after Close. memberlist calls NodeMeta and
//     NotifyJoin (for this member) inside memberlist.Create, before New has
//     g.ml, and its timers may call NotifyLeave after Shutdown: no method
//     uses g.ml, and after Close the event methods drop what they get.
//
// memberlist calls the event methods one at a time, never concurrently, so
// events keep memberlist's order.
type delegate Gossip

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
)

// NodeMeta returns this member's encoded Meta (at most MaxMetaSize bytes,
// memberlist's limit). memberlist calls it when it announces this member.
func (d *delegate) NodeMeta(limit int) []byte {
	g := (*Gossip)(d)
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.wire) > limit { // cannot happen: limit is MaxMetaSize
		return nil
	}
	return g.wire
}

// NotifyMsg receives a user message: a broadcast. A new one is delivered
// on Messages and gossiped on once; a copy seen before is dropped.
func (d *delegate) NotifyMsg(b []byte) {
	g := (*Gossip)(d)
	id, payload, err := decodeBroadcast(b)
	if err != nil {
		if n := g.badMsgs.Add(1); isPowerOf10(n) {
			g.log.Warn("gossip: dropped a user message", "err", err, "bad_so_far", n)
		}
		return
	}
	if !g.dedup.add(id) {
		return
	}
	if n := g.msgs.push(bytes.Clone(payload)); isPowerOf10(n) {
		g.log.Warn("gossip: nobody reads Messages; dropped the oldest", "dropped_so_far", n)
	}
	if !g.cfg.plainBroadcast {
		g.queueBroadcast(bytes.Clone(b))
	}
}

// GetBroadcasts returns queued broadcasts that fit in limit, for
// memberlist to piggyback on its gossip packets.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.bq.get(overhead, limit)
}

// LocalState sends nothing in push/pull: all state is in NodeMeta.
func (d *delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState has nothing to merge.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

// NotifyJoin: n is alive (new, or back after being declared dead or left).
func (d *delegate) NotifyJoin(n *memberlist.Node) { (*Gossip)(d).onNode(EventJoin, n) }

// NotifyUpdate: n's NodeMeta changed.
func (d *delegate) NotifyUpdate(n *memberlist.Node) { (*Gossip)(d).onNode(EventUpdate, n) }

// NotifyLeave: n was declared dead, or left. memberlist v0.7.0 knows which
// but does not say (it never sets Node.State), so Leave puts a leaving flag
// in the member's last NodeMeta: with it, a departure is EventLeave,
// without it EventFail.
func (d *delegate) NotifyLeave(n *memberlist.Node) { (*Gossip)(d).onNode(EventLeave, n) }

// onNode updates the member table from memberlist's report on n and
// queues the event, if any. kind is EventLeave for every departure;
// onNode tells leave from failure.
func (g *Gossip) onNode(kind EventKind, n *memberlist.Node) {
	meta, leaving, err := decodeMeta(n.Meta)
	m := Member{Name: n.Name, Addr: slices.Clone(n.Addr), Port: n.Port, Meta: meta, State: StateAlive, MetaErr: err}

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	prev := g.members[n.Name]
	if err != nil && (prev == nil || prev.MetaErr == nil || prev.MetaErr.Error() != err.Error()) {
		g.log.Warn("gossip: member's status cannot be read", "member", n.Name, "addr", m.Addr, "err", err)
	}
	delete(g.failed, n.Name) // back, or gone again: EventLeave decides
	switch kind {
	case EventJoin:
		if prev == nil || prev.State != StateAlive {
			g.alive.Add(1)
		}
		g.members[n.Name] = &memberState{Member: m, leaving: leaving}
	case EventUpdate:
		if prev == nil { // not seen before: cannot happen, but count it right
			g.alive.Add(1)
			kind = EventJoin
		}
		g.members[n.Name] = &memberState{Member: m, leaving: leaving}
		if prev != nil && prev.Meta == m.Meta && (prev.MetaErr == nil) == (err == nil) &&
			prev.Addr.Equal(m.Addr) && prev.Port == m.Port {
			return // only the leaving flag changed: the leave event follows
		}
	case EventLeave:
		if leaving || (prev != nil && prev.leaving) {
			m.State = StateLeft
		} else {
			kind, m.State = EventFail, StateDead
		}
		if prev != nil && prev.State == StateAlive {
			g.alive.Add(-1)
		}
		if m.State == StateDead {
			g.failed[n.Name] = failure{addr: net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))), at: time.Now()}
		}
		// Departed members are forgotten: Members lists the alive ones,
		// and a member that comes back is new again.
		delete(g.members, n.Name)
	}
	ev := Event{Kind: kind, Member: m}
	ev.Member.Addr = slices.Clone(m.Addr) // the table keeps its own
	if dropped := g.events.push(ev); isPowerOf10(dropped) {
		g.log.Warn("gossip: nobody reads Events; dropped the oldest updates", "dropped_so_far", dropped)
	}
}
