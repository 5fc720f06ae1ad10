//go:build linux

package main

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/cache"
)

// TestCacheBodies: the cache scenario's bodies are distinct, valid,
// deterministic chat requests (cacheable), streamed when asked.
func TestCacheBodies(t *testing.T) {
	for _, stream := range []bool{false, true} {
		bodies := cacheBodies(stream, 8)
		seen := map[string]bool{}
		for i, b := range bodies {
			var v struct {
				Model       string            `json:"model"`
				Messages    []json.RawMessage `json:"messages"`
				Stream      bool              `json:"stream"`
				Temperature json.RawMessage   `json:"temperature"`
			}
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("body %d (stream %v): %v: %s", i, stream, err, b)
			}
			if v.Stream != stream || v.Model == "" || len(v.Messages) != 2 {
				t.Errorf("body %d (stream %v): decoded %+v", i, stream, v)
			}
			if !cache.Cacheable(cache.Request{Endpoint: cache.EndpointChatCompletions, Temperature: v.Temperature}) {
				t.Errorf("body %d is not cacheable: %s", i, b)
			}
			if seen[string(b)] {
				t.Errorf("body %d repeats an earlier one", i)
			}
			seen[string(b)] = true
			if len(b) < 250 || len(b) > 400 {
				t.Errorf("body %d: %d bytes, want about 300", i, len(b))
			}
		}
		if stream {
			plain := cacheBodies(false, 8)
			for i, b := range bodies {
				if strings.Replace(string(b), `,"stream":true`, "", 1) == string(plain[i]) {
					t.Errorf("streamed body %d differs from the plain one only by stream: they would share a cache entry", i)
				}
			}
		}
		if again := cacheBodies(stream, 8); string(again[3]) != string(bodies[3]) {
			t.Error("bodies differ between calls")
		}
	}
}

// TestRunRotatesBodiesAndCountsHits: request i sends Bodies[i%n], and
// answers with X-Veil-Cache: HIT are counted.
func TestRunRotatesBodiesAndCountsHits(t *testing.T) {
	bodies := cacheBodies(false, 4)
	var mu sync.Mutex
	got := map[string]int{}
	addr := serve(t, func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		got[string(ctx.PostBody())]++
		first := got[string(ctx.PostBody())] == 1
		mu.Unlock()
		if !first {
			ctx.Response.Header.Set(headerCache, "HIT")
		}
		ctx.SetBodyString(`{"ok":true}`)
	})
	g, err := NewGenerator(Target{Addr: addr, Path: "/v1/chat/completions", Bodies: bodies},
		Options{Conns: 4, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	r, err := g.Run(context.Background(), 2000, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	s := summarize(r)
	if s.OK != 200 || s.Hits != 200-len(bodies) {
		t.Errorf("ok %d hits %d, want 200 and %d", s.OK, s.Hits, 200-len(bodies))
	}
	for i, b := range bodies {
		if got[string(b)] != 50 {
			t.Errorf("body %d sent %d times, want 50", i, got[string(b)])
		}
	}
}

func TestCacheFlags(t *testing.T) {
	s, err := parseFlags([]string{"-cache", "-cache-prompts", "3"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Cache || len(s.bodies(true)) != 3 || s.BodySize != len(cacheBodies(false, 3)[0]) {
		t.Errorf("settings %+v", s)
	}
	if _, err := parseFlags([]string{"-cache", "-cache-prompts", "0"}, nil); err == nil {
		t.Error("-cache-prompts 0 accepted")
	}
	s, err = parseFlags(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b := s.bodies(false); len(b) != 1 || string(b[0]) != string(requestBody(false)) || s.CachePrompts != 0 {
		t.Errorf("without -cache: %d bodies, prompts %d", len(b), s.CachePrompts)
	}

	s, _ = parseFlags([]string{"-cache", "-rate", "1000"}, nil)
	r := &report{Settings: s, Phases: []phase{
		{Via: viaVeil, Summary: Summary{TargetRate: 1000, Requests: 10, OK: 10, Hits: 9}},
	}}
	var sb strings.Builder
	r.print(&sb)
	for _, want := range []string{"hits", "90.00%", "8 deterministic prompts"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, sb.String())
		}
	}
}

// TestCPUFlags: -veil-cpus and -gen-cpus go together, do not overlap, and
// are normalised.
func TestCPUFlags(t *testing.T) {
	for _, args := range [][]string{{"-veil-cpus", "1"}, {"-veil-cpus", "0", "-gen-cpus", "0-1"}} {
		if _, err := parseFlags(args, nil); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	s, err := parseFlags([]string{"-veil-cpus", "1", "-gen-cpus", "0"}, nil)
	if err != nil || s.VeilCPUs != "1" || s.GenCPUs != "0" {
		t.Errorf("%+v, %v", s, err)
	}
}
