package p2p

import (
	"testing"

	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
)

// The Limits fields land on the resource manager scopes that limits.go's
// table names, with zero fields defaulted and nothing left to autoscaling.
func TestLimitsMapOntoScopes(t *testing.T) {
	l := Limits{StreamsPerPeer: 4, Memory: 64 << 20}
	d := DefaultLimits()
	got := l.concrete().ToPartialLimitConfig()

	check := func(scope string, r rcmgr.ResourceLimits, streams, conns int, mem int64) {
		t.Helper()
		for _, v := range []struct {
			name string
			got  rcmgr.LimitVal
			want int
		}{
			{"Streams", r.Streams, streams}, {"StreamsInbound", r.StreamsInbound, streams}, {"StreamsOutbound", r.StreamsOutbound, streams},
			{"Conns", r.Conns, conns}, {"ConnsInbound", r.ConnsInbound, conns}, {"ConnsOutbound", r.ConnsOutbound, conns},
		} {
			if v.want != 0 && int(v.got) != v.want {
				t.Errorf("%s.%s = %d, want %d", scope, v.name, v.got, v.want)
			}
		}
		if int64(r.Memory) != mem {
			t.Errorf("%s.Memory = %d, want %d", scope, r.Memory, mem)
		}
	}
	check("System", got.System, d.Streams, d.Conns, 64<<20)
	if int(got.System.FD) != d.FDs {
		t.Errorf("System.FD = %d, want %d", got.System.FD, d.FDs)
	}
	check("Transient", got.Transient, d.Streams/16, d.Conns/16, 4<<20)
	check("PeerDefault", got.PeerDefault, 4, d.ConnsPerPeer, 32<<20)
	check("ProtocolPeerDefault", got.ProtocolPeerDefault, d.StreamsPerProtocolPerPeer, 0, 32<<20)
	check("ServicePeerDefault", got.ServicePeerDefault, 4, 0, 32<<20)
	check("ProtocolDefault", got.ProtocolDefault, d.Streams, 0, 64<<20)
	check("ServiceDefault", got.ServiceDefault, d.Streams, 0, 64<<20)
	check("Conn", got.Conn, 0, 1, 16<<20)
	check("Stream", got.Stream, 1, 0, 16<<20)

	// libp2p's own protocols keep their limits.
	if _, ok := got.Protocol[identify.ID]; !ok {
		t.Error("no protocol limit for identify")
	}
	if _, ok := got.ServicePeer[identify.ServiceName]; !ok {
		t.Error("no service-peer limit for identify")
	}
}

func TestDefaultLimitsFillZeroFields(t *testing.T) {
	if got := (Limits{}).withDefaults(); got != DefaultLimits() {
		t.Fatalf("zero Limits = %+v, want DefaultLimits %+v", got, DefaultLimits())
	}
	got := Limits{Conns: 10, Memory: 1}.withDefaults()
	want := DefaultLimits()
	want.Conns, want.Memory = 10, 1
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// Tiny limits still build: no scope rounds down to 0 ("default" to rcmgr).
	tiny := Limits{Conns: 1, ConnsPerPeer: 1, Streams: 1, StreamsPerPeer: 1, StreamsPerProtocolPerPeer: 1, Memory: 1, FDs: 1}
	p := tiny.concrete().ToPartialLimitConfig()
	if p.Transient.Conns != 1 || p.Transient.Streams != 1 || p.Transient.Memory != 1 {
		t.Fatalf("tiny transient limits: %+v", p.Transient)
	}
}
