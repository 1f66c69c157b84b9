package baseline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/host"
	"golang.org/x/sync/errgroup"

	"github.com/meshcast/meshcast/content"
)

// BitswapResult is what one Bitswap run measured.
type BitswapResult struct {
	// Seconds is the time from the moment the nodes start fetching until
	// the last node holds every block.
	Seconds float64
	// NodeSeconds[i] is the same for node i alone.
	NodeSeconds []float64
	// DupBlocks and DupBytes are the duplicate blocks (and their bytes)
	// the nodes' bitswap clients received, summed over the nodes: blocks
	// that arrived from a second peer after the first copy.
	DupBlocks int64
	DupBytes  int64
	// SeederSent is the block bytes the seeder's bitswap sent (its
	// Stat().DataSent).
	SeederSent int64
	// PeerSent is the block bytes the nodes' bitswaps sent each other,
	// summed over the nodes (their Stat().DataSent).
	PeerSent int64
	// BytesPerNode is the size of the distinct blocks: what each node
	// ends up holding.
	BytesPerNode int64
}

// Goodput returns the aggregate goodput in bytes per second: the bytes
// every node ends up holding, summed over the nodes, divided by Seconds.
func (r *BitswapResult) Goodput() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.BytesPerNode) * float64(len(r.NodeSeconds)) / r.Seconds
}

// bitswapPeer is one host's bitswap stack: a blockstore over an in-memory
// datastore, bitswap on the host, and the blockservice that joins them.
type bitswapPeer struct {
	bstore blockstore.Blockstore
	bswap  *bitswap.Bitswap
	bserv  blockservice.BlockService
}

// newBitswapPeer starts bitswap on h with its default options and no
// content routing: bitswap finds blocks only by asking the peers h is
// connected to, which in a site is every member. ctx bounds bitswap's
// lifetime as well as Close does.
func newBitswapPeer(ctx context.Context, h host.Host) *bitswapPeer {
	bstore := blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
	bswap := bitswap.New(ctx, bsnet.NewFromIpfsHost(h), nil, bstore)
	// The bitswap client does not store what it receives: the
	// blockservice puts fetched blocks into the blockstore and tells
	// bitswap, whose server then offers them to peers.
	return &bitswapPeer{bstore: bstore, bswap: bswap, bserv: blockservice.New(bstore, bswap)}
}

// close closes the blockservice, which closes bitswap: it stops bitswap's
// network notifications, its client (sessions, peer queues) and its server
// (task workers and decision engine, which it waits for). It does not
// remove bitswap's stream handlers; closing the host does.
func (p *bitswapPeer) close() error { return p.bserv.Close() }

// Bitswap distributes blocks from one seeder to n nodes with boxo bitswap
// over real libp2p QUIC hosts on loopback (built with mesh/p2p.New, gater
// open, every host connected to every other: the topology of a meshcast
// site), and returns how long it took until every node held every block,
// the duplicate blocks and bytes bitswap reports (its Stat) and the bytes
// the seeder sent.
//
// The blocks are raw chunk bodies; each is named by its CIDv1 raw sha2-256
// (content.ChunkID.CID), and a block that repeats another is sent once.
// Each node fetches every CID with one bitswap session
// (blockservice.Session.GetBlocks), draining its channel; the blockservice
// stores each block as it arrives and announces it, so nodes serve each
// other while they fetch. Timing starts once every host has identified
// every other and the seeder holds the blocks, when the nodes start their
// sessions.
//
// Bitswap returns an error if a node's session ends before it has every
// block, if ctx ends first (wrapping ctx's error), or if, afterwards, a
// node's blockstore lacks a block or holds other bytes for it. It closes
// every bitswap, blockservice and host before returning.
func Bitswap(ctx context.Context, data [][]byte, nodes int, log *slog.Logger) (res *BitswapResult, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if nodes < 1 {
		return nil, fmt.Errorf("bitswap baseline: %d nodes; need at least one", nodes)
	}
	blks, total, err := makeBlocks(data)
	if err != nil {
		return nil, fmt.Errorf("bitswap baseline: %w", err)
	}
	cids := make([]cid.Cid, len(blks))
	for i, b := range blks {
		cids[i] = b.Cid()
	}

	// Host 0 is the seeder, host i+1 is node i.
	name := func(i int) string {
		if i == 0 {
			return "seeder"
		}
		return fmt.Sprintf("node%d", i-1)
	}
	hosts, err := startHosts(nodes+1, name, log)
	if err != nil {
		return nil, fmt.Errorf("bitswap baseline: %w", err)
	}
	defer func() {
		if cerr := closeHosts(hosts); cerr != nil {
			err = errors.Join(err, fmt.Errorf("bitswap baseline: %w", cerr))
		}
	}()

	// bctx ends bitswap's background work even if a close below fails.
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	// Bitswap starts before the hosts connect, so its protocols are
	// registered when identify runs and no identify push follows.
	peers := make([]*bitswapPeer, len(hosts))
	for i, h := range hosts {
		peers[i] = newBitswapPeer(bctx, h)
	}
	defer func() {
		for i, p := range slices.Backward(peers) {
			if cerr := p.close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("bitswap baseline: close bitswap of %s: %w", name(i), cerr))
			}
		}
	}()
	seeder, fetchers := peers[0], peers[1:]

	if err := connectAll(ctx, hosts); err != nil {
		return nil, fmt.Errorf("bitswap baseline: %w", err)
	}
	if err := seeder.bserv.AddBlocks(ctx, blks); err != nil {
		return nil, fmt.Errorf("bitswap baseline: seed %d blocks: %w", len(blks), err)
	}
	log.Info("bitswap baseline: fetching", "nodes", nodes, "blocks", len(blks), "bytes", total)

	res = &BitswapResult{NodeSeconds: make([]float64, nodes), BytesPerNode: total}
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for i, p := range fetchers {
		g.Go(func() error {
			d, err := fetchAll(gctx, p.bserv, cids, start)
			if err != nil {
				return fmt.Errorf("%s: %w", name(i+1), err)
			}
			res.NodeSeconds[i] = d.Seconds()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("bitswap baseline: %w", err)
	}
	res.Seconds = slices.Max(res.NodeSeconds)

	for i, p := range peers {
		st, err := p.bswap.Stat()
		if err != nil {
			return nil, fmt.Errorf("bitswap baseline: stat of %s: %w", name(i), err)
		}
		if i == 0 {
			res.SeederSent = int64(st.DataSent)
			continue
		}
		res.DupBlocks += int64(st.DupBlksReceived)
		res.DupBytes += int64(st.DupDataReceived)
		res.PeerSent += int64(st.DataSent)
	}
	for i, p := range fetchers {
		if err := holdsAll(ctx, p.bstore, blks); err != nil {
			return nil, fmt.Errorf("bitswap baseline: %s: %w", name(i+1), err)
		}
	}
	log.Info("bitswap baseline: done", "nodes", nodes, "seconds", res.Seconds,
		"goodput_MBps", res.Goodput()/1e6, "dup_blocks", res.DupBlocks, "seeder_sent", res.SeederSent)
	return res, nil
}

// makeBlocks names each body by its chunk id's CID, dropping repeats, and
// returns the blocks and their total size.
func makeBlocks(data [][]byte) ([]blocks.Block, int64, error) {
	if len(data) == 0 {
		return nil, 0, errors.New("no blocks to distribute")
	}
	seen := make(map[content.ChunkID]struct{}, len(data))
	out := make([]blocks.Block, 0, len(data))
	var total int64
	for _, d := range data {
		id := content.SumChunk(d)
		if _, ok := seen[id]; ok {
			continue
		}
		seen[id] = struct{}{}
		b, err := blocks.NewBlockWithCid(d, id.CID())
		if err != nil {
			return nil, 0, fmt.Errorf("block %s: %w", id.Short(), err)
		}
		out = append(out, b)
		total += int64(len(d))
	}
	return out, total, nil
}

// fetchAll fetches cids with one session of bserv and drains the session's
// channel until it closes, which it does once every block was delivered
// (or ctx ended). It returns the time from start until the last missing
// block arrived. The session ends with the call.
func fetchAll(ctx context.Context, bserv blockservice.BlockService, cids []cid.Cid, start time.Time) (time.Duration, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the bitswap session
	missing := make(map[cid.Cid]struct{}, len(cids))
	for _, c := range cids {
		missing[c] = struct{}{}
	}
	var took time.Duration
	for b := range blockservice.NewSession(sctx, bserv).GetBlocks(sctx, cids) {
		if _, ok := missing[b.Cid()]; !ok {
			continue
		}
		delete(missing, b.Cid())
		if len(missing) == 0 {
			took = time.Since(start)
		}
	}
	if len(missing) > 0 {
		err := fmt.Errorf("session ended with %d of %d blocks missing", len(missing), len(cids))
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", err, ctx.Err())
		}
		return 0, err
	}
	return took, nil
}

// holdsAll checks that bstore holds every block, with its bytes.
func holdsAll(ctx context.Context, bstore blockstore.Blockstore, blks []blocks.Block) error {
	for _, want := range blks {
		got, err := bstore.Get(ctx, want.Cid())
		if err != nil {
			return fmt.Errorf("blockstore lacks %s: %w", want.Cid(), err)
		}
		if !bytes.Equal(got.RawData(), want.RawData()) {
			return fmt.Errorf("blockstore holds other bytes for %s", want.Cid())
		}
	}
	return nil
}
