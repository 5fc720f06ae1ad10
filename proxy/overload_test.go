package proxy

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/metrics"
)

// TestShed: the listener step lets requests on up to limits.max_in_flight
// in flight, this one included, and answers the one beyond at once with
// 503 overloaded, Retry-After: 1 and the OpenAI envelope, counted with
// reason listener; a cap of 0 is no cap.
func TestShed(t *testing.T) {
	cases := []struct {
		name  string
		limit int
		open  int64 // requests in flight, this one included
		shed  bool
	}{
		{"no cap", 0, 100_000, false},
		{"below the cap", 3, 2, false},
		{"at the cap", 3, 3, false},
		{"one beyond", 3, 4, true},
		{"far beyond", 1, 500, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New()
			s := &Server{limits: config.Limits{MaxInFlight: tc.limit}, metrics: m}
			s.open.Store(tc.open)
			ctx := &fasthttp.RequestCtx{}
			x := &exchange{}
			if goOn := s.shed(ctx, x); goOn == tc.shed {
				t.Fatalf("shed(limit %d, open %d) went on = %v", tc.limit, tc.open, goOn)
			}
			want := 0.0
			if tc.shed {
				want = 1
			}
			if got := listenerShed(t, m); got != want {
				t.Errorf("veil_overloaded_total{reason=listener} = %v, want %v", got, want)
			}
			if !tc.shed {
				if len(ctx.Response.Body()) != 0 || x.err != "" {
					t.Errorf("an admitted request was answered: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
				return
			}
			checkOverloaded(t, &ctx.Response)
			if x.err != codeOverloaded {
				t.Errorf("exchange error %q, want %q", x.err, codeOverloaded)
			}
		})
	}
}

// checkOverloaded checks a listener shed's answer: 503, Retry-After: 1 and
// the envelope of the upstream pool's overloaded answer.
func checkOverloaded(t *testing.T, resp *fasthttp.Response) {
	t.Helper()
	if resp.StatusCode() != fasthttp.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", resp.StatusCode())
	}
	if ra := string(resp.Header.Peek(fasthttp.HeaderRetryAfter)); ra != "1" {
		t.Errorf("Retry-After %q, want 1", ra)
	}
	if ct := string(resp.Header.ContentType()); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	var env struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    string  `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Body(), &env); err != nil {
		t.Fatalf("body %s: %v", resp.Body(), err)
	}
	if env.Error.Code != codeOverloaded || env.Error.Type != typeUnavailable || env.Error.Message == "" {
		t.Errorf("envelope %s, want code %q and type %q", resp.Body(), codeOverloaded, typeUnavailable)
	}
}

// listenerShed reads veil_overloaded_total{reason="listener"}.
func listenerShed(t *testing.T, m *metrics.Metrics) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "veil_overloaded_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == metrics.OverloadListener {
					return s.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatal("no veil_overloaded_total{reason=listener} series")
	return 0
}

func TestAtCapacity(t *testing.T) {
	dialErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", errno)}
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"no free connection in the pool", fasthttp.ErrNoFreeConns, true},
		{"out of file descriptors", dialErr(syscall.EMFILE), true},
		{"the system out of file descriptors", dialErr(syscall.ENFILE), true},
		{"wrapped", fmt.Errorf("provider openai: %w", dialErr(syscall.EMFILE)), true},
		{"connection refused", dialErr(syscall.ECONNREFUSED), false},
		{"timeout", fasthttp.ErrTimeout, false},
		{"none", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := atCapacity(tt.err); got != tt.want {
				t.Fatalf("atCapacity(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
