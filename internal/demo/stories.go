package demo

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/compare"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/migrate"
	"github.com/wedsync/veil/usage"
)

// Scenario 1: Capture Moments' June tier.
const (
	// peakRPM is the peak-season tier's platform requests per minute.
	peakRPM = 5
	// peakBurst is how many captions Capture Moments sends back to back:
	// more than two minutes' quota, so that the quota runs out even when
	// the burst straddles the start of a minute (the windows are fixed).
	peakBurst = 12
)

// Scenario 3 and the ramp: EverAfter Planning.
const (
	plannerID = "everafter-planning"
	// planRequests is how many questions of each of its two workflows the
	// comparison pairs: compare.MinPairs, the fewest a workflow is judged
	// on.
	planRequests = compare.MinPairs
	// rampSample is the ramp's gate sample: the requests each path needs
	// within a stage before the stage may advance.
	rampSample = 5
	// rampP95Ratio is the ramp's latency gate. A handful of local calls
	// makes a p95 jumpy, so the demo allows three times the source's
	// rather than the default 1.5.
	rampP95Ratio = 3
	// rampMaxRequests bounds the questions sent during the ramp.
	rampMaxRequests = 200
)

// captureMomentsPeak is scenario 1: in June, Capture Moments, a
// photographer on WedSync's keys, sends more captions than its
// peak-season tier allows. veil serves the request that finds the quota
// used up on the supplier's own key, records a migration (reason
// quota_exhausted) in the background, and routes the supplier to its own
// key for good: no request fails.
func captureMomentsPeak(ctx context.Context, e *env) Result {
	r := Result{Asked: fmt.Sprintf("%d gallery captions back to back, then 1", peakBurst)}
	caption := func(i int) openai.ChatCompletionRequest {
		return openai.ChatCompletionRequest{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: "You write short captions for a wedding photographer's client gallery."},
			{Role: openai.ChatMessageRoleUser, Content: fmt.Sprintf("Caption photo %d of the Hartley wedding: golden hour by the lake.", i+1)},
		}}
	}
	var sources, ids []string
	var tokens tokenCount
	ask := func(i int) bool {
		var one Result
		resp, ok := askChat(ctx, e.capture, caption(i), &one)
		if !ok {
			r.Err = fmt.Errorf("caption %d failed: %w", i+1, one.Err)
			return false
		}
		r.Provider, r.Model = one.Provider, one.Model
		sources, ids = append(sources, one.KeySource), append(ids, one.RequestID)
		tokens.add(resp.Usage)
		return true
	}
	start := time.Now()
	for i := range peakBurst {
		if !ask(i) {
			return r
		}
	}
	r.Latency = time.Since(start)

	// The app records the move in the background; wait for it (bounded).
	var mig migrate.Migration
	err := until(ctx, 5*time.Second, 10*time.Millisecond, func() (bool, error) {
		var list []migrate.Migration
		if err := e.admin.Call(ctx, http.MethodGet, "/admin/migrations", nil, &list); err != nil {
			return false, err
		}
		for _, m := range list {
			if m.Supplier == "capture-moments" {
				mig = m
				return m.Status == migrate.StatusCompleted, nil
			}
		}
		return false, nil
	})
	if err != nil {
		r.Err = fmt.Errorf("no completed migration recorded for capture-moments: %w", err)
		return r
	}
	// One more caption, once the move is recorded: the migration routes it.
	if !ask(peakBurst) {
		return r
	}
	r.Status = fmt.Sprintf("200 x%d", len(ids))
	r.KeySource = strings.Join(compact(sources), " -> ")
	r.Tokens = tokens.String()

	recs, err := e.records.waitAll(ctx, ids)
	if err != nil {
		r.Err = err
		return r
	}
	paid := ledgerOf(recs)
	onPlatform, byQuota, byMigration := 0, 0, 0
	for _, rec := range recs {
		switch {
		case rec.KeySource == "platform":
			onPlatform++
		case strings.HasPrefix(rec.Reason, "quota_exhausted"):
			byQuota++
		case rec.Reason == "migration" && rec.MigrationID == mig.ID:
			byMigration++
		}
	}
	r.Cost, r.Pays = paid.cost(), paid.payers()
	onOwn := len(ids) - onPlatform
	r.Note = fmt.Sprintf("%d on WedSync's key, %d on its own (%d by the tier's switch_to_client, %d routed by %s); 0 failed; "+
		"migration %s: reason %s, %s", onPlatform, onOwn, byQuota, byMigration, mig.ID, mig.ID, mig.Reason, mig.Status)
	switched := ""
	if len(mig.Events) > 0 {
		switched = " (\"" + mig.Events[len(mig.Events)-1].Message + "\")"
	}
	r.Story = []string{
		fmt.Sprintf("What happened: it is June, and Capture Moments is on WedSync's peak-season tier: %d requests a minute "+
			"on WedSync's keys, then on_exhausted: switch_to_client. It sent %d gallery captions back to back. The first %d "+
			"went out on WedSync's key; the next found the minute's quota used up, and instead of answering 429 veil served it "+
			"on Capture Moments' own key (reason quota_exhausted). In the background veil recorded migration %s from %s to %s, "+
			"reason %s, status %s%s, so the photographer now stays on its own key for good: %d calls were served by the tier's "+
			"action while the move was being recorded and %d by the migration, including one more caption sent afterwards. "+
			"POST /admin/migrations/%s/rollback would bring it back.",
			peakRPM, peakBurst, onPlatform, mig.ID, mig.From, mig.To, mig.Reason, mig.Status, switched, byQuota, byMigration, mig.ID),
		fmt.Sprintf("What the supplier saw: %d answers, all 200: no 429, no retry, no failed request. Only the "+
			"X-Veil-Key-Source header changed, from platform to client after the %s caption.", len(ids), ordinal(onPlatform)),
		"Who paid: " + paid.describe("Capture Moments' own OpenAI account, key "+keys.Fingerprint(e.captureKey)) +
			". From now on WedSync's quota no longer limits the photographer.",
	}
	ownCalls := 0
	for _, rq := range e.upstream.Requests() {
		if rq.Path == "/v1/chat/completions" && rq.Header.Get("Authorization") == "Bearer "+e.captureKey {
			ownCalls++
		}
	}
	firstOwn := slices.Index(sources, "client")
	switch {
	case onPlatform == 0 || onOwn == 0:
		r.Err = fmt.Errorf("want the first captions on WedSync's key and the rest on the supplier's own, got %s", r.KeySource)
	case firstOwn < 0 || slices.Contains(sources[firstOwn:], "platform"):
		r.Err = fmt.Errorf("once on its own key the supplier went back to WedSync's: %s", strings.Join(sources, ", "))
	case byQuota == 0:
		r.Err = fmt.Errorf("no call was served on the supplier's own key because the quota ran out")
	case sources[len(sources)-1] != "client" || byMigration == 0:
		r.Err = fmt.Errorf("the caption after the switch was not routed by migration %s", mig.ID)
	case mig.Reason != "quota_exhausted" || mig.To.Mode != billing.ModeClient:
		r.Err = fmt.Errorf("migration %s: want reason quota_exhausted towards client, got %s towards %s", mig.ID, mig.Reason, mig.To)
	case ownCalls != onOwn:
		r.Err = fmt.Errorf("the provider saw %d calls on Capture Moments' key, want %d", ownCalls, onOwn)
	}
	return r
}

// compareDoc is GET /admin/comparisons/{id}: the report and its table.
type compareDoc struct {
	compare.Report
	Text string `json:"text"`
}

// plannerCompares is scenario 3: EverAfter Planning, on WedSync's keys,
// compares them with its own key. Every planning question, in its two
// workflows (timelines and guest messages), is answered on WedSync's key
// and also sent, in the background, on EverAfter's key; the report
// compares the two per workflow, splits the cost by who pays, projects it
// a year forward from EverAfter's usage history and recommends.
func plannerCompares(ctx context.Context, e *env) Result {
	r := Result{Asked: fmt.Sprintf("%d timelines and %d guest replies, each shadowed", planRequests, planRequests)}
	// Sample every request for a minute: a comparison capped by a request
	// count lets each replica shadow only the part of the count it has
	// claimed, and claims more only at its next pass (every few seconds),
	// which a demo need not wait for.
	var cmp compare.Comparison
	if err := e.admin.Call(ctx, http.MethodPost, "/admin/comparisons",
		// A p95 of a few local calls swings with the machine's load: the
		// demo allows 3 times the primary's (production keeps 1.5).
		map[string]any{"supplier": plannerID, "sample": 1, "window": "1m", "max_p95_ratio": 3}, &cmp); err != nil {
		r.Err = err
		return r
	}
	topics := []string{"the seating plan", "the florist's deposit", "the rain plan", "the band's set list", "the cake tasting",
		"the hotel block"}
	type question struct {
		client *openai.Client
		text   string
	}
	var qs []question
	for i := range planRequests {
		qs = append(qs,
			question{e.timelines, fmt.Sprintf("Week %d before the Okafor wedding: draft the timeline for %s.", planRequests-i,
				topics[i%len(topics)])},
			question{e.guests, fmt.Sprintf("Guest %d asks about %s at the Okafor wedding: draft a short reply.", i+1,
				topics[(i+3)%len(topics)])})
	}
	// Four at a time, as an app with several users would send them.
	var (
		mu     sync.Mutex
		ids    []string
		tokens tokenCount
		failed error
	)
	next := make(chan question)
	var wg sync.WaitGroup
	start := time.Now()
	for range 4 {
		wg.Go(func() {
			for q := range next {
				var one Result
				resp, ok := askChat(ctx, q.client, openai.ChatCompletionRequest{Model: "gpt-4o-mini",
					Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: q.text}}}, &one)
				mu.Lock()
				switch {
				case !ok:
					failed = fmt.Errorf("%q failed: %w", q.text, one.Err)
				case one.KeySource != "platform":
					failed = fmt.Errorf("%q was answered on %s; a comparison must not move the supplier", q.text, one.KeySource)
				default:
					r.Provider, r.Model, r.KeySource = one.Provider, one.Model, one.KeySource
					ids = append(ids, one.RequestID)
					tokens.add(resp.Usage)
				}
				mu.Unlock()
			}
		})
	}
	for _, q := range qs {
		next <- q
	}
	close(next)
	wg.Wait()
	if failed != nil {
		r.Err = failed
		return r
	}
	r.Latency = time.Since(start)
	r.Status, r.Tokens = fmt.Sprintf("200 x%d", len(ids)), tokens.String()

	// Shadow calls run after each answer, in the background: wait until
	// every pair is recorded (bounded), then stop the comparison.
	var doc compareDoc
	path := "/admin/comparisons/" + cmp.ID
	err := until(ctx, 5*time.Second, 10*time.Millisecond, func() (bool, error) {
		if err := e.admin.Call(ctx, http.MethodGet, path, nil, &doc); err != nil {
			return false, err
		}
		return doc.Comparison.Recorded >= int64(len(qs)), nil
	})
	if err != nil {
		r.Err = fmt.Errorf("comparison %s recorded %d of %d pairs: %w", cmp.ID, doc.Comparison.Recorded, len(qs), err)
		return r
	}
	if err := e.admin.Call(ctx, http.MethodPost, path+"/stop", nil, nil); err != nil {
		r.Err = err
		return r
	}
	if err := e.admin.Call(ctx, http.MethodGet, path, nil, &doc); err != nil {
		r.Err = err
		return r
	}
	e.advice = doc.Recommendation

	both := slices.Clone(ids) // the answers', their shadows', then their scoring calls'
	for _, id := range ids {
		both = append(both, id+"-shadow")
	}
	for _, id := range ids {
		both = append(both, id+"-similarity")
	}
	all, err := e.records.waitAll(ctx, both)
	if err != nil {
		r.Err = err
		return r
	}
	recs, srecs, scored := all[:len(ids)], all[len(ids):2*len(ids)], all[2*len(ids):]
	for i, rec := range scored {
		if !rec.Shadow || rec.Billed != billing.PaidByPlatform || rec.KeySource != "platform" {
			r.Err = fmt.Errorf("scoring of %s: want a shadow call on WedSync's key billed to the platform, got key source %s billed %s",
				ids[i], rec.KeySource, rec.Billed)
			return r
		}
	}
	for i, srec := range srecs {
		if !srec.Shadow || srec.KeySource != "client" {
			r.Err = fmt.Errorf("shadow of %s: want a shadow call on the planner's own key, got key source %s", ids[i], srec.KeySource)
			return r
		}
	}
	paid, shadows := ledgerOf(recs), ledgerOf(srecs)
	r.Cost, r.Pays = paid.cost(), paid.payers()
	var perWorkflow []string
	for _, w := range doc.Workflows {
		perWorkflow = append(perWorkflow, fmt.Sprintf("%s %d pairs: %s", w.Workflow, w.Sample.Recorded, w.Recommendation))
	}
	r.Note = fmt.Sprintf("comparison %s: %d pairs (%s); recommendation: %s", cmp.ID, doc.Sample.Recorded,
		strings.Join(perWorkflow, ", "), doc.Recommendation)
	r.Detail = doc.Text
	projection := "no projection"
	if p := doc.Projection; p != nil {
		projection = fmt.Sprintf("over the next 12 months, projected from its last %d days of usage (%d requests seeded in the "+
			"demo's store, about %.1f times busier a day from March to October), WedSync would pay $%.2f on its keys now and "+
			"EverAfter $%.2f on its own after a move", p.HistoryDays, e.history, p.PeakFactor,
			float64(p.Total.NowPlatformMicros)/1e6, float64(p.Total.AfterClientMicros)/1e6)
	}
	r.Story = []string{
		fmt.Sprintf("What happened: EverAfter Planning runs on WedSync's keys and has its own OpenAI key ready. Before "+
			"moving, it asked veil to compare: POST /admin/comparisons with sample 1 shadowed every request. Its app sent %d "+
			"planning timelines (X-Workflow: %s) and %d guest replies (%s), four at a time; veil answered each on "+
			"WedSync's key and then, off the request's path, sent the same request on EverAfter's own key and recorded both "+
			"answers. With all %d pairs in, the comparison was stopped. Its report (below) judges each workflow on its own "+
			"(errors, latency, how alike the answers are, by the method named) and needs %d pairs of each before it advises; "+
			"a workflow that degrades would keep the planner where it is. It recommends: %s.",
			planRequests, timelineWorkflow, planRequests, guestsWorkflow, len(qs), compare.MinPairs, doc.Recommendation),
		fmt.Sprintf("What it costs: both keys call the same provider and model, so a request costs the same either way; what "+
			"changes is who pays. The report splits it: %s.", projection),
		fmt.Sprintf("What the supplier saw: %d answers, all 200, all from WedSync's key as before. The shadow answers "+
			"were compared and dropped, never returned, and no one waited for them.", len(ids)),
		"Who paid: " + paid.describe("EverAfter") + " for the answers it got. " + shadowBilling(shadows, string(doc.Comparison.Billed)) +
			" " + scoringBilling(scored),
	}
	c := doc.Comparison
	n := int64(len(qs))
	switch {
	case c.Recorded != n || c.Shadowed != n || doc.Primary.Requests != n || doc.Shadow.Requests != n:
		r.Err = fmt.Errorf("want %d pairs of %d shadowed requests, got %d of %d (%d primary, %d shadow requests)", n, n,
			c.Recorded, c.Shadowed, doc.Primary.Requests, doc.Shadow.Requests)
	case doc.Primary.Errors+doc.Shadow.Errors != 0:
		r.Err = fmt.Errorf("%d primary and %d shadow errors", doc.Primary.Errors, doc.Shadow.Errors)
	case doc.Primary.System != "platform" || doc.Shadow.System != "client" || doc.Primary.PaidBy != "platform" ||
		doc.Shadow.PaidBy != "client":
		r.Err = fmt.Errorf("compared %s (paid by %s) with %s (paid by %s), want platform with client", doc.Primary.System,
			doc.Primary.PaidBy, doc.Shadow.System, doc.Shadow.PaidBy)
	case doc.Similarity.Pairs != n || doc.Similarity.Mean < 0.99:
		// The fake answers a prompt the same way on every key.
		r.Err = fmt.Errorf("want %d identical pairs of answers, got %d with mean similarity %.2f", n,
			doc.Similarity.Pairs, doc.Similarity.Mean)
	case len(doc.Workflows) != 2 || doc.Workflows[0].Sample.Recorded != planRequests || doc.Workflows[1].Sample.Recorded != planRequests:
		r.Err = fmt.Errorf("want %d pairs in each of 2 workflows, got %s", planRequests, strings.Join(perWorkflow, ", "))
	case !doc.Cost.SamePrice:
		r.Err = fmt.Errorf("the same provider and model cost %.3f times as much on the supplier's key", doc.Cost.Ratio)
	case doc.Projection == nil || doc.Projection.HistoryDays < 300 || doc.Projection.Total.NowPlatformMicros <= 0 ||
		doc.Projection.Total.AfterClientMicros != doc.Projection.Total.NowPlatformMicros:
		r.Err = fmt.Errorf("the projection does not cover a year of history paid by WedSync now and the planner after: %+v",
			doc.Projection)
	case doc.Recommendation != compare.Migrate || len(doc.Reasons) == 0 || doc.Text == "":
		r.Err = fmt.Errorf("the report recommends %q with %d reasons; two workflows of %d alike pairs should migrate",
			doc.Recommendation, len(doc.Reasons), planRequests)
	case shadows.total() != len(qs):
		r.Err = fmt.Errorf("want %d shadow usage records, got %d", len(qs), shadows.total())
	}
	return r
}

// scoringBilling says what scoring the pairs' similarity cost and who
// paid: WedSync, whoever paid for the answers.
func scoringBilling(scored []*usage.Record) string {
	judge, embed := 0, 0
	for _, rec := range scored {
		if rec.Endpoint == "embeddings" {
			embed++
		} else {
			judge++
		}
	}
	return fmt.Sprintf("Scoring how alike the pairs were took %d judge calls (gpt-4o-mini, for the timelines: same events, "+
		"order and times?) and %d embeddings calls (for the guest replies), on WedSync's key: %s.", judge, embed,
		ledgerOf(scored).describe("EverAfter"))
}

// shadowBilling says who the shadow calls' usage records bill, next to
// what the comparison was started with.
func shadowBilling(shadows ledger, asked string) string {
	s := fmt.Sprintf("The %d shadow calls ran on EverAfter's own key, and veil's usage records (shadow: true) say %s.",
		shadows.total(), shadows.describe("EverAfter's own OpenAI account"))
	if shadows.calls[asked] != shadows.total() {
		s += " The comparison was started to bill its shadows to " + asked + ", but a call on a supplier's own key is " +
			"recorded as billed to the client, whose provider account it is charged to: the trial was not free for EverAfter."
	}
	return s
}

// plannerRamp follows scenario 3: EverAfter Planning moves to its own key
// in a short ramp (50%, then 100%), gated on the health of both paths,
// and completes.
func plannerRamp(ctx context.Context, e *env) Result {
	r := Result{Asked: "guest questions while the share ramps"}
	body := map[string]any{
		"supplier": plannerID,
		"to":       map[string]string{"mode": string(billing.ModeClient)},
		"stages":   []map[string]any{{"share": 0.5, "dwell": "100ms"}, {"share": 1, "dwell": "100ms"}},
		"gates":    map[string]any{"min_sample": rampSample, "max_p95_ratio": rampP95Ratio},
		"reason":   "the comparison recommended: " + dash(e.advice),
	}
	var mig migrate.Migration
	if err := e.admin.Call(ctx, http.MethodPost, "/admin/migrations", body, &mig); err != nil {
		r.Err = err
		return r
	}
	planned := mig
	path := "/admin/migrations/" + mig.ID
	if err := e.admin.Call(ctx, http.MethodPost, path+"/start", nil, &mig); err != nil {
		r.Err = err
		return r
	}
	// Ask while the migration ramps: each stage needs rampSample requests
	// on each path it serves before the driver (once a second) moves it on.
	// The user field keeps a guest's conversation on one system.
	type tally struct{ platform, client int }
	seen := map[int]*tally{}
	var sources, ids []string
	var tokens tokenCount
	ask := func(i int) bool {
		var one Result
		resp, ok := askChat(ctx, e.planner, openai.ChatCompletionRequest{Model: "gpt-4o-mini", User: fmt.Sprintf("guest-%03d", i),
			Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser,
				Content: fmt.Sprintf("Guest %d asks whether plus-ones are welcome at the Okafor wedding.", i)}},
		}, &one)
		if !ok {
			r.Err = fmt.Errorf("guest question %d failed: %w", i, one.Err)
			return false
		}
		r.Provider, r.Model = one.Provider, one.Model
		sources, ids = append(sources, one.KeySource), append(ids, one.RequestID)
		tokens.add(resp.Usage)
		if seen[mig.Stage] == nil {
			seen[mig.Stage] = &tally{}
		}
		if one.KeySource == "client" {
			seen[mig.Stage].client++
		} else {
			seen[mig.Stage].platform++
		}
		return true
	}
	start := time.Now()
	n := 0
	err := until(ctx, 10*time.Second, 20*time.Millisecond, func() (bool, error) {
		if err := e.admin.Call(ctx, http.MethodGet, path, nil, &mig); err != nil {
			return false, err
		}
		if mig.Status != migrate.StatusRamping {
			return true, nil
		}
		t := seen[mig.Stage]
		last := mig.Stage == len(mig.Stages)-1
		for t == nil || t.client < rampSample || (!last && t.platform < rampSample) {
			if n >= rampMaxRequests {
				return false, fmt.Errorf("stage %d did not get %d requests on each path in %d requests", mig.Stage+1, rampSample, n)
			}
			n++
			if !ask(n) {
				return false, r.Err
			}
			t = seen[mig.Stage]
		}
		return false, nil // enough for this stage: wait for the driver
	})
	r.Latency = time.Since(start)
	if err != nil {
		if r.Err == nil {
			r.Err = fmt.Errorf("migration %s did not finish its ramp (%s at stage %d): %w", mig.ID, mig.Status, mig.Stage+1, err)
		}
		return r
	}
	if mig.Status == migrate.StatusCompleted {
		n++
		if !ask(n) { // after the ramp: the supplier's own key
			return r
		}
	}
	var v migrate.Validation
	if err := e.admin.Call(ctx, http.MethodGet, path+"/validate", nil, &v); err != nil {
		r.Err = err
		return r
	}
	recs, err := e.records.waitAll(ctx, ids)
	if err != nil {
		r.Err = err
		return r
	}
	paid := ledgerOf(recs)
	r.Status, r.Tokens = fmt.Sprintf("200 x%d", len(ids)), tokens.String()
	r.KeySource = "platform+client -> client"
	r.Cost, r.Pays = paid.cost(), paid.payers()
	var stages []string
	for _, st := range v.Stages {
		s := fmt.Sprintf("stage %d (%.0f%%): %d on its own key", st.Stage+1, st.Share*100, st.Target.Requests)
		if st.Source.Requests > 0 || st.Share < 1 {
			s += fmt.Sprintf(", %d on WedSync's", st.Source.Requests)
		}
		stages = append(stages, s)
	}
	var kinds []string
	for _, ev := range mig.Events {
		kinds = append(kinds, ev.Kind)
	}
	r.Note = fmt.Sprintf("migration %s %s: %s; validation %s", mig.ID, strings.Join(kinds, " -> "), strings.Join(stages, "; "),
		v.Verdict)
	est := planned.Estimate
	estimate := "there was no recorded usage yet to estimate the cost from"
	if est.Requests > 0 {
		estimate = fmt.Sprintf("its usage of the last %d days, %d requests, comes to $%.8f at today's prices billed to %s now "+
			"and $%.8f billed to %s after the move", est.Days, est.Requests, est.CurrentUSD, est.BilledNow, est.TargetUSD, est.BilledAfter)
		if est.Requests > planRequests {
			estimate += " (the daily aggregates count the comparison's shadow calls too)"
		}
	}
	probe := "the provider accepted it"
	if !planned.Probe.OK {
		probe = "the provider refused it"
	}
	r.Story = []string{
		fmt.Sprintf("What happened: the comparison said %q, so EverAfter planned its move (POST /admin/migrations): veil "+
			"probed its key %s live without spending tokens (GET /v1/models): %s; and estimated the cost: %s. The "+
			"demo asked for two short stages, 50%% then 100%%, each dwelling 100ms, with gates of at least %d requests per "+
			"path in a stage, at most %.0f%% errors on its own key and a p95 at most %g times WedSync's (loosened from 1.5 for "+
			"a handful of local calls). Once started, half of the guests' conversations (chosen by the request's user field) "+
			"went to its own key; with the sample in and the gates passing, the driver moved it to 100%%, then completed it: "+
			"%s.", dash(e.advice), planned.Probe.Fingerprint, probe, estimate, rampSample, planned.Gates.MaxErrorRate*100,
			float64(rampP95Ratio), strings.Join(stages, "; ")),
		fmt.Sprintf("Validation (GET /admin/migrations/%s/validate): %s; WedSync's key p95 %.0fms, own key p95 %.0fms, "+
			"%d and %d errors.", mig.ID, v.Verdict, v.Source.P95MS, v.Target.P95MS, v.Source.Errors, v.Target.Errors),
		fmt.Sprintf("What the supplier saw: %d answers, all 200, whichever key served them; the last one, after the "+
			"ramp, on its own key.", len(ids)),
		"Who paid: " + paid.describe("EverAfter's own OpenAI account, key "+keys.Fingerprint(e.plannerKey)) +
			"; from now on EverAfter pays for all of its calls.",
	}
	first := seen[0]
	switch {
	case mig.Status != migrate.StatusCompleted:
		r.Err = fmt.Errorf("migration %s ended %s: %v", mig.ID, mig.Status, kinds)
	case !slices.Contains(kinds, migrate.EventAdvanced) || !slices.Contains(kinds, migrate.EventCompleted):
		r.Err = fmt.Errorf("migration %s completed without advancing through its stages: %v", mig.ID, kinds)
	case first == nil || first.client == 0 || first.platform == 0:
		r.Err = fmt.Errorf("the first stage did not split the traffic between both keys")
	case sources[len(sources)-1] != "client":
		r.Err = fmt.Errorf("after the ramp a call was served on %s", sources[len(sources)-1])
	case v.Source.Errors+v.Target.Errors != 0:
		r.Err = fmt.Errorf("the migration's paths counted %d errors", v.Source.Errors+v.Target.Errors)
	}
	return r
}

// tokenCount adds up the tokens of several answers.
type tokenCount struct{ in, out int }

func (t *tokenCount) add(u openai.Usage) { t.in, t.out = t.in+u.PromptTokens, t.out+u.CompletionTokens }

func (t tokenCount) String() string { return fmt.Sprintf("%d in / %d out", t.in, t.out) }

// ledger adds up calls and their cost by who is billed: platform
// (WedSync), client (the supplier) or none (the cache).
type ledger struct {
	calls map[string]int
	usd   map[string]float64
	order []string
}

// ledgerOf adds up recs.
func ledgerOf(recs []*usage.Record) ledger {
	var l ledger
	for _, rec := range recs {
		l.add(rec)
	}
	return l
}

func (l *ledger) add(rec *usage.Record) {
	if l.calls == nil {
		l.calls, l.usd = map[string]int{}, map[string]float64{}
	}
	payer := string(rec.Billed)
	if l.calls[payer] == 0 {
		l.order = append(l.order, payer)
	}
	l.calls[payer]++
	if rec.CostUSD != nil {
		l.usd[payer] += *rec.CostUSD
	}
}

// total is the number of calls.
func (l ledger) total() int {
	n := 0
	for _, c := range l.calls {
		n += c
	}
	return n
}

// cost is the total cost, for the table.
func (l ledger) cost() string {
	sum := 0.0
	for _, v := range l.usd {
		sum += v
	}
	return fmt.Sprintf("$%.8f", sum)
}

// payers lists who is billed, in the order they first were.
func (l ledger) payers() string { return strings.Join(l.order, ", ") }

// describe says who paid for how many calls and how much; client names
// the supplier's side.
func (l ledger) describe(client string) string {
	var parts []string
	for _, b := range l.order {
		who := b
		switch b {
		case "platform":
			who = "WedSync (billed: platform)"
		case "client":
			who = client + " (billed: client)"
		case "none":
			who = "nobody (the cache)"
		}
		parts = append(parts, fmt.Sprintf("%s paid for %d call%s, $%.8f", who, l.calls[b], plural(l.calls[b]), l.usd[b]))
	}
	if len(parts) == 0 {
		return "no one: there were no calls"
	}
	return strings.Join(parts, "; ")
}

// String describes the ledger with the supplier as the client side.
func (l ledger) String() string { return l.describe("the supplier") }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// ordinal is 1st, 2nd, 3rd, 4th...
func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprintf("%d%s", n, suffix)
}
