package cdn

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/meshcast/meshcast/content"
)

// planClient returns a client whose planner joins gaps up to maxGap and
// caps requests at maxRange.
func planClient(t *testing.T, maxGap, maxRange int64) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{URL: "http://cdn.invalid", MaxGap: maxGap, MaxRange: maxRange}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// planRef is a chunk ref with an id derived from name, in planPacks[pack].
func planRef(name string, pack int, off int64, stored int) content.ChunkRef {
	return content.ChunkRef{ID: content.SumChunk([]byte(name)), Size: stored, Stored: stored, Enc: content.EncodingRaw, Pack: planPacks[pack], Offset: off}
}

// planPacks are the packs of planRef; describe names each by its first
// byte.
var planPacks = []content.Digest{{1}, {2}, {3}}

// describe renders spans as "pack:start-end[a b c]" for comparison.
func describe(spans []span, names map[content.ChunkID]string) string {
	var b strings.Builder
	for i, s := range spans {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%d:%d-%d[", s.pack[0], s.start, s.end)
		for j, r := range s.refs {
			if j > 0 {
				b.WriteString(" ")
			}
			b.WriteString(names[r.ID])
		}
		b.WriteString("]")
	}
	return b.String()
}

func TestPlan(t *testing.T) {
	const MiB = 1 << 20
	tests := []struct {
		name             string
		maxGap, maxRange int64
		refs             []content.ChunkRef
		want             string
	}{
		{
			name: "adjacent bodies join", maxGap: 0, maxRange: 4 * MiB,
			refs: []content.ChunkRef{planRef("a", 0, 0, 100), planRef("b", 0, 100, 100), planRef("c", 0, 200, 50)},
			want: "1:0-250[a b c]",
		},
		{
			name: "gaps up to MaxGap join, longer ones split", maxGap: 64, maxRange: 4 * MiB,
			refs: []content.ChunkRef{planRef("a", 0, 0, 100), planRef("b", 0, 164, 100), planRef("c", 0, 329, 100)},
			want: "1:0-264[a b] 1:329-429[c]",
		},
		{
			name: "sorted by offset", maxGap: 10, maxRange: 4 * MiB,
			refs: []content.ChunkRef{planRef("c", 0, 1000, 10), planRef("b", 0, 10, 10), planRef("a", 0, 0, 10), planRef("d", 0, 5000, 10)},
			want: "1:0-20[a b] 1:1000-1010[c] 1:5000-5010[d]",
		},
		{
			name: "duplicates fetched once", maxGap: 0, maxRange: 4 * MiB,
			refs: []content.ChunkRef{planRef("a", 0, 0, 10), planRef("b", 0, 10, 10), planRef("a", 0, 0, 10), planRef("b", 0, 10, 10)},
			want: "1:0-20[a b]",
		},
		{
			name: "split at MaxRange", maxGap: 0, maxRange: 4 * MiB,
			refs: []content.ChunkRef{
				planRef("a", 0, 0, 1536<<10), planRef("b", 0, 1536<<10, 1536<<10), planRef("c", 0, 3072<<10, 1536<<10),
				planRef("d", 0, 4608<<10, 1536<<10), planRef("e", 0, 6144<<10, 1536<<10),
			},
			want: "1:0-3145728[a b] 1:3145728-6291456[c d] 1:6291456-7864320[e]",
		},
		{
			name: "exactly MaxRange is one request", maxGap: 0, maxRange: 4 * MiB,
			refs: []content.ChunkRef{planRef("a", 0, 0, MiB), planRef("b", 0, MiB, MiB), planRef("c", 0, 2*MiB, MiB), planRef("d", 0, 3*MiB, MiB)},
			want: "1:0-4194304[a b c d]",
		},
		{
			name: "packs never mix, and go in the order they first appear", maxGap: 1 << 20, maxRange: 4 * MiB,
			refs: []content.ChunkRef{planRef("x", 2, 0, 10), planRef("b", 1, 10, 10), planRef("a", 0, 0, 10), planRef("c", 1, 0, 10), planRef("y", 2, 10, 10)},
			want: "3:0-20[x y] 2:0-20[c b] 1:0-10[a]",
		},
		{
			name: "overlapping bodies are separate requests", maxGap: 100, maxRange: 4 * MiB,
			refs: []content.ChunkRef{planRef("a", 0, 0, 100), planRef("b", 0, 50, 100)},
			want: "1:0-100[a] 1:50-150[b]",
		},
		{name: "nothing to fetch", maxGap: 0, maxRange: 4 * MiB, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names := map[content.ChunkID]string{}
			for _, n := range "abcdexy" {
				names[content.SumChunk([]byte(string(n)))] = string(n)
			}
			spans, err := planClient(t, tt.maxGap, tt.maxRange).plan(tt.refs)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(spans, names); got != tt.want {
				t.Errorf("plan:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestPlanRefusesBadRefs(t *testing.T) {
	c := planClient(t, 0, 4<<20)
	noPack := planRef("a", 0, 0, 10)
	noPack.Pack = content.Digest{}
	for _, tt := range []struct {
		ref  content.ChunkRef
		want string
	}{
		{noPack, "no pack"},
		{planRef("a", 0, -5, 10), "out of range"},
		{planRef("a", 0, 0, 0), "out of range"},
		{planRef("a", 0, 0, content.MaxChunkSize+1), "out of range"},
	} {
		r := tt.ref
		_, err := c.plan([]content.ChunkRef{planRef("ok", 0, 0, 10), r})
		if err == nil || !strings.Contains(err.Error(), r.ID.String()) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("plan of pack %s offset %d stored %d: %v, want an error naming the chunk and saying %q", r.Pack.Short(), r.Offset, r.Stored, err, tt.want)
		}
	}
}

// TestPlanInvariants checks random layouts: every distinct chunk lands in
// exactly one span of its own pack, a pack's spans are together, packs go
// in the order they first appear in the refs, spans of a pack are in
// offset order and within MaxRange, and bodies in a span are at most
// MaxGap apart.
func TestPlanInvariants(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for iter := range 200 {
		maxGap := int64(r.IntN(4096))
		maxRange := int64(content.MaxChunkSize + r.IntN(content.MaxChunkSize))
		c := planClient(t, maxGap, maxRange)
		var refs []content.ChunkRef
		for p := range planPacks {
			var off int64
			for i := range r.IntN(40) {
				off += int64(r.IntN(int(2*maxGap + 1)))
				stored := 1 + r.IntN(content.MaxChunkSize/2)
				if r.IntN(4) == 0 {
					stored = content.MaxChunkSize
				}
				refs = append(refs, planRef(fmt.Sprintf("%d/%d", p, i), p, off, stored))
				off += int64(stored)
			}
		}
		r.Shuffle(len(refs), func(i, j int) { refs[i], refs[j] = refs[j], refs[i] })
		withDups := append(refs, refs[:len(refs)/3]...)
		var order []content.Digest
		for _, r := range withDups {
			if !slices.Contains(order, r.Pack) {
				order = append(order, r.Pack)
			}
		}
		spans, err := c.plan(withDups)
		if err != nil {
			t.Fatal(err)
		}
		var spanOrder []content.Digest
		for i, s := range spans {
			if i == 0 || spans[i-1].pack != s.pack {
				spanOrder = append(spanOrder, s.pack)
			}
		}
		if !slices.Equal(spanOrder, order) {
			t.Fatalf("iteration %d: spans go through packs %v, want them together in first-appearance order %v", iter, spanOrder, order)
		}
		seen := map[content.ChunkID]int{}
		for i, s := range spans {
			if i > 0 {
				prev := spans[i-1]
				if prev.pack == s.pack && prev.end > s.start {
					t.Fatalf("iteration %d: span %d (%d:%d-%d) after (%d:%d-%d)", iter, i, s.pack[0], s.start, s.end, prev.pack[0], prev.start, prev.end)
				}
				// Coalescing is greedy: a span ends only where the next
				// body is too far or would make the request too long.
				if prev.pack == s.pack && s.start-prev.end <= maxGap && s.refs[0].Offset+int64(s.refs[0].Stored)-prev.start <= maxRange {
					t.Fatalf("iteration %d: spans %d and %d could have been one request", iter, i-1, i)
				}
			}
			if s.end-s.start > maxRange {
				t.Fatalf("iteration %d: span %d is %d bytes, over %d", iter, i, s.end-s.start, maxRange)
			}
			if len(s.refs) == 0 || s.refs[0].Offset != s.start || s.refs[len(s.refs)-1].Offset+int64(s.refs[len(s.refs)-1].Stored) != s.end {
				t.Fatalf("iteration %d: span %d does not start and end at its bodies", iter, i)
			}
			for j, ref := range s.refs {
				seen[ref.ID]++
				if ref.Pack != s.pack {
					t.Fatalf("iteration %d: chunk of pack %d in a span of pack %d", iter, ref.Pack[0], s.pack[0])
				}
				if j > 0 {
					gap := ref.Offset - (s.refs[j-1].Offset + int64(s.refs[j-1].Stored))
					if gap < 0 || gap > maxGap {
						t.Fatalf("iteration %d: gap of %d bytes in a span (max gap %d)", iter, gap, maxGap)
					}
				}
			}
		}
		if len(seen) != len(refs) {
			t.Fatalf("iteration %d: %d of %d chunks planned", iter, len(seen), len(refs))
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("iteration %d: chunk %s planned %d times", iter, id.Short(), n)
			}
		}
	}
}
