package gossip

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
)

// User broadcasts. memberlist gossips a queued broadcast a limited number of
// times (RetransmitMult × ⌈log10(N+1)⌉ sends, each to one random member), so
// on its own a broadcast reaches only part of the site: about 6 of 9 others
// in a site of 10. Here every member that receives a broadcast for the first
// time queues it once more, so it spreads like memberlist's own membership
// messages do. A message id (origin name, origin boot, sequence) lets each
// member deliver and re-broadcast each message once; the copies that keep
// arriving are dropped.
//
// How sure is "every member"? Once a broadcast has spread, each of the N
// members has sent it k = mult × ⌈log10(N+1)⌉ times to random others, so a
// member receives about k copies, and misses all of them with probability
// about e^-k. memberlist's RetransmitMult of 4 gives k = 8 in a site of 10:
// a miss for 3 in 10 000 members per message, which the tests saw (memberlist
// repairs its own lost messages by push/pull; nothing repairs a broadcast).
// User broadcasts therefore use a multiplier of 8: k = 16 in a site of 10
// (a miss for 1 in 10 million), 32 in a site of 1000, at the cost of N × k
// sends per broadcast, piggybacked on gossip packets. Broadcasts are for
// rare control messages, not bulk data.

// MaxBroadcastSize bounds the payload of Broadcast.
const MaxBroadcastSize = 1024

const (
	// userMsgBroadcast is the first byte of encoding 1 of a user
	// broadcast:
	//
	//	kind     1 byte  = 1
	//	origin   1 byte length (1..MaxFieldLen), the sender's name
	//	boot     8 bytes, random per Gossip instance of the sender
	//	seq      8 bytes, the sender's count of broadcasts
	//	payload  the rest, at most MaxBroadcastSize bytes
	userMsgBroadcast = 1
	userMsgHeader    = 1 + 1 + 8 + 8 // without the origin's bytes

	// dedupSize is how many message ids a member remembers. A copy of a
	// message arrives again only while some member still gossips it (a
	// few gossip intervals), so this covers thousands of broadcasts per
	// second.
	dedupSize = 8192
	// maxQueuedBroadcasts bounds the broadcasts this member gossips;
	// beyond it the most sent and oldest are dropped.
	maxQueuedBroadcasts = 1024
)

// ErrBadMessage is wrapped by the errors about user messages that a member
// drops: not a broadcast of this version, or malformed.
var ErrBadMessage = errors.New("bad gossip message")

// msgID identifies one broadcast in the site.
type msgID struct {
	origin string
	boot   uint64
	seq    uint64
}

func (id msgID) String() string { return fmt.Sprintf("%s/%016x/%d", id.origin, id.boot, id.seq) }

func encodeBroadcast(id msgID, payload []byte) []byte {
	b := make([]byte, 0, userMsgHeader+len(id.origin)+len(payload))
	b = append(b, userMsgBroadcast, byte(len(id.origin)))
	b = append(b, id.origin...)
	b = binary.BigEndian.AppendUint64(b, id.boot)
	b = binary.BigEndian.AppendUint64(b, id.seq)
	return append(b, payload...)
}

// decodeBroadcast parses a user message. The payload aliases b.
func decodeBroadcast(b []byte) (msgID, []byte, error) {
	var id msgID
	if len(b) == 0 {
		return id, nil, fmt.Errorf("%w: empty", ErrBadMessage)
	}
	if b[0] != userMsgBroadcast {
		return id, nil, fmt.Errorf("%w: kind %d unknown (want %d, a broadcast)", ErrBadMessage, b[0], userMsgBroadcast)
	}
	if len(b) < 2 {
		return id, nil, fmt.Errorf("%w: truncated before the origin", ErrBadMessage)
	}
	l := int(b[1])
	if l == 0 || l > MaxFieldLen {
		return id, nil, fmt.Errorf("%w: origin length %d (want 1..%d)", ErrBadMessage, l, MaxFieldLen)
	}
	if len(b) < userMsgHeader+l {
		return id, nil, fmt.Errorf("%w: truncated header: %d bytes, want %d", ErrBadMessage, len(b), userMsgHeader+l)
	}
	id.origin = string(b[2 : 2+l])
	rest := b[2+l:]
	id.boot = binary.BigEndian.Uint64(rest)
	id.seq = binary.BigEndian.Uint64(rest[8:])
	payload := rest[16:]
	if len(payload) > MaxBroadcastSize {
		return id, nil, fmt.Errorf("%w: payload of %d bytes from %s, limit %d", ErrBadMessage, len(payload), id.origin, MaxBroadcastSize)
	}
	return id, payload, nil
}

// dedup remembers the last dedupSize message ids it saw.
type dedup struct {
	mu   sync.Mutex
	seen map[msgID]struct{}
	ring []msgID // FIFO of the ids in seen; next is the oldest slot
	next int
	size int // the most ids remembered
}

// newDedup remembers up to size ids; its memory grows with the ids seen,
// so that a quiet site does not pay for a busy one.
func newDedup(size int) *dedup { return &dedup{seen: make(map[msgID]struct{}), size: size} }

// add records id and reports whether it was new.
func (d *dedup) add(id msgID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen[id]; ok {
		return false
	}
	if len(d.ring) < d.size {
		d.ring = append(d.ring, id)
	} else {
		delete(d.seen, d.ring[d.next])
		d.ring[d.next] = id
		d.next = (d.next + 1) % len(d.ring)
	}
	d.seen[id] = struct{}{}
	return true
}

// transmitQueue holds the broadcasts this member still gossips: each is
// handed to memberlist (GetBroadcasts, piggybacked on its gossip and probe
// packets, each packet to one member) up to RetransmitMult × ⌈log10(N+1)⌉
// times, the least sent first, then the newest.
//
// It replaces memberlist's TransmitLimitedQueue, which loses messages: it
// resets its id counter whenever its tree is empty, also in the middle of
// GetBroadcasts while the items just sent wait to be reinserted, and a later
// message of the same length and transmit count then gets the same id and
// silently replaces one of them in the tree (hashicorp/memberlist#263, open;
// reproduced here by TestBroadcastReachesEveryMemberOnce, whose messages
// have equal lengths).
type transmitQueue struct {
	retransmitMult int
	numNodes       func() int
	limit          int // most messages held; beyond, the most sent and oldest go

	mu    sync.Mutex
	items []*queuedMsg
	seq   uint64
}

type queuedMsg struct {
	msg       []byte
	transmits int
	seq       uint64 // order of queueing
}

// add queues msg (kept, never changed) and returns how many messages it
// dropped to stay within the limit.
func (q *transmitQueue) add(msg []byte) (dropped int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	q.items = append(q.items, &queuedMsg{msg: msg, seq: q.seq})
	if over := len(q.items) - q.limit; over > 0 {
		q.sortLocked()
		q.items = q.items[:len(q.items)-over] // the most sent, then the oldest, are last
		return over
	}
	return 0
}

// sortLocked orders the items least sent first, then newest first.
func (q *transmitQueue) sortLocked() {
	slices.SortFunc(q.items, func(a, b *queuedMsg) int {
		if c := cmp.Compare(a.transmits, b.transmits); c != 0 {
			return c
		}
		return cmp.Compare(b.seq, a.seq)
	})
}

// get returns the messages that fit in limit bytes, each costing overhead
// more, and counts a transmission for each.
func (q *transmitQueue) get(overhead, limit int) [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil
	}
	n := max(q.numNodes(), 1)
	maxTransmits := max(q.retransmitMult*int(math.Ceil(math.Log10(float64(n+1)))), 1)
	q.sortLocked()
	var out [][]byte
	used := 0
	kept := q.items[:0]
	for _, it := range q.items {
		if used+overhead+len(it.msg) <= limit {
			used += overhead + len(it.msg)
			out = append(out, it.msg)
			it.transmits++
		}
		if it.transmits < maxTransmits {
			kept = append(kept, it)
		}
	}
	clear(q.items[len(kept):])
	q.items = kept
	return out
}

// len returns the number of messages queued.
func (q *transmitQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
