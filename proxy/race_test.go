//go:build race

package proxy_test

// raceEnabled is true when the race detector is on; it inflates allocation
// counts, so allocation guards stand down.
const raceEnabled = true
