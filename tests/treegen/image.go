package treegen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sync"
	"sync/atomic"
)

// A filesystem image shaped like ext4 with 4 KiB blocks: a superblock and
// group descriptors (with sparse backups), per block group a block bitmap, an
// inode bitmap and an inode table, a journal, directory blocks, and the files
// of a generated tree laid out in extents, with free space between them that
// is mostly zero (some of it holds stale bytes of deleted files).

const (
	blockSize   = 4096
	groupBlocks = 16384 // 64 MiB groups (mke2fs -g 16384)
	inodeSize   = 256
	// freeShare is the mean percentage of a group's data blocks left free.
	freeShare = 24
)

// Image writes a single file of exactly size bytes that looks like a
// filesystem image of a generated tree, deterministic for a seed: an ext4
// layout that e2fsck -fn accepts, about 70% of it file contents in 4 KiB
// blocks, about 30% zero (free space, unused inode tables, the journal).
func Image(file string, size int64, seed uint64) error {
	if size < 0 {
		return fmt.Errorf("image %s: negative size %d", file, size)
	}
	im := layoutImage(size, seed)
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	err = im.write(f)
	if err == nil {
		err = f.Truncate(size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("image %s: %w", file, err)
	}
	return nil
}

const (
	extFile = iota
	extDir
	extStale
	extJournal
)

type extent struct {
	start, n int64 // group-relative block, count
	kind     uint8
	node     int32 // file or directory node; for stale data a seed
}

type imgGroup struct {
	first, n   int64 // first block, blocks
	super      bool  // holds a superblock copy and descriptors
	bare       bool  // past the end of the filesystem: zeros
	bbitmap    int64 // group-relative blocks of the metadata
	ibitmap    int64
	itable     int64
	inodes     []int32 // node per inode slot; -1 unused
	extents    []extent
	freeBlocks int64
}

type image struct {
	size    int64
	seed    uint64
	plan    *plan
	nodes   []*node
	blocks  int64
	ipg     int64 // inodes per group
	itabBlk int64 // inode table blocks per group
	gdtBlk  int64
	groups  []*imgGroup
	ino     []uint32   // inode number per node
	where   [][2]int64 // per node: absolute first block and block count of its data
	kids    [][]int32  // per directory node (and the root, last): children
	journal [2]int64   // absolute first block and block count
}

// fsGroups is the number of groups in the filesystem (a bare tail is not).
func (im *image) fsGroups() int {
	n := len(im.groups)
	if n > 0 && im.groups[n-1].bare {
		n--
	}
	return n
}

func isBackupGroup(g int) bool {
	if g <= 1 {
		return true
	}
	for _, b := range []int{3, 5, 7} {
		x := b
		for x < g {
			x *= b
		}
		if x == g {
			return true
		}
	}
	return false
}

func layoutImage(size int64, seed uint64) *image {
	im := &image{size: size, seed: seed}
	im.blocks = size / blockSize // a partial last block is past the filesystem, zero
	ng := int((im.blocks + groupBlocks - 1) / groupBlocks)
	full := min(im.blocks, groupBlocks)
	im.ipg = max(full*blockSize/16384/16*16, 16)
	im.itabBlk = im.ipg * inodeSize / blockSize
	im.gdtBlk = (int64(ng)*64 + blockSize - 1) / blockSize
	r := newRNG(seedOf(seed, "image"))

	// the tree to lay out: about 72% of the image in files
	files := max(int(size/(100<<10)), 50)
	im.plan = newPlan(Options{Seed: seed, Files: files, Bytes: max(size*72/100, 1<<20)})
	for _, n := range im.plan.nodes {
		if n.typ != fs.ModeSymlink || len(n.target) < 60 {
			im.nodes = append(im.nodes, n)
		}
	}
	idx := map[string]int32{}
	for i, n := range im.nodes {
		idx[n.path] = int32(i)
	}
	im.kids = make([][]int32, len(im.nodes)+1)
	for i, n := range im.nodes {
		parent := int32(len(im.nodes))
		if d := path.Dir(n.path); d != "." {
			parent = idx[d]
		}
		im.kids[parent] = append(im.kids[parent], int32(i))
	}
	im.ino = make([]uint32, len(im.nodes)+1)
	im.where = make([][2]int64, len(im.nodes)+1)
	im.ino[len(im.nodes)] = 2

	// mke2fs's default journal sizes (ext2fs_default_journal_size)
	var journal int64
	switch b := im.blocks; {
	case b < 2048:
	case b < 32768:
		journal = 1024
	case b < 256<<10:
		journal = 4096
	case b < 512<<10:
		journal = 8192
	default:
		journal = groupBlocks / 2
	}
	minGroup := 64 + im.itabBlk + im.gdtBlk
	fsGroups := ng
	if ng > 0 && im.blocks-int64(ng-1)*groupBlocks < minGroup {
		fsGroups--
	}
	next := 0 // next node to place
	for gi := range ng {
		g := &imgGroup{first: int64(gi) * groupBlocks, super: isBackupGroup(gi)}
		g.n = min(groupBlocks, im.blocks-g.first)
		if gi >= fsGroups {
			// too small for a group: mke2fs leaves such a tail out of the
			// filesystem, zero
			g.bare = true
			im.groups = append(im.groups, g)
			continue
		}
		g.inodes = make([]int32, im.ipg)
		for i := range g.inodes {
			g.inodes[i] = -1
		}
		cur := int64(0)
		if g.super {
			cur = 1 + im.gdtBlk
		}
		g.bbitmap, g.ibitmap, g.itable = cur, cur+1, cur+2
		cur += 2 + im.itabBlk
		start := cur // of the data region; a journal counts as free space
		var free int64
		if journal > 0 && gi == fsGroups/2 && cur+journal < g.n {
			g.extents = append(g.extents, extent{cur, journal, extJournal, 0})
			im.journal = [2]int64{g.first + cur, journal}
			cur += journal
			free = journal
		}
		nextIno := int64(0)
		if gi == 0 {
			nextIno = 11 // reserved inodes
			root := len(im.nodes)
			blocks := im.dirBlocks(root)
			g.extents = append(g.extents, extent{cur, blocks, extDir, int32(root)})
			im.where[root] = [2]int64{cur, blocks}
			cur += blocks
		}
		share := int64(freeShare*10 + r.intn(161) - 80) // per mille
		if ng <= 2 {
			share = int64(freeShare*10 + r.intn(61) - 30)
		}
		for cur < g.n {
			left := g.n - cur
			if free*1000 < share*(cur-start+1) || next >= len(im.nodes) || nextIno >= im.ipg {
				gap := min(left, 1+r.logNormal(12, 512))
				if r.pct(10) {
					g.extents = append(g.extents, extent{cur, gap, extStale, int32(r.u64() >> 33)})
				}
				cur += gap
				free += gap
				continue
			}
			n := im.nodes[next]
			var blocks int64
			kind := uint8(extFile)
			switch n.typ {
			case 0:
				blocks = (n.size + blockSize - 1) / blockSize
			case fs.ModeDir:
				kind = extDir
				blocks = im.dirBlocks(next)
			}
			if blocks > left {
				if blocks < g.n/4 && gi < ng-1 {
					cur = g.n // try it in the next group
					free += left
					continue
				}
				blocks = left
			}
			g.inodes[nextIno] = int32(next)
			im.ino[next] = uint32(int64(gi)*im.ipg + nextIno + 1)
			nextIno++
			if blocks > 0 {
				g.extents = append(g.extents, extent{cur, blocks, kind, int32(next)})
				im.where[next] = [2]int64{g.first + cur, blocks}
			}
			cur += blocks
			next++
		}
		g.freeBlocks = free
		if im.journal[1] > 0 && im.journal[0] >= g.first && im.journal[0] < g.first+g.n {
			g.freeBlocks -= im.journal[1]
		}
		im.groups = append(im.groups, g)
	}
	return im
}

func direntLen(name string) int { return (8 + len(name) + 3) &^ 3 }

func (im *image) dirBlocks(i int) int64 {
	at := 24 // "." and ".."
	for _, k := range im.kids[i] {
		l := direntLen(path.Base(im.nodes[k].path))
		if (at+l-1)/blockSize != at/blockSize && at%blockSize != 0 {
			at = (at/blockSize + 1) * blockSize // entries never span blocks
		}
		at += l
	}
	return int64((at + blockSize - 1) / blockSize)
}

// write generates the groups on all CPUs and writes each at its offset.
func (im *image) write(f *os.File) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, min(runtime.GOMAXPROCS(0), 4, len(im.groups)))
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := newGen()
			var buf, scratch []byte
			for {
				i := int(next.Add(1) - 1)
				if i >= len(im.groups) || errs[w] != nil {
					return
				}
				grp := im.groups[i]
				off := grp.first * blockSize
				n := min(grp.n*blockSize, im.size-off)
				if cap(buf) < int(grp.n*blockSize) {
					buf = make([]byte, grp.n*blockSize)
				}
				buf = buf[:grp.n*blockSize]
				clear(buf)
				scratch = im.fill(g, i, buf, scratch)
				if _, err := f.WriteAt(buf[:n], off); err != nil {
					errs[w] = err
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fill writes group gi into buf (zeroed).
func (im *image) fill(g *gen, gi int, buf, scratch []byte) []byte {
	grp := im.groups[gi]
	if grp.bare {
		return scratch
	}
	blk := func(b int64) []byte { return buf[b*blockSize : (b+1)*blockSize] }
	if grp.super {
		im.superblock(buf[1024:2048], gi)
		for j := range im.fsGroups() {
			im.descriptor(buf[blockSize+int64(j)*64:], j)
		}
	}
	// bitmaps
	used := func(b int64) { blk(grp.bbitmap)[b/8] |= 1 << (b % 8) }
	for b := range grp.itable + im.itabBlk {
		used(b)
	}
	for b := grp.n; b < blockSize*8; b++ {
		used(b) // past the end of the group
	}
	for _, e := range grp.extents {
		if e.kind != extStale {
			for b := e.start; b < e.start+e.n; b++ {
				used(b)
			}
		}
	}
	ib := blk(grp.ibitmap)
	for i, n := range grp.inodes {
		if n >= 0 || (gi == 0 && i < 10) {
			ib[i/8] |= 1 << (i % 8)
		}
	}
	for i := im.ipg; i < blockSize*8; i++ {
		ib[i/8] |= 1 << (i % 8)
	}
	// inode table
	g.reset(seedOf(im.seed, "inodes", fmt.Sprint(gi)))
	itab := buf[grp.itable*blockSize : (grp.itable+im.itabBlk)*blockSize]
	for i, n := range grp.inodes {
		if n >= 0 {
			im.inode(g, itab[i*inodeSize:(i+1)*inodeSize], n)
		} else if gi == 0 && i == 1 {
			im.inode(g, itab[i*inodeSize:(i+1)*inodeSize], -1) // root
		} else if gi == 0 && i == 7 && im.journal[1] > 0 {
			im.inode(g, itab[i*inodeSize:(i+1)*inodeSize], -2) // journal
		}
	}
	// data
	for _, e := range grp.extents {
		dst := buf[e.start*blockSize : (e.start+e.n)*blockSize]
		switch e.kind {
		case extFile:
			n := im.nodes[e.node]
			g.reset(seedOf(im.seed, n.path))
			scratch = g.content(scratch[:0], n, im.plan)
			copy(dst, scratch)
		case extDir:
			im.dirBlock(dst, int(e.node))
		case extStale:
			g.reset(uint64(e.node))
			roles := []role{roleExec, roleProse, rolePython, roleConfig, roleGz, roleLib}
			stale := &node{path: "stale", role: roles[g.r.intn(len(roles))], size: int64(len(dst))}
			scratch = g.content(scratch[:0], stale, nil)
			copy(dst, scratch)
		case extJournal:
			im.writeJournal(g, dst)
		}
	}
	return scratch
}

var imageUUID = [16]byte{0x6f, 0x0e, 0x8a, 0x4c, 0x1b, 0x7e, 0x4c, 0x53, 0x9a, 0x57, 0x0d, 0x5f, 0x2c, 0x9e, 0x1a, 0x11}

func (im *image) superblock(b []byte, gi int) {
	le := binary.LittleEndian
	var free, blocks int64
	ng := im.fsGroups()
	for _, g := range im.groups[:ng] {
		free += g.freeBlocks
		blocks += g.n
	}
	le.PutUint32(b[0:], uint32(im.ipg*int64(ng)))
	le.PutUint32(b[4:], uint32(blocks))
	le.PutUint32(b[8:], uint32(blocks/20))
	le.PutUint32(b[12:], uint32(free))
	placed := int64(10)
	for _, ino := range im.ino[:len(im.nodes)] {
		if ino != 0 {
			placed++
		}
	}
	le.PutUint32(b[16:], uint32(im.ipg*int64(ng)-placed))
	le.PutUint32(b[24:], 2) // log block size
	le.PutUint32(b[28:], 2)
	le.PutUint32(b[32:], groupBlocks)
	le.PutUint32(b[36:], groupBlocks)
	le.PutUint32(b[40:], uint32(im.ipg))
	le.PutUint32(b[44:], 1700000000)
	le.PutUint32(b[48:], 1700000000)
	le.PutUint16(b[52:], 12)
	le.PutUint16(b[54:], 0xffff)
	le.PutUint16(b[56:], 0xef53)
	le.PutUint16(b[58:], 1)
	le.PutUint16(b[60:], 1)
	le.PutUint32(b[76:], 1)  // dynamic rev
	le.PutUint32(b[84:], 11) // first inode
	le.PutUint16(b[88:], inodeSize)
	le.PutUint16(b[90:], uint16(gi))
	compat := uint32(0x2c) // has_journal, ext_attr, dir_index
	if im.journal[1] == 0 {
		compat &^= 4
	}
	le.PutUint32(b[92:], compat)
	le.PutUint32(b[96:], 0x2c2)
	le.PutUint32(b[100:], 0x6b)
	copy(b[104:], imageUUID[:])
	copy(b[120:], "rootfs")
	if im.journal[1] > 0 {
		le.PutUint32(b[0xe0:], 8) // journal inode
	}
	le.PutUint16(b[0xfe:], 64)
}

func (im *image) descriptor(b []byte, gi int) {
	le := binary.LittleEndian
	g := im.groups[gi]
	used, dirs := 0, 0
	if gi == 0 {
		used, dirs = 10, 1
	}
	for _, n := range g.inodes {
		if n >= 0 {
			used++
			if im.nodes[n].typ == fs.ModeDir {
				dirs++
			}
		}
	}
	le.PutUint32(b[0:], uint32(g.first+g.bbitmap))
	le.PutUint32(b[4:], uint32(g.first+g.ibitmap))
	le.PutUint32(b[8:], uint32(g.first+g.itable))
	le.PutUint16(b[12:], uint16(g.freeBlocks))
	le.PutUint16(b[14:], uint16(im.ipg-int64(used)))
	le.PutUint16(b[16:], uint16(dirs))
	le.PutUint16(b[18:], 4) // ITABLE_ZEROED
	le.PutUint16(b[30:], uint16(mix64(uint64(gi))))
}

// inode writes an ext4 inode for node i (-1: the root directory, -2: the
// journal).
func (im *image) inode(g *gen, b []byte, i int32) {
	le := binary.LittleEndian
	mode := uint16(0x4000 | 0o755)
	var size int64
	var where [2]int64
	target := ""
	links := uint16(2)
	subdirs := func(d int) (n uint16) {
		for _, k := range im.kids[d] {
			if im.nodes[k].typ == fs.ModeDir && im.ino[k] != 0 {
				n++
			}
		}
		return n
	}
	switch {
	case i == -1:
		where = im.where[len(im.nodes)]
		size = where[1] * blockSize
		links = 2 + subdirs(len(im.nodes))
	case i == -2:
		where = im.journal
		mode, size, links = 0x8000|0o600, where[1]*blockSize, 1
	default:
		n := im.nodes[i]
		switch n.typ {
		case 0:
			mode, size, links = 0x8000|uint16(n.perm), n.size, 1
		case fs.ModeDir:
			mode = 0x4000 | uint16(n.perm)
			size = im.where[i][1] * blockSize
			links = 2 + subdirs(int(i))
		case fs.ModeSymlink:
			mode, target, size, links = 0xa000|0o777, n.target, int64(len(n.target)), 1
		}
		where = im.where[i]
	}
	t := uint32(1700000000 + g.r.intn(30000000))
	le.PutUint16(b[0:], mode)
	le.PutUint32(b[4:], uint32(size))
	le.PutUint32(b[8:], t)
	le.PutUint32(b[12:], t)
	le.PutUint32(b[16:], t)
	le.PutUint16(b[26:], links)
	le.PutUint32(b[28:], uint32(where[1]*8))
	if target != "" {
		copy(b[40:100], target)
	} else {
		le.PutUint32(b[32:], 0x80000) // extents
		le.PutUint16(b[40:], 0xf30a)
		le.PutUint16(b[42:], 1)
		le.PutUint16(b[44:], 4)
		le.PutUint16(b[56:], uint16(min(where[1], 32768))) // extent: logical 0, length, start
		le.PutUint32(b[60:], uint32(where[0]))
		if where[1] == 0 {
			le.PutUint16(b[42:], 0)
		}
	}
	le.PutUint32(b[100:], uint32(g.r.u64())) // generation
	le.PutUint32(b[108:], uint32(size>>32))
	le.PutUint16(b[128:], 32) // extra isize
	le.PutUint16(b[130:], uint16(g.r.u64()))
	le.PutUint32(b[136:], uint32(g.r.u64())) // ctime extra
	le.PutUint32(b[144:], t)                 // crtime
}

// dirBlock writes the entries of directory node i.
func (im *image) dirBlock(b []byte, i int) {
	le := binary.LittleEndian
	self, parent := im.ino[i], uint32(2)
	if i == len(im.nodes) {
		// the root
	} else if d := path.Dir(im.nodes[i].path); d != "." {
		for j := i - 1; j >= 0; j-- {
			if im.nodes[j].path == d {
				parent = im.ino[j]
				break
			}
		}
	}
	at, last := 0, 0
	put := func(ino uint32, name string, typ byte) {
		l := direntLen(name)
		if at+l > len(b) {
			return
		}
		if (at+l-1)/blockSize != at/blockSize && at%blockSize != 0 { // entries never span blocks
			le.PutUint16(b[last+4:], uint16(blockSize-last%blockSize))
			at = (at/blockSize + 1) * blockSize
		}
		le.PutUint32(b[at:], ino)
		le.PutUint16(b[at+4:], uint16(l))
		b[at+6] = byte(len(name))
		b[at+7] = typ
		copy(b[at+8:], name)
		last = at
		at += l
	}
	put(self, ".", 2)
	put(parent, "..", 2)
	for _, k := range im.kids[i] {
		n := im.nodes[k]
		if im.ino[k] == 0 {
			continue // did not fit in the image
		}
		typ := byte(1)
		switch n.typ {
		case fs.ModeDir:
			typ = 2
		case fs.ModeSymlink:
			typ = 7
		}
		put(im.ino[k], path.Base(n.path), typ)
	}
	le.PutUint16(b[last+4:], uint16(blockSize-last%blockSize))
}

// journal writes a jbd2 journal: a superblock, a few transactions (descriptor,
// copies of metadata blocks, commit), zeros after.
func (im *image) writeJournal(g *gen, b []byte) {
	be := binary.BigEndian
	g.reset(seedOf(im.seed, "journal"))
	hdr := func(blk []byte, typ, seq uint32) {
		be.PutUint32(blk, 0xc03b3998)
		be.PutUint32(blk[4:], typ)
		be.PutUint32(blk[8:], seq)
	}
	blocks := int64(len(b) / blockSize)
	hdr(b, 4, 0)
	be.PutUint32(b[12:], blockSize)
	be.PutUint32(b[16:], uint32(blocks))
	be.PutUint32(b[20:], 1)
	copy(b[48:], imageUUID[:])
	at := int64(1)
	for seq := uint32(1); at+8 < blocks*3/100; seq++ {
		d := b[at*blockSize:]
		hdr(d, 1, seq)
		n := int64(1 + g.r.intn(6))
		for k := range n {
			be.PutUint32(d[12+k*16:], uint32(g.r.intn(int(im.blocks))))
			be.PutUint32(d[16+k*16:], 0x8)
		}
		for k := range n {
			m := b[(at+1+k)*blockSize : (at+2+k)*blockSize]
			for j := 0; j < blockSize; j += inodeSize {
				if g.r.pct(40) {
					im.inode(g, m[j:j+inodeSize], int32(g.r.intn(len(im.nodes))))
				}
			}
		}
		hdr(b[(at+1+n)*blockSize:], 2, seq)
		at += n + 2
	}
}

// zeroBlocks reports the share of all-zero 4 KiB blocks in b, for tests.
func zeroBlocks(b []byte) (zero, total int) {
	for len(b) > 0 {
		n := min(blockSize, len(b))
		z := true
		for _, c := range b[:n] {
			if c != 0 {
				z = false
				break
			}
		}
		if z {
			zero++
		}
		total++
		b = b[n:]
	}
	return zero, total
}
