package fakeopenai

import (
	"strings"

	"github.com/wedsync/veil/internal/tokencount"
)

// sentences is the corpus every generated answer is drawn from. One sentence
// carries non-ASCII text so that proxies get exercised with multi-byte UTF-8.
var sentences = []string{
	"The ceremony begins at four o'clock in the rose garden.",
	"Please RSVP by the first of June so we can finalize the seating chart.",
	"The bride's veil was hand-stitched by her grandmother.",
	"Dinner will be served under the oak trees after the first dance.",
	"Our florist recommends peonies, ranunculus and garden roses for a June wedding.",
	"The string quartet will play Pachelbel's Canon during the processional.",
	"Guests are invited to sign the guestbook near the champagne tower.",
	"A shuttle will leave the hotel lobby every twenty minutes starting at three.",
	"The three-tier cake has lemon sponge with elderflower buttercream.",
	"Remember to bring the rings, the marriage license and a spare pair of shoes.",
	"The photographer will capture portraits at golden hour by the lake.",
	"Vegetarian and gluten-free menus are available on request.",
	"The best man's toast should stay under five minutes.",
	"Sparklers will light the send-off at eleven o'clock.",
	"Each table is named after a place the couple visited together.",
	"Café au lait and macarons will be served during the cocktail hour 💐.",
	"The dress code is garden formal, so comfortable heels are a good idea.",
	"A rain plan moves the ceremony into the glass conservatory.",
	"The couple asks guests to share photos with the hashtag #EverAfter.",
	"Thank you for celebrating this day with us.",
}

// sentenceWords holds sentences split on whitespace; generated answers are
// slices of these words.
var sentenceWords = func() [][]string {
	out := make([][]string, len(sentences))
	for i, s := range sentences {
		out[i] = strings.Fields(s)
	}
	return out
}()

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
	golden64    = 0x9e3779b97f4a7c15
)

// fnvString folds s into the FNV-1a hash h.
func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

// fnvBytes folds p into the FNV-1a hash h.
func fnvBytes(h uint64, p []byte) uint64 {
	for _, c := range p {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return h
}

// splitmix advances the SplitMix64 state x and returns the next value.
func splitmix(x *uint64) uint64 {
	*x += golden64
	z := *x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// answer is one generated choice: text, or function calls when calls is
// not empty.
type answer struct {
	words  []string
	calls  []toolCall
	finish string // "stop", "length", "tool_calls" or "function_call"
}

// generate returns the deterministic answer for seed. When target > 0 the
// answer has exactly target words; otherwise it has two to four sentences.
// When limit > 0 and the answer is longer than limit tokens of enc, it is
// cut to the words that fit (at least one) and finishes with "length".
func generate(seed uint64, target, limit int, enc tokencount.Encoding) answer {
	x := seed
	sentencesWanted := 2 + int(splitmix(&x)%3)
	words := make([]string, 0, 48)
	last := -1
	for i := 0; ; i++ {
		if target > 0 {
			if len(words) >= target {
				break
			}
		} else if i >= sentencesWanted {
			break
		}
		idx := int(splitmix(&x) % uint64(len(sentences)))
		if idx == last {
			idx = (idx + 1) % len(sentences)
		}
		last = idx
		words = append(words, sentenceWords[idx]...)
	}
	if target > 0 {
		words = words[:target]
	}
	return fitAnswer(words, limit, enc)
}

// fitAnswer returns the answer of words, cut to the words that fit in
// limit tokens of enc (at least one) with finish "length" when limit > 0
// and they do not all fit.
func fitAnswer(words []string, limit int, enc tokencount.Encoding) answer {
	a := answer{words: words, finish: "stop"}
	if limit > 0 && len(a.words) > 0 {
		if n := fitWords(a.words, limit, enc); n < len(a.words) {
			a.words = a.words[:n]
			a.finish = "length"
		}
	}
	return a
}

// fitWords returns how many leading words, joined by spaces, fit in limit
// tokens of enc (at least one). tiktoken's encodings never merge across a
// space before a word, so the tokens of the joined words are the sum of
// each word's, counted with its leading space.
func fitWords(words []string, limit int, enc tokencount.Encoding) int {
	n := enc.Count(words[0])
	for i := 1; i < len(words); i++ {
		if n += enc.Count(" " + words[i]); n > limit {
			return i
		}
	}
	if n > limit {
		return 1
	}
	return len(words)
}

// choiceSeed derives the seed of choice i from the request seed.
func choiceSeed(seed uint64, i int) uint64 {
	x := seed + uint64(i)*golden64
	return splitmix(&x)
}

// joinWords returns words joined by single spaces.
func joinWords(words []string) string {
	return strings.Join(words, " ")
}
