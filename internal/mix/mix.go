// Package mix spreads integers over all 64 bits, for hashing and for
// sampling by a share.
package mix

// Gamma is splitmix64's increment, the golden ratio in 64 bits.
const Gamma = 0x9e3779b97f4a7c15

// Mix64 is splitmix64's finalizer: it spreads a counter, or a weak hash,
// over all 64 bits, so that a plain counter samples as well as a random
// number.
func Mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
