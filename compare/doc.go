// Package compare runs shadow comparisons of a supplier's two systems:
// for a number of requests or a time window, a sample of the supplier's
// requests is also sent to the system it does not use (platform keys or
// its own), both answers are recorded, and a report compares their errors,
// latency, tokens, cost and text, with a recommendation to migrate or to
// stay (docs/adr/0012-shadow-compare.md).
//
// Comparisons keeps its state in the store, so that every replica shadows
// the running comparisons and a report covers all of them. Shadow, the
// hot-path question, is lock-free and allocation-free.
package compare
