// Package demo runs veil end to end on one machine: an embedded fake
// OpenAI upstream, a real veil on free loopback ports, real go-openai
// clients and veil's admin API, and a readable report of what each
// wedding scenario asked and what served it. The wedding stories (a
// photographer out of June quota, a venue's key outage, a planner
// comparing both systems and then ramping to its own key) each get a
// section on what happened, what the supplier saw and who paid.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/wedsync/veil/admin"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/app"
	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/logging"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/usage"
)

// Options configure a demo run.
type Options struct {
	// Out receives the report.
	Out io.Writer
	// Log receives veil's own log lines; nil discards them.
	Log io.Writer
	// Console keeps veil running once the stories are told, until ctx
	// ends, so that its console can be opened in a browser: the
	// comparisons, migrations, suppliers and usage the stories made.
	Console bool
}

// Result is what one scenario observed.
type Result struct {
	Scenario  string
	Asked     string
	Status    string
	Provider  string
	KeySource string
	Model     string
	Tokens    string
	// RequestID is veil's X-Request-ID, which finds the call's usage record.
	RequestID string
	// Cost and Pays come from the usage record.
	Cost, Pays string
	Latency    time.Duration
	TTFT       time.Duration
	Note       string
	Err        error
	// Title and Story tell a wedding story: its title, and a few lines on
	// what happened, what the supplier saw and who paid. Detail, when set,
	// is printed under the story as it is (the comparison's table).
	Title  string
	Story  []string
	Detail string
}

// env is what every scenario gets: a client pointed at veil, and the fake
// upstream behind it.
type env struct {
	// client is the WedSync app acting for Rose Venue, a platform-mode
	// supplier (WedSync's keys).
	client *openai.Client
	// photographer is the app acting for Bella Photography, which brings
	// its own OpenAI key.
	photographer *openai.Client
	// intruder sends a token veil does not know.
	intruder *openai.Client
	upstream *fakeopenai.Server
	// bellaKey is Bella's own key, to check it was the one used.
	bellaKey string
	// coordinator is the app acting for Willow Barn, a venue whose own key
	// has an outage in scenario 2; willowKey is that key and platformKey
	// WedSync's, so the outage can be switched on and off at the provider.
	coordinator            *openai.Client
	willowKey, platformKey string
	// capture is the app acting for Capture Moments, a photographer on
	// platform keys whose June tier runs out in scenario 1; captureKey is
	// its own key.
	capture    *openai.Client
	captureKey string
	// planner is the app acting for EverAfter Planning, on platform keys
	// with its own key available: it compares both systems (scenario 3),
	// then moves to its own key in a ramp. plannerKey is its own key and
	// advice the comparison's recommendation.
	planner    *openai.Client
	plannerKey string
	advice     string
	// timelines and guests are the planner's app in its two workflows
	// (X-Workflow), for the comparison; history is the number of requests
	// of its usage history in the store.
	timelines, guests *openai.Client
	history           int64
	// keys are every key the provider accepts, for the outage to take one
	// away and give it back.
	keys []string
	// admin calls veil's admin API; records are the usage records veil
	// emitted, by request ID.
	admin   admin.Client
	records *recorder
}

// scenario is one step of the demo. A scenario with a story title is one
// of the wedding stories, explained in a section of its own.
type scenario struct {
	name  string
	story string
	run   func(ctx context.Context, e *env) Result
}

// scenarios are the demo's steps, in order. Each is one small function.
var scenarios = []scenario{
	{"venue description", "", venueDescription},
	{"photo tags, supplier's own key", "", photoTagsOwnKey},
	{"photographer's June limits", "Capture Moments, a photographer, reaches its platform limits in June", captureMomentsPeak},
	{"venue's own key has an outage", "Willow Barn's own key has an outage, and comes back", venueKeyOutage},
	{"planner compares both systems", "EverAfter Planning compares WedSync's keys with its own", plannerCompares},
	{"planner ramps to its own key", "EverAfter Planning moves to its own key in a ramp", plannerRamp},
	{"wedding timeline (stream)", "", weddingTimeline},
	{"menu similarity (embeddings)", "", menuEmbeddings},
	{"the same menu note again", "", repeatMenu},
	{"available models", "", listModels},
	{"unknown caller", "", unknownCaller},
}

// Run starts the fake upstream and veil, runs every scenario and writes the
// report. It fails when any scenario did not behave as expected.
func Run(ctx context.Context, o Options) error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	platformKey, callerToken := "sk-wedsync-platform-"+randomHex(12), "veil-demo-app-"+randomHex(12)
	adminToken := "veil-demo-admin-" + randomHex(12)
	bellaKey := "sk-bella-photography-" + randomHex(12)
	willowKey := "sk-willow-barn-" + randomHex(12)
	captureKey := "sk-capture-moments-" + randomHex(12)
	plannerKey := "sk-everafter-planning-" + randomHex(12)
	allKeys := []string{platformKey, bellaKey, willowKey, captureKey, plannerKey}
	up := fakeopenai.New(fakeopenai.Options{
		Latency:    15 * time.Millisecond,
		TTFT:       25 * time.Millisecond,
		ChunkDelay: 4 * time.Millisecond,
		Keys:       allKeys,
	})
	if err := up.Start("127.0.0.1:0"); err != nil {
		return fmt.Errorf("fake upstream: %w", err)
	}
	defer func() { _ = up.Close() }()

	secrets := map[string]string{"VEIL_DEMO_PLATFORM_KEY": platformKey, "VEIL_DEMO_CALLER_TOKEN": callerToken,
		"VEIL_DEMO_ADMIN_TOKEN": adminToken, "VEIL_DEMO_BELLA_KEY": bellaKey, "VEIL_DEMO_WILLOW_KEY": willowKey,
		"VEIL_DEMO_CAPTURE_KEY": captureKey, "VEIL_DEMO_EVERAFTER_KEY": plannerKey}
	lookup := func(name string) (string, bool) { v, ok := secrets[name]; return v, ok }
	cfg, err := config.ParseWithEnv([]byte(demoConfig(up.URL())), "demo.yaml", lookup)
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	logOut := o.Log
	if logOut == nil {
		logOut = io.Discard
	}
	log, err := logging.New("info", "console", logOut)
	if err != nil {
		return err
	}
	secretsSrc := keys.Sources{"env": keys.EnvSource{LookupEnv: lookup}}
	records := &recorder{byID: map[string]*usage.Record{}}
	// The store holds EverAfter Planning's last year of usage, for the
	// comparison's projection; veil takes it over.
	st, history, err := plannerHistory(ctx, time.Now().UTC())
	if err != nil {
		return err
	}
	a, err := app.New(cfg, app.Options{Log: log, Audit: log, Version: "demo", Secrets: secretsSrc, UsageTap: records.tap,
		Store: st})
	if err != nil {
		_ = st.Close()
		return err
	}
	if err := a.Start(); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Shutdown(sctx)
	}()

	e := &env{
		client:       newClient(a.ProxyAddr(), callerToken, "rose-venue"),
		photographer: newClient(a.ProxyAddr(), callerToken, "bella-photography"),
		intruder:     newClient(a.ProxyAddr(), "not-a-veil-token", "rose-venue"),
		upstream:     up,
		bellaKey:     bellaKey,
		coordinator:  newClient(a.ProxyAddr(), callerToken, "willow-barn"),
		willowKey:    willowKey,
		platformKey:  platformKey,
		capture:      newClient(a.ProxyAddr(), callerToken, "capture-moments"),
		captureKey:   captureKey,
		planner:      newClient(a.ProxyAddr(), callerToken, "everafter-planning"),
		plannerKey:   plannerKey,
		timelines:    newWorkflowClient(a.ProxyAddr(), callerToken, "everafter-planning", timelineWorkflow),
		guests:       newWorkflowClient(a.ProxyAddr(), callerToken, "everafter-planning", guestsWorkflow),
		history:      history,
		keys:         allKeys,
		admin:        admin.Client{Base: "http://" + a.AdminAddr(), Token: adminToken},
		records:      records,
	}
	fmt.Fprintf(o.Out, "veil demo: veil on http://%s/v1 (admin API on http://%s), fake OpenAI upstream on %s\n\n",
		a.ProxyAddr(), a.AdminAddr(), up.URL())
	var results []Result
	for _, sc := range scenarios {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := sc.run(ctx, e)
		r.Scenario, r.Title = sc.name, sc.story
		results = append(results, r)
	}
	for i := range results {
		r := &results[i]
		if r.RequestID == "" || r.Pays != "" {
			continue // no call, or a story that added up its calls itself
		}
		rec, err := records.wait(ctx, r.RequestID)
		if err != nil {
			r.Err = err
			continue
		}
		r.Pays, r.Cost = string(rec.Billed), costText(rec)
	}
	report(o.Out, results)
	var failed []string
	for _, r := range results {
		if r.Err != nil {
			failed = append(failed, r.Scenario+": "+r.Err.Error())
		}
	}
	received := up.Requests()
	for _, rq := range received {
		for _, v := range rq.Header.Values("Authorization") {
			if strings.Contains(v, callerToken) {
				failed = append(failed, "the upstream received the caller's token on "+rq.Path)
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d check(s) failed:\n  %s", len(failed), strings.Join(failed, "\n  "))
	}
	fmt.Fprintf(o.Out, "\nall %d scenarios behaved as expected; the upstream saw %d requests, each with a provider key "+
		"(WedSync's platform key %s or a supplier's own) and none with the caller's token\n",
		len(results), len(received), keys.Fingerprint(platformKey))
	if o.Console {
		fmt.Fprintf(o.Out, "\nveil keeps running: open http://%s/console/ and sign in with the demo's admin token\n  %s\n"+
			"(the planner's comparison is under Comparisons, its ramp under Migrations). Ctrl-C stops it.\n",
			a.AdminAddr(), adminToken)
		<-ctx.Done()
	}
	return nil
}

// recorder keeps the usage records veil emitted, by request ID.
type recorder struct {
	mu   sync.Mutex
	byID map[string]*usage.Record
}

func (r *recorder) tap(rec *usage.Record) {
	r.mu.Lock()
	r.byID[rec.RequestID] = rec
	r.mu.Unlock()
}

// wait returns the usage record of a request. Records are emitted as a
// call ends, a stream's just after the client saw its last event, so it
// waits a little (bounded) for one not there yet.
func (r *recorder) wait(ctx context.Context, id string) (*usage.Record, error) {
	var rec *usage.Record
	err := until(ctx, 2*time.Second, 5*time.Millisecond, func() (bool, error) {
		r.mu.Lock()
		rec = r.byID[id]
		r.mu.Unlock()
		return rec != nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("no usage record was emitted for request %s: %w", id, err)
	}
	return rec, nil
}

// waitAll returns the usage records of the requests ids, in their order,
// waiting for each as wait does.
func (r *recorder) waitAll(ctx context.Context, ids []string) ([]*usage.Record, error) {
	recs := make([]*usage.Record, len(ids))
	for i, id := range ids {
		rec, err := r.wait(ctx, id)
		if err != nil {
			return nil, err
		}
		recs[i] = rec
	}
	return recs, nil
}

// errGaveUp is what until returns when its condition did not come true in
// time.
var errGaveUp = errors.New("gave up waiting")

// until calls done every interval until it reports true or an error, ctx
// ends or within has passed (then errGaveUp). It bounds the demo's waits
// for work veil does in the background; nothing is judged by how long it
// took.
func until(ctx context.Context, within, interval time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return errGaveUp
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// costText is a record's cost for the report.
func costText(rec *usage.Record) string {
	switch {
	case rec.TotalTokens == 0:
		return "-"
	case rec.CostUSD != nil:
		return fmt.Sprintf("$%.8f", *rec.CostUSD)
	}
	return "unpriced"
}

// demoCooldown is how long the demo holds out a refused supplier key
// before trying it again.
const demoCooldown = 300 * time.Millisecond

func demoConfig(upstream string) string {
	return `listen:
  proxy: 127.0.0.1:0
  admin: 127.0.0.1:0
admin:
  token: env://VEIL_DEMO_ADMIN_TOKEN   # migrations and comparisons are driven through the admin API
providers:
  - name: openai
    type: openai
    base_url: ` + upstream + `
    api_key: env://VEIL_DEMO_PLATFORM_KEY
limits:
  breaker_cooldown: ` + demoCooldown.String() + `   # short, so the demo shows the way back
callers:
  - name: wedsync-demo-app
    token: env://VEIL_DEMO_CALLER_TOKEN
    suppliers: ["*"]
tiers:
  # June is the height of the wedding season. In production a season
  # (from: 06-01, to: 06-30) tightens a tier's limits; the demo gives
  # Capture Moments the June limits directly, whatever today's date.
  - name: peak-season
    requests_per_minute: ` + fmt.Sprint(peakRPM) + `
    on_exhausted: switch_to_client     # out of quota: the supplier's own key, for good
suppliers:
  default_mode: platform
  entries:
    - id: bella-photography     # brings its own OpenAI key
      mode: client
      keys:
        openai: env://VEIL_DEMO_BELLA_KEY
    - id: willow-barn           # its own key, with WedSync's as the fallback
      mode: client
      allow_platform_fallback: true
      keys:
        openai: env://VEIL_DEMO_WILLOW_KEY
    - id: capture-moments       # a photographer on WedSync's keys, within the peak-season tier
      mode: platform
      tier: peak-season
      keys:
        openai: env://VEIL_DEMO_CAPTURE_KEY
    - id: everafter-planning    # a planner on WedSync's keys, with its own key ready
      mode: platform
      keys:
        openai: env://VEIL_DEMO_EVERAFTER_KEY
usage:
  sinks: []                     # the report shows each call's record
comparisons:                    # how alike the two systems' answers are, per workflow
  similarity:
    workflows:
      ` + timelineWorkflow + `: {method: judge, provider: openai, model: gpt-4o-mini, threshold: 0.7}     # same events, order and times
      ` + guestsWorkflow + `: {method: embeddings, provider: openai, model: text-embedding-3-small, threshold: 0.85}
routes:                         # EverAfter Planning's workflows (X-Workflow)
  - workflow: ` + timelineWorkflow + `
    model: gpt-4o-mini
  - workflow: ` + guestsWorkflow + `
    model: gpt-4o-mini
prices:
  - provider: openai
    model: gpt-4o-mini
    input_per_mtok: 0.15
    cached_input_per_mtok: 0.075
    output_per_mtok: 0.60
  - provider: openai
    model: text-embedding-3-small
    input_per_mtok: 0.02
`
}

// newClient is a go-openai client pointed at veil acting for supplier,
// as a WedSync app is.
func newClient(addr, token, supplier string) *openai.Client {
	c := openai.DefaultConfig(token)
	c.BaseURL = "http://" + addr + "/v1"
	c.HTTPClient = &http.Client{Transport: supplierTransport(supplier)}
	return openai.NewClientWithConfig(c)
}

// newWorkflowClient is newClient for the requests of one workflow.
func newWorkflowClient(addr, token, supplier, workflow string) *openai.Client {
	c := openai.DefaultConfig(token)
	c.BaseURL = "http://" + addr + "/v1"
	c.HTTPClient = &http.Client{Transport: workflowTransport{supplier: supplier, workflow: workflow}}
	return openai.NewClientWithConfig(c)
}

// workflowTransport sends X-Supplier-ID and X-Workflow with every request.
type workflowTransport struct{ supplier, workflow string }

func (t workflowTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Supplier-ID", t.supplier)
	r.Header.Set("X-Workflow", t.workflow)
	return http.DefaultTransport.RoundTrip(r)
}

// supplierTransport sends X-Supplier-ID with every request.
type supplierTransport string

func (t supplierTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Supplier-ID", string(t))
	return http.DefaultTransport.RoundTrip(r)
}

// served fills the provider, key source and model veil reported.
func served(r *Result, h http.Header) {
	r.RequestID = h.Get("X-Request-Id")
	r.Provider = h.Get("X-Veil-Provider")
	r.KeySource = h.Get("X-Veil-Key-Source")
	r.Model = h.Get("X-Veil-Model")
}

// answered records the latency of a call started at start and, unless it
// failed with err, its status and the routing headers h; it reports
// whether the call succeeded.
func (r *Result) answered(start time.Time, h http.Header, err error) bool {
	r.Latency = time.Since(start)
	if err != nil {
		r.Status, r.Err = "error", err
		return false
	}
	served(r, h)
	r.Status = "200"
	return true
}

// askChat sends one chat completion through c and fills r with its
// latency, status, routing headers and tokens; ok is false when the call
// failed (r then holds the error).
func askChat(ctx context.Context, c *openai.Client, req openai.ChatCompletionRequest, r *Result) (resp openai.ChatCompletionResponse, ok bool) {
	start := time.Now()
	resp, err := c.CreateChatCompletion(ctx, req)
	if !r.answered(start, resp.Header(), err) {
		return resp, false
	}
	r.Tokens = fmt.Sprintf("%d in / %d out", resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
	return resp, true
}

func venueDescription(ctx context.Context, e *env) Result {
	r := Result{Asked: "describe a barn venue for 120 guests"}
	resp, ok := askChat(ctx, e.client, openai.ChatCompletionRequest{
		Model: "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: "You write warm, concise venue descriptions for wedding suppliers."},
			{Role: openai.ChatMessageRoleUser, Content: "Describe Willow Barn: a restored barn for 120 guests with a garden terrace."},
		},
	}, &r)
	if !ok {
		return r
	}
	if len(resp.Choices) == 0 || resp.Choices[0].Message.Content == "" {
		r.Err = errors.New("empty answer")
		return r
	}
	r.Note = excerpt(resp.Choices[0].Message.Content)
	return r
}

// repeatMenu asks for the same seeded menu note twice: the second answer
// comes from veil's cache, without a provider call and billed to nobody.
func repeatMenu(ctx context.Context, e *env) Result {
	seed := 2026
	req := openai.ChatCompletionRequest{Model: "gpt-4o-mini", Seed: &seed, Messages: []openai.ChatCompletionMessage{
		{Role: openai.ChatMessageRoleUser, Content: "A one-line note on a late-summer tasting menu for 80 guests."},
	}}
	var warm Result
	first, ok := askChat(ctx, e.client, req, &warm)
	if !ok {
		return warm
	}
	r := Result{Asked: "a seeded menu note asked a second time"}
	calls := len(e.upstream.Requests())
	resp, ok := askChat(ctx, e.client, req, &r)
	if !ok {
		return r
	}
	switch {
	case resp.Header().Get("X-Veil-Cache") != "HIT":
		r.Err = errors.New("the repeat was not answered from the cache: " + resp.Header().Get("X-Veil-Cache"))
	case len(e.upstream.Requests()) != calls:
		r.Err = errors.New("the repeat reached the provider")
	case len(resp.Choices) == 0 || len(first.Choices) == 0 || resp.Choices[0].Message.Content != first.Choices[0].Message.Content:
		r.Err = errors.New("the cached answer differs from the first")
	default:
		r.KeySource = "cache"
		r.Note = fmt.Sprintf("answered from veil's cache: no provider call, billed to nobody, %d tokens saved",
			resp.Usage.TotalTokens)
	}
	return r
}

func photoTagsOwnKey(ctx context.Context, e *env) Result {
	r := Result{Asked: "tag a first-dance photo, on Bella's own key"}
	_, ok := askChat(ctx, e.photographer, openai.ChatCompletionRequest{
		Model: "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleUser, Content: "Suggest five tags for a first-dance photo under fairy lights."},
		},
	}, &r)
	if !ok {
		return r
	}
	reqs := e.upstream.Requests()
	if r.KeySource != "client" || len(reqs) == 0 || reqs[len(reqs)-1].Header.Get("Authorization") != "Bearer "+e.bellaKey {
		r.Err = errors.New("the call did not go out on Bella's own key")
		return r
	}
	r.Note = "paid by Bella Photography's own OpenAI key (fingerprint " + keys.Fingerprint(e.bellaKey) + ")"
	return r
}

// venueKeyOutage is scenario 2: Willow Barn's own key stops working at the
// provider; veil serves its coordinator on WedSync's key meanwhile (after
// the first refusal without trying Willow's key again), and goes back to
// Willow's key once it works again and the key's breaker lets a call try.
func venueKeyOutage(ctx context.Context, e *env) Result {
	r := Result{Asked: "menu notes during the venue's key outage"}
	ask := func() (*openai.ChatCompletionResponse, error) {
		resp, err := e.coordinator.CreateChatCompletion(ctx, openai.ChatCompletionRequest{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Note the dietary needs for table 7."}},
		})
		return &resp, err
	}
	var sources, attempts, ids []string
	start := time.Now()
	for step := range 4 {
		switch step {
		case 1:
			e.upstream.SetKeys(without(e.keys, e.willowKey)...) // the provider refuses Willow's key
		case 3:
			e.upstream.SetKeys(e.keys...) // and takes it back
			time.Sleep(demoCooldown)
		}
		resp, err := ask()
		if err != nil {
			r.Status, r.Err = "error", fmt.Errorf("step %d: %w", step+1, err)
			return r
		}
		served(&r, resp.Header())
		sources = append(sources, resp.Header().Get("X-Veil-Key-Source"))
		attempts = append(attempts, resp.Header().Get("X-Veil-Attempts"))
		ids = append(ids, r.RequestID)
	}
	r.Latency = time.Since(start)
	r.Status = "200 x4"
	r.KeySource = strings.Join(compact(sources), " -> ")
	r.Note = "key source before, during and after the outage: " + strings.Join(sources, " -> ") +
		"; while held out: " + attempts[2] + " attempt"
	recs, err := e.records.waitAll(ctx, ids)
	if err != nil {
		r.Err = err
		return r
	}
	paid := ledgerOf(recs)
	r.Cost, r.Pays = paid.cost(), paid.payers()
	r.Story = []string{
		"What happened: Willow Barn, a venue, pays for its calls with its own OpenAI key and allows a fallback to " +
			"WedSync's. Its coordinator noted table 7's dietary needs four times. Before the second note the provider " +
			"started refusing Willow's key: veil tried it once (" + attempts[1] + " attempts), answered on WedSync's key and held " +
			"Willow's key out, so the third note went straight to WedSync's key (" + attempts[2] + " attempt). Once the provider " +
			"took the key back and its " + demoCooldown.String() + " cooldown had passed, the fourth note was on Willow's key again.",
		"What the supplier saw: four answers, all 200, as quick as usual; only X-Veil-Key-Source said " +
			strings.Join(sources, ", ") + ".",
		"Who paid: " + paid.describe("Willow Barn's own OpenAI account, key "+keys.Fingerprint(e.willowKey)) +
			". WedSync carried the outage; Willow paid again once its key worked.",
	}
	switch {
	case strings.Join(sources, ",") != "client,platform,platform,client":
		r.Err = errors.New("want client, then platform during the outage, then client again")
	case attempts[2] != "1":
		r.Err = fmt.Errorf("the refused key was tried again during the outage (%s attempts)", attempts[2])
	case paid.calls["platform"] != 2 || paid.calls["client"] != 2:
		r.Err = fmt.Errorf("want two calls billed to Willow and two to WedSync, got %s", paid.String())
	}
	return r
}

// without returns keys less drop.
func without(keys []string, drop string) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if k != drop {
			out = append(out, k)
		}
	}
	return out
}

// compact drops repeats that follow each other: a, a, b, a is a, b, a.
func compact(s []string) []string {
	var out []string
	for _, v := range s {
		if len(out) == 0 || out[len(out)-1] != v {
			out = append(out, v)
		}
	}
	return out
}

func weddingTimeline(ctx context.Context, e *env) Result {
	r := Result{Asked: "a timeline for a 2pm ceremony, streamed"}
	start := time.Now()
	stream, err := e.client.CreateChatCompletionStream(ctx, openai.ChatCompletionRequest{
		Model:         "gpt-4o-mini",
		Stream:        true,
		StreamOptions: &openai.StreamOptions{IncludeUsage: true},
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleUser, Content: "Draft the day-of timeline for a 2pm ceremony and a 6pm first dance."},
		},
	})
	if err != nil {
		r.Status, r.Err = "error", err
		return r
	}
	defer stream.Close()
	served(&r, stream.Header())
	var text strings.Builder
	chunks := 0
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			r.Status, r.Err = "stream error", err
			return r
		}
		if len(chunk.Choices) > 0 && chunk.Choices[0].Delta.Content != "" {
			if chunks == 0 {
				r.TTFT = time.Since(start)
			}
			chunks++
			text.WriteString(chunk.Choices[0].Delta.Content)
		}
		if chunk.Usage != nil {
			r.Tokens = fmt.Sprintf("%d in / %d out", chunk.Usage.PromptTokens, chunk.Usage.CompletionTokens)
		}
	}
	r.Latency = time.Since(start)
	r.Status = "200"
	r.Note = fmt.Sprintf("%d chunks: %s", chunks, excerpt(text.String()))
	if chunks == 0 || r.Tokens == "" {
		r.Err = errors.New("stream had no content or no usage chunk")
	}
	return r
}

func menuEmbeddings(ctx context.Context, e *env) Result {
	r := Result{Asked: "embed three menu ideas"}
	start := time.Now()
	resp, err := e.client.CreateEmbeddings(ctx, openai.EmbeddingRequestStrings{
		Model: openai.SmallEmbedding3,
		Input: []string{"lemon and elderflower cake", "slow-roast lamb with rosemary", "vegan mezze platter"},
	})
	if !r.answered(start, resp.Header(), err) {
		return r
	}
	r.Tokens = fmt.Sprintf("%d in", resp.Usage.PromptTokens)
	if len(resp.Data) != 3 || len(resp.Data[0].Embedding) == 0 {
		r.Err = fmt.Errorf("want 3 embeddings, got %d", len(resp.Data))
		return r
	}
	r.Note = fmt.Sprintf("%d vectors of %d dimensions", len(resp.Data), len(resp.Data[0].Embedding))
	return r
}

func listModels(ctx context.Context, e *env) Result {
	r := Result{Asked: "which models can the app use"}
	start := time.Now()
	resp, err := e.client.ListModels(ctx)
	if !r.answered(start, resp.Header(), err) {
		return r
	}
	ids := make([]string, 0, len(resp.Models))
	for _, m := range resp.Models {
		ids = append(ids, m.ID)
	}
	r.Note = fmt.Sprintf("%d models: %s", len(ids), excerpt(strings.Join(ids, ", ")))
	if len(ids) == 0 {
		r.Err = errors.New("no models listed")
	}
	return r
}

func unknownCaller(ctx context.Context, e *env) Result {
	r := Result{Asked: "a request with a token veil does not know"}
	before := len(e.upstream.Requests())
	start := time.Now()
	_, err := e.intruder.CreateChatCompletion(ctx, openai.ChatCompletionRequest{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "hello"}},
	})
	r.Latency = time.Since(start)
	var apiErr *openai.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.HTTPStatusCode == http.StatusUnauthorized:
		r.Status = "401 (expected)"
		r.Note = apiErr.Message
	case err == nil:
		r.Status, r.Err = "200", errors.New("veil served an unknown caller")
	default:
		r.Status, r.Err = "error", err
	}
	if after := len(e.upstream.Requests()); after != before {
		r.Err = errors.New("the rejected request reached the upstream")
	}
	return r
}

func report(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tASKED\tSTATUS\tPROVIDER\tKEY SOURCE\tMODEL\tTOKENS\tCOST\tPAYS\tLATENCY\tTTFT")
	for _, r := range results {
		ttft := "-"
		if r.TTFT > 0 {
			ttft = r.TTFT.Round(100 * time.Microsecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Scenario, r.Asked, r.Status, dash(r.Provider),
			dash(r.KeySource), dash(r.Model), dash(r.Tokens), dash(r.Cost), dash(r.Pays), r.Latency.Round(100*time.Microsecond), ttft)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, r := range results {
		if r.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.Scenario, r.Note)
		}
		if r.Err != nil {
			fmt.Fprintf(w, "  %s: FAILED: %v\n", r.Scenario, r.Err)
		}
	}
	n := 0
	for _, r := range results {
		if r.Title == "" {
			continue
		}
		if n == 0 {
			fmt.Fprint(w, "\nThe wedding stories\n===================\n")
		}
		n++
		fmt.Fprintf(w, "\n%d. %s (%s)\n", n, r.Title, r.Scenario)
		for _, line := range r.Story {
			writeWrapped(w, "   ", "     ", line, 110)
		}
		if r.Detail != "" {
			fmt.Fprintln(w)
			for _, line := range strings.Split(strings.TrimRight(r.Detail, "\n"), "\n") {
				fmt.Fprintln(w, strings.TrimRight("     "+line, " "))
			}
		}
		if r.Err != nil {
			writeWrapped(w, "   ", "     ", "FAILED: "+r.Err.Error(), 110)
		}
	}
}

// writeWrapped writes text in lines of at most width columns where it can,
// the first after first and the others after rest.
func writeWrapped(w io.Writer, first, rest, text string, width int) {
	line, prefix := "", first
	for _, word := range strings.Fields(text) {
		if line != "" && len(prefix)+len(line)+1+len(word) > width {
			fmt.Fprintln(w, prefix+line)
			line, prefix = "", rest
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		fmt.Fprintln(w, prefix+line)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func excerpt(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 72 {
		return s[:69] + "..."
	}
	return s
}

func randomHex(n int) string { //nolint:unparam // each call site states its key's length
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
