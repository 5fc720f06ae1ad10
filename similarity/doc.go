// Package similarity scores how alike the two answers of a shadow
// comparison are (docs/adr/0024-answer-similarity.md), with a method
// chosen per workflow in the config's comparisons.similarity section:
//
//   - embeddings: both answers are embedded by an embeddings model
//     (POST /v1/embeddings through a configured provider, with one of its
//     platform keys) and scored by the cosine similarity of their vectors,
//     clamped to [0, 1];
//   - judge: a chat model compares them against a rubric of the workflow
//     (a timeline must keep the same events, order and times) at
//     temperature 0 and answers with a strict JSON verdict
//     {"score": 0..1, "reason": "..."}; the answers are delimited by lines
//     carrying a random marker and are declared data, never instructions;
//   - lexical: compare.Similarity, word overlap. It is the default, and the
//     fallback of the other two: when their call fails (timeout, error, an
//     answer that does not parse), the pair is scored lexically and its
//     method says so, such as "lexical (fallback from judge)", and the
//     fallback is counted.
//
// A Score's Method is what a report prints: "embeddings
// text-embedding-3-small", "judge gpt-4o-mini", "lexical". Its Threshold
// is the workflow's, at or above which the pair counts as similar.
//
// The calls embeddings and judge make are the platform's shadow spend:
// each emits a usage record with shadow true, billed to the platform, with
// the workflow and the comparison's ID, priced like any other call. No
// supplier pays for them.
//
// A Set is the compiled configuration, built with every config generation
// (see internal/generation) so that it follows reloads. Calibrate finds,
// from labelled pairs, the threshold that best separates good answers
// from bad ones per workflow (veil compare calibrate).
package similarity
