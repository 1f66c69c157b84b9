package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

// sendAll has senders broadcast perSender messages each, and returns the
// messages by sender.
func sendAll(t *testing.T, senders []*tnode, perSender int) map[*tnode][][]byte {
	t.Helper()
	sent := map[*tnode][][]byte{}
	for i := range perSender {
		for _, s := range senders {
			msg := fmt.Appendf(nil, "from %s #%d %s", s.name, i, bytes.Repeat([]byte{'.'}, 200))
			if err := s.Broadcast(msg); err != nil {
				t.Fatal(err)
			}
			sent[s] = append(sent[s], msg)
		}
	}
	return sent
}

// In a site of 10, every broadcast reaches every other member, and each
// member delivers each broadcast exactly once (never its own).
func TestBroadcastReachesEveryMemberOnce(t *testing.T) {
	nodes := newCluster(t, "bcast", 10, nil)
	senders := []*tnode{nodes[0], nodes[4], nodes[9]}
	start := time.Now()
	sent := sendAll(t, senders, 5)
	var slowest time.Duration
	for _, n := range nodes {
		var want [][]byte
		for s, msgs := range sent {
			if s != n {
				want = append(want, msgs...)
			}
		}
		ok := n.rec.waitFor(converge, func(r *recorder) bool {
			for _, m := range want {
				if r.count(m) == 0 {
					return false
				}
			}
			return true
		})
		if !ok { // say where each missing message got to
			for _, m := range want {
				reached := 0
				for _, o := range nodes {
					o.rec.mu.Lock()
					reached += min(o.rec.count(m), 1)
					o.rec.mu.Unlock()
				}
				n.rec.mu.Lock()
				if n.rec.count(m) == 0 {
					t.Logf("%q reached %d members, not %s", m[:16], reached, n.name)
				}
				n.rec.mu.Unlock()
			}
			for _, o := range nodes {
				t.Logf("%s: stats %+v, %d broadcasts queued, %d members alive", o.name, o.Stats(), o.bq.len(), o.alive.Load())
			}
			t.Fatalf("%s did not receive every broadcast of the others within %v", n.name, converge)
		}
		n.rec.mu.Lock()
		slowest = max(slowest, n.rec.msgs[len(n.rec.msgs)-1].at.Sub(start))
		n.rec.mu.Unlock()
	}
	t.Logf("15 broadcasts from 3 members reached all 10 members after %v", slowest.Round(time.Millisecond))

	// Once nobody gossips them any more, count: exactly once each.
	quiesce(t, nodes)
	for _, n := range nodes {
		n.rec.mu.Lock()
		for s, msgs := range sent {
			for _, m := range msgs {
				want := 1
				if s == n {
					want = 0
				}
				if got := n.rec.count(m); got != want {
					t.Errorf("%s delivered %q %d times; want %d", n.name, m[:20], got, want)
				}
			}
		}
		if got := len(n.rec.msgs); got > 15 {
			t.Errorf("%s delivered %d messages; at most 15 were sent", n.name, got)
		}
		n.rec.mu.Unlock()
		if s := n.Stats(); s != (Stats{}) {
			t.Errorf("%s: stats %+v; want nothing dropped", n.name, s)
		}
	}
	logFailures(t, nodes)
}

// Without the re-broadcast, memberlist's transmit-limited queue alone (its
// RetransmitMult, no receiver sending on) gets a broadcast to only part of
// a site of 10: this is why receivers re-broadcast. Ten broadcasts, one at a
// time so that they travel independently; the test logs the reach of each
// and fails only if every one reached every member (the re-broadcast would
// then look unnecessary).
func TestBroadcastWithoutRebroadcastIsPartial(t *testing.T) {
	nodes := newCluster(t, "norebc", 10, func(c *Config) { c.plainBroadcast = true })
	full, reached := 0, 0
	const rounds = 10
	for round := range rounds {
		msg := []byte(fmt.Sprintf("plain #%d", round))
		if err := nodes[0].Broadcast(msg); err != nil {
			t.Fatal(err)
		}
		quiesce(t, nodes) // nothing is sent any more
		got := 0
		for _, n := range nodes[1:] {
			n.rec.mu.Lock()
			got += n.rec.count(msg)
			n.rec.mu.Unlock()
		}
		t.Logf("broadcast %d without re-broadcast reached %d of 9 members", round, got)
		reached += got
		if got == len(nodes)-1 {
			full++
		}
	}
	t.Logf("without re-broadcast: %d of %d deliveries (%.0f%%); %d of %d broadcasts reached every member",
		reached, rounds*(len(nodes)-1), 100*float64(reached)/float64(rounds*(len(nodes)-1)), full, rounds)
	if full == rounds {
		t.Errorf("every broadcast reached every member without re-broadcast: the re-broadcast looks unnecessary; check memberlist's retransmit behaviour")
	}
}

// Messages that are not broadcasts of this version are dropped and
// counted, never delivered.
func TestBadUserMessagesDropped(t *testing.T) {
	n := newNode(t, "badmsg-00", func(c *Config) { c.Keys, c.Insecure = nil, true })
	good := encodeBroadcast(msgID{origin: "x", boot: 1, seq: 1}, []byte("ok"))
	d := (*delegate)(n.Gossip)
	for _, b := range [][]byte{
		nil,
		{},
		{2, 1, 'x'},
		{userMsgBroadcast},
		{userMsgBroadcast, 0},
		{userMsgBroadcast, 65},
		good[:10],
		append(encodeBroadcast(msgID{origin: "x", boot: 1, seq: 2}, nil), make([]byte, MaxBroadcastSize+1)...),
	} {
		if _, _, err := decodeBroadcast(b); !errors.Is(err, ErrBadMessage) {
			t.Errorf("decodeBroadcast(%x): %v; want ErrBadMessage", b, err)
		}
		d.NotifyMsg(b)
	}
	d.NotifyMsg(good)
	d.NotifyMsg(good) // a copy
	if !n.rec.waitFor(converge, func(r *recorder) bool { return r.count([]byte("ok")) == 1 }) {
		t.Fatal("the good message was not delivered")
	}
	if s := n.Stats(); s.BadMessages != 8 {
		t.Errorf("BadMessages = %d; want 8", s.BadMessages)
	}
}
