// Package exchange is the chunk exchange of a site: the swarm protocol
// /meshcast/chunks/1 over libp2p streams, by which members fetch the chunks
// of a release from each other while they arrive, and the leading seeder
// brings into the site the chunks it fetched from the CDN. docs/DESIGN.md
// ("The chunk exchange") says why it works the way it does.
//
// Nouns:
//   - Swarm: one release's artifact for one platform: the manifest's
//     distinct chunks in file order, named by SwarmIDFor (the sha256 of
//     "meshcast/swarm/1\x00", the release id and the platform). Every member
//     derives the same list from the signed manifest, so messages name a
//     chunk by its index. Join takes part in one; its *Swarm reports
//     Progress and closes Done once every chunk is held.
//   - Engine: one node's exchange (New, then Run). It tells its peers which
//     chunks it holds, asks them for the ones it lacks (the rarest first,
//     at most Config.MaxRequests at a time per peer, the last few also of a
//     second peer when the first is late), and serves what it holds.
//     Requests to a peer that delivers nothing for Config.RequestTimeout
//     (or 8 × the mean request latency, if longer) are recalled: cancelled
//     there, and asked of others as its reject of them arrives. Attach runs
//     an engine over a libp2p host; AddPeer and HandleInbound run it over
//     any pair of streams (net.Pipe in the tests).
//   - Peer: a member connected by two streams, one each way; each side only
//     writes on the stream it opened: a hello, then bitfield, have,
//     request, cancel, reject and piece frames (wire.go has the grammar).
//     A bitfield makes its sender a member of the swarm.
//   - Store: the chunk store the engine reads and writes; its Put verifies.
//     Banner: told about a peer that sent bad chunks too often (the node
//     revokes it at its connection gater).
//   - Spread mode (JoinOptions.Spread, SetSpread): how the leading seeder
//     takes part. It announces nothing and pushes each chunk it Offers to
//     the one member with the shortest push queue that lacks it (at most
//     Config.MaxPush queued per member); a push that nobody announces within
//     Config.RepushAfter, or that is lost with its receiver, goes to another
//     member. Held tells it which chunks the site lacks, and WaitSpread holds
//     it back until at most a given number of chunks is held by it alone.
//
// Guarantees:
//   - A chunk from a peer is verified on the goroutine that read it, before
//     it is stored, counted as held or served: its body must have the
//     length the manifest gives, and Store.Put must accept it (the Store
//     contract: Put verifies the chunk against its id). Pieces are read
//     from the store to be sent, so the engine serves only verified chunks.
//   - A peer whose chunks fail verification Config.Strikes times (default
//     3) is dropped and handed to the Banner. A peer that sends a frame
//     that does not decode (ErrWire), or a bitfield that does not fit the
//     swarm, is dropped at once.
//   - Every length and count a peer sends is checked before anything is
//     allocated for it: a frame is at most a piece of content.MaxChunkSize
//     or a bitfield of MaxSwarmChunks chunks, any other frame names at most
//     4096 chunks, and a stream's reader holds one frame at a time. At most
//     Config.MaxServe (default 32) of a peer's requests wait for our
//     answer; the others are rejected at once, and the peer asks elsewhere.
//     A peer with more than 4096 rejects waiting for it to read them asks
//     without reading, and is dropped.
//     How many streams a peer may open is the host's resource manager's
//     limit (mesh/p2p).
//   - All swarm and peer state has one owner, the goroutine of Run; the
//     goroutines that read and write peer streams report to it as events.
//     Run closes every peer stream and waits for those goroutines before it
//     returns; Attach waits for its own.
package exchange
