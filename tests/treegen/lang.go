package treegen

import (
	"slices"
	"sync"
)

// The pseudo-language shared by every tree and every seed (real systems are
// all written in one language too, so Upgrade's new text uses the same words
// as the tree it edits): a few thousand syllable-built words ranked by a Zipf
// law, frequent words short, plus recurring phrases.
const (
	vocabSize  = 4096
	phraseSize = 1024
	langSeed   = 0x6d65736863617374 // "meshcast"
)

type language struct {
	words   [][]byte    // by rank
	zipf    alias       // over words
	content alias       // over ranks >= 64: the topic-word pool a file draws from
	next    [][4]uint16 // per word rank: its usual successors
	phrases [][]int     // word ranks
	pzipf   alias       // over phrases
	// code vocabulary
	pyKw, shKw [][]byte
}

var (
	langOnce sync.Once
	theLang  *language
)

func lang() *language {
	langOnce.Do(func() { theLang = buildLanguage() })
	return theLang
}

var (
	onsets = []string{"", "", "", "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
		"st", "tr", "pr", "ch", "sh", "th", "gr", "bl", "cl", "fl", "br", "dr", "sp", "qu", "sl", "j"}
	nuclei = []string{"a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ea", "ou", "io", "ee", "y", "ia"}
	codas  = []string{"", "", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "x", "rt", "ll", "ns", "nt", "ss"}
)

func buildLanguage() *language {
	r := newRNG(langSeed)
	seen := map[string]bool{}
	type cand struct {
		w   string
		key int
	}
	var cands []cand
	for len(cands) < vocabSize {
		ns := 1 + r.skewed(4)
		if r.pct(30) {
			ns = 1 + r.intn(3)
		}
		w := ""
		for range ns {
			w += onsets[r.intn(len(onsets))] + nuclei[r.intn(len(nuclei))]
			if r.pct(45) {
				w += codas[r.intn(len(codas))]
			}
		}
		if len(w) < 2 || len(w) > 14 || seen[w] {
			continue
		}
		seen[w] = true
		// Frequent words are short: rank by length, blurred.
		cands = append(cands, cand{w, len(w)*16 + r.intn(40)})
	}
	slices.SortStableFunc(cands, func(a, b cand) int { return a.key - b.key })
	l := &language{}
	// Each word is a window of an arena with at least 16 bytes of capacity,
	// so appendWord can copy it with two 8-byte moves.
	arena := make([]byte, 0, vocabSize*16+16)
	for _, c := range cands {
		off := len(arena)
		arena = append(arena, c.w...)
		l.words = append(l.words, arena[off:len(arena):off+16])
	}
	l.zipf = newAlias(zipfWeights(vocabSize, 3, 0))
	l.content = newAlias(zipfWeights(vocabSize-64, 40, 0))
	l.next = make([][4]uint16, vocabSize)
	for i := range l.next {
		for j := range l.next[i] {
			l.next[i][j] = uint16(l.zipf.draw(&r))
		}
	}
	for range phraseSize {
		n := 2 + r.skewed(4)
		p := make([]int, n)
		for i := range p {
			p[i] = l.zipf.draw(&r)
		}
		l.phrases = append(l.phrases, p)
	}
	l.pzipf = newAlias(zipfWeights(phraseSize, 2, 0))
	for _, k := range []string{"self", "return", "if", "not", "None", "def", "in", "for", "is", "import", "from",
		"else", "True", "False", "elif", "raise", "class", "try", "except", "with", "as", "and", "or",
		"yield", "lambda", "pass", "while", "break", "continue", "assert", "isinstance", "len", "str",
		"int", "dict", "list", "super", "kwargs", "args", "logger", "os", "path", "sys", "re", "value", "name"} {
		l.pyKw = append(l.pyKw, []byte(k))
	}
	for _, k := range []string{"if", "then", "fi", "echo", "exit", "case", "esac", "for", "do", "done", "local",
		"return", "test", "while", "shift", "set", "export", "true", "false", "grep", "sed", "printf"} {
		l.shKw = append(l.shKw, []byte(k))
	}
	return l
}
