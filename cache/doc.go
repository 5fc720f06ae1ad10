// Package cache is veil's response cache: it decides which OpenAI-compatible
// requests may be answered from a cache, derives tenant-scoped canonical keys
// from request bodies, stores answers in a ristretto cache, and converts
// between streamed (SSE) and plain answers so that one stored answer serves
// both kinds of request.
//
// A proxy uses it in four steps:
//
//  1. Cacheable tells whether a request is deterministic enough to cache.
//  2. NewKey hashes the scope (by default the supplier ID, so tenants never
//     share answers; a platform-wide scope only where configuration allows
//     it) and the canonical form of the JSON body, leaving out the top-level
//     fields listed in IgnoredFields.
//  3. Answers.Get looks the answer up; on a miss, Answers.Do (or Answers.Set after
//     the upstream call) stores the Entry built from the upstream answer.
//  4. Entry.JSONBody and Entry.StreamEvents give the answer in the form the
//     client asked for, whichever form was stored.
//
// The scope given to NewKey should cover everything outside the body that
// changes the answer: the tenant, and where it matters the endpoint or the
// upstream the request is routed to. The scope given to Answers groups
// entries for Answers.Purge; it is usually the tenant alone.
package cache
