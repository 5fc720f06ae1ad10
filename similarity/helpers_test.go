package similarity_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/provider"
	"github.com/wedsync/veil/similarity"
	"github.com/wedsync/veil/usage"
)

// TestMain checks that no test leaves a goroutine of its own behind;
// fasthttp's background goroutines (connection and address cleaners, the
// server date) outlive the clients and servers that started them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/valyala/fasthttp.(*workerPool).workerFunc"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

// platformKey is the fake's only accepted key, the provider's platform key.
const platformKey = "sk-platform-0123456789abcdef"

// safety bounds a test's calls; it only guards against a hung test.
const safety = 30 * time.Second

// upstream is the fake provider and a provider in front of it.
type upstream struct {
	fake     *fakeopenai.Server
	provider *provider.Provider
}

// startUpstream starts the fake in process and builds the provider
// "openai" in front of it, with the platform key.
func startUpstream(t testing.TB) *upstream {
	t.Helper()
	fake := fakeopenai.New(fakeopenai.Options{Keys: []string{platformKey}})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("start the fake: %v", err)
	}
	p, err := provider.New(config.Provider{Name: "openai", Type: config.ProviderTypeOpenAI, BaseURL: fake.URL(), MaxConns: 16},
		[]keys.Secret{keys.NewSecret(platformKey)}, provider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		if err := fake.Close(); err != nil {
			t.Errorf("close the fake: %v", err)
		}
	})
	return &upstream{fake: fake, provider: p}
}

// prices are the prices of the models the tests score with.
func prices(t testing.TB) *usage.PriceTable {
	t.Helper()
	pt, err := usage.NewPriceTable([]usage.Price{
		{Provider: "openai", Model: "text-embedding-3-small", InputPerMTok: 0.02},
		{Provider: "openai", Model: "gpt-4o-mini", InputPerMTok: 0.15, OutputPerMTok: 0.6},
	})
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

// methods are the three methods' settings, as the config gives them.
var methods = map[string]config.SimilarityMethod{
	similarity.Lexical:    {Method: config.SimilarityLexical, Threshold: config.DefaultLexicalThreshold},
	similarity.Embeddings: {Method: config.SimilarityEmbeddings, Provider: "openai", Model: "text-embedding-3-small", Threshold: config.DefaultEmbeddingsThreshold},
	similarity.Judge:      {Method: config.SimilarityJudge, Provider: "openai", Model: "gpt-4o-mini", Threshold: config.DefaultJudgeThreshold},
}

// setOf builds a Set whose default method is m, with a timeout.
func setOf(t testing.TB, up *upstream, m config.SimilarityMethod, timeout time.Duration, counters *similarity.Counters) *similarity.Set {
	t.Helper()
	s, err := similarity.New(similarity.Options{Config: config.Similarity{Default: m, Timeout: timeout},
		Providers: []*provider.Provider{up.provider}, Prices: prices(t), Counters: counters})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// records collects usage records.
type records struct {
	mu   sync.Mutex
	list []*usage.Record
}

func (r *records) Emit(rec *usage.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, rec)
}

func (r *records) all() []*usage.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*usage.Record(nil), r.list...)
}

// readPairs reads testdata/pairs.json.
func readPairs(t testing.TB) []similarity.LabelledPair {
	t.Helper()
	f, err := os.Open("testdata/pairs.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pairs, err := similarity.ReadPairs(f)
	if err != nil {
		t.Fatal(err)
	}
	return pairs
}

// testContext is bounded by safety.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), safety)
	t.Cleanup(cancel)
	return ctx
}
