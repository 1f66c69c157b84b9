// Package p2p owns a meshcast node's libp2p host: its identity on disk, the
// QUIC-only transport, the connection gater that enforces admission, and
// the resource manager's limits. The chunk exchange, Raft transport and peer
// RPCs run as protocols on the host it returns; this package knows nothing
// of them, nor of Raft.
//
// Nouns:
//   - Identity: an ed25519 libp2p private key in a file (identity.key in the
//     node's state dir, mode 0600); the peer id is derived from it
//     (LoadIdentity).
//   - Host: a go-libp2p host.Host built by New; close it to stop it.
//   - Gater: the allow list of peer ids that may connect, in either
//     direction; the mesh fills it from the admitted set. Open mode admits
//     everyone, for development and the insecure site mode; a banned peer
//     (one that misbehaved) is refused even then.
//   - Limits: the resource manager's hard limits on connections, streams
//     and memory, in total and per peer (DefaultLimits explains the sizes).
//
// Guarantees:
//   - QUIC v1 only. Config.Validate refuses any listen address that is not
//     /ip4|ip6/…/udp/…/quic-v1, and the host has no other transport: no TCP,
//     websocket, WebTransport, WebRTC or relay, so it neither listens on nor
//     dials anything else. Peers authenticate with their libp2p identity in
//     QUIC's TLS 1.3 handshake.
//   - Every connection passes the gater: we never dial a peer that is not
//     allowed, and a connection from one is closed right after its
//     handshake, before any stream. Revoking or banning a peer (or closing
//     open mode) also closes its existing connections. On QUIC the refusal of an
//     inbound connection happens after the handshake has completed on the
//     dialer's side, so a refused dialer's Connect may return nil: its first
//     NewStream is what fails.
//   - Everything a peer can make us hold is bounded: connections, handshakes
//     in progress, streams (per peer, per protocol per peer, in total) and
//     reserved memory. Over a limit the resource manager refuses at once:
//     dials and stream opens fail, inbound connections and streams are
//     closed or reset (Limits says how each shows up).
//   - go-libp2p's own logs go to the logger given to New, not to stderr.
//
// Deployment: quic-go wants 7.5 MB UDP socket buffers and, without them,
// caps throughput on fast links. Linux limits an unprivileged process to
// net.core.rmem_max and net.core.wmem_max, often 208 KiB, so set
//
//	sysctl -w net.core.rmem_max=7500000 net.core.wmem_max=7500000
//
// (and persist it in /etc/sysctl.d). New logs a warning when they are lower
// and the process lacks CAP_NET_ADMIN, with which quic-go forces its buffers
// past them.
package p2p
