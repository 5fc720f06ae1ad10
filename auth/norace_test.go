//go:build !race

package auth_test

// raceEnabled is true when the race detector is on; it inflates allocation
// counts, so allocation guards stand down.
const raceEnabled = false
