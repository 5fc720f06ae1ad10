package store

import (
	"crypto/rand"
	"strconv"
	"sync/atomic"
)

// idGen makes slot IDs unique across replicas without a random read per
// ID: a random instance prefix of 80 bits and a counter.
type idGen struct {
	prefix string
	n      atomic.Uint64
}

// newIDGen returns a generator with a fresh random prefix.
func newIDGen() *idGen {
	return &idGen{prefix: rand.Text()[:16] + "."}
}

// next returns a new ID.
func (g *idGen) next() string {
	return g.prefix + strconv.FormatUint(g.n.Add(1), 36)
}
