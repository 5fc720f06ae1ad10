// Package compare runs shadow comparisons of a supplier's two systems:
// for a number of requests or a time window, a sample of the supplier's
// requests is also sent to the system it does not use (platform keys or
// its own), both answers are recorded, and a report compares their errors,
// latency, tokens, cost and text, overall and per workflow, splits the
// cost now and after a move by who pays, projects it a year forward from
// the supplier's usage history with the wedding season, and recommends to
// migrate, to stay or to collect more data, with the sample it rests on
// (docs/adr/0012-shadow-compare.md, docs/adr/0025-comparison-advice.md).
//
// Comparisons keeps its state in the store, so that every replica shadows
// the running comparisons and a report covers all of them. Shadow, the
// hot-path question, is lock-free and allocation-free; a chosen request
// counts as shadowed only when its shadow call is made (Begin).
package compare
